package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/market"
)

// Heartbeat is what an agent sends the control plane (PUT
// /v1/providers/{name}): what it offers now and how often it will say so.
type Heartbeat struct {
	Runtime   string         `json:"runtime"`
	Profile   market.Profile `json:"profile"`
	PublicKey string         `json:"public_key,omitempty"`
	// Interval is the agent's heartbeat interval; it is offered to buyers
	// while its last heartbeat is at most FreshFactor intervals old.
	Interval time.Duration `json:"heartbeat_ns"`
}

// Ack is the control plane's answer to a heartbeat.
type Ack struct {
	Name     string    `json:"name"`
	LastSeen time.Time `json:"last_seen"`
	// FreshUntil is when the agent stops being offered without another
	// heartbeat.
	FreshUntil time.Time `json:"fresh_until"`
}

// Client publishes an agent's heartbeats to the control plane's API.
type Client struct {
	// BaseURL is the API's root (http(s)://host:port).
	BaseURL string
	// Token is the agent's bearer token (role provider, named after it).
	Token string
	// HTTP is the client (default one with a 30 s timeout).
	HTTP *http.Client
}

// maxAck bounds the answer read back.
const maxAck = 64 << 10

// Beat sends one heartbeat for provider name.
func (c *Client) Beat(ctx context.Context, name string, hb Heartbeat) (Ack, error) {
	if err := names.Provider(name); err != nil {
		return Ack{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	body, err := json.Marshal(hb)
	if err != nil {
		return Ack{}, fmt.Errorf("agents: heartbeat %s: %w", name, err)
	}
	u := strings.TrimRight(c.BaseURL, "/") + "/v1/providers/" + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return Ack{}, fmt.Errorf("agents: heartbeat %s: %w", name, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Ack{}, fmt.Errorf("agents: heartbeat %s: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAck))
	if err != nil {
		return Ack{}, fmt.Errorf("agents: heartbeat %s: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Ack{}, fmt.Errorf("agents: heartbeat %s: %s: %s", name, resp.Status, bytes.TrimSpace(b))
	}
	var ack Ack
	if err := json.Unmarshal(b, &ack); err != nil {
		return Ack{}, fmt.Errorf("agents: heartbeat %s: answer: %w", name, err)
	}
	return ack, nil
}
