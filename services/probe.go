package services

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// probeClient never follows redirects: a probe judges the replica's own answer.
var probeClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true, MaxResponseHeaderBytes: 16 << 10},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Probe sends GET path to addr (host:port) and succeeds on a 2xx answer
// within timeout. It reads at most 4 KiB of the body.
func Probe(ctx context.Context, addr, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("%w: probe %s%s: %v", ErrInvalid, addr, path, err)
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return fmt.Errorf("services: probe %s%s: %w", addr, path, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("services: probe %s%s: status %d", addr, path, resp.StatusCode)
	}
	return nil
}
