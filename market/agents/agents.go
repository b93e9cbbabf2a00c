// Package agents keeps the profiles that provider agents (`accord provider
// serve`, each on its own machine with its own runtime and key) publish to
// the control plane, and offers the market only the agents that are alive:
// an agent whose heartbeat is older than FreshFactor of its own intervals
// gets no new bids, and its standing offer is gone from every later
// negotiation.
//
// The registry is one JSON file per agent under the control plane's home,
// written atomically, so that the API server (which receives heartbeats)
// and the workers (which negotiate) share it across processes without a
// lock; a heartbeat replaces the file, last writer wins.
package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/market"
)

// Errors callers test for.
var (
	ErrInvalid  = errors.New("agents: invalid record")
	ErrNotFound = errors.New("agents: no such provider agent")
)

// Heartbeat bounds: an agent beats at least every MaxHeartbeat and at most
// every MinHeartbeat; FreshFactor intervals without one make it stale.
const (
	MinHeartbeat = time.Second
	MaxHeartbeat = 10 * time.Minute
	FreshFactor  = 3
)

// maxRecord bounds a stored record; maxAgents the agents listed.
const (
	maxRecord = 1 << 20
	maxAgents = 4096
)

// Record is one agent's last heartbeat.
type Record struct {
	// Name is the provider's name (names.Provider); its queue and trust
	// scope (provider:<name>) are named after it.
	Name string `json:"name"`
	// Runtime is the runtime kind the agent runs tasks on.
	Runtime string `json:"runtime"`
	// Profile is what the agent offers now: capabilities, prices, SLA
	// terms, free capacity. Profile.Name is Name.
	Profile market.Profile `json:"profile"`
	// PublicKey is the PEM of the agent's signing key, for the operator to
	// check before trusting it (accord keys trust --scope provider:<name>);
	// publishing it grants nothing.
	PublicKey string `json:"public_key,omitempty"`
	// Heartbeat is the agent's interval.
	Heartbeat time.Duration `json:"heartbeat_ns"`
	// LastSeen is when the control plane received the heartbeat.
	LastSeen time.Time `json:"last_seen"`
}

// Validate checks a record as an agent sends it.
func (r *Record) Validate() error {
	if err := names.Provider(r.Name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if r.Profile.Name != r.Name {
		return fmt.Errorf("%w: profile names %q, not %q", ErrInvalid, r.Profile.Name, r.Name)
	}
	if err := r.Profile.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if r.Heartbeat < MinHeartbeat || r.Heartbeat > MaxHeartbeat {
		return fmt.Errorf("%w: heartbeat %s outside %s..%s", ErrInvalid, r.Heartbeat, MinHeartbeat, MaxHeartbeat)
	}
	if r.Runtime == "" || len(r.Runtime) > 64 || strings.ContainsAny(r.Runtime, "/\\ \n") {
		return fmt.Errorf("%w: runtime kind %q", ErrInvalid, r.Runtime)
	}
	if len(r.PublicKey) > 16<<10 {
		return fmt.Errorf("%w: public key over 16 KiB", ErrInvalid)
	}
	return nil
}

// Fresh reports whether the agent beat within FreshFactor intervals of now.
func (r *Record) Fresh(now time.Time) bool {
	return !r.LastSeen.IsZero() && now.Sub(r.LastSeen) <= FreshFactor*r.Heartbeat
}

// Registry is the agents' records under a directory.
type Registry struct {
	Dir string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Open returns the registry under home.
func Open(home string) *Registry { return &Registry{Dir: filepath.Join(home, "providers", "agents")} }

func (g *Registry) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Registry) path(name string) string { return filepath.Join(g.Dir, name+".json") }

// Put records a heartbeat: rec, validated, seen now. It returns the stored
// record.
func (g *Registry) Put(rec Record) (Record, error) {
	if err := rec.Validate(); err != nil {
		return Record{}, err
	}
	rec.LastSeen = g.now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return Record{}, fmt.Errorf("agents: encode %s: %w", rec.Name, err)
	}
	if err := os.MkdirAll(g.Dir, 0o700); err != nil {
		return Record{}, fmt.Errorf("agents: put %s: %w", rec.Name, err)
	}
	if err := atomicfile.WriteFile(g.path(rec.Name), b, 0o600); err != nil {
		return Record{}, fmt.Errorf("agents: put %s: %w", rec.Name, err)
	}
	return rec, nil
}

// Get returns one agent's record, fresh or not.
func (g *Registry) Get(name string) (Record, error) {
	if err := names.Provider(name); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	b, err := bounded.ReadFile(g.path(name), maxRecord)
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return Record{}, fmt.Errorf("agents: get %s: %w", name, err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, fmt.Errorf("agents: get %s: %w", name, err)
	}
	if rec.Name != name {
		return Record{}, fmt.Errorf("%w: %s holds %q", ErrInvalid, g.path(name), rec.Name)
	}
	return rec, nil
}

// List returns every agent's record by name, fresh or not.
func (g *Registry) List() ([]Record, error) {
	ents, err := os.ReadDir(g.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agents: list: %w", err)
	}
	var out []Record
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || names.Provider(name) != nil {
			continue
		}
		if len(out) == maxAgents {
			return nil, fmt.Errorf("agents: list: more than %d agents", maxAgents)
		}
		rec, err := g.Get(name)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Fresh returns the agents whose heartbeat is fresh now.
func (g *Registry) Fresh() ([]Record, error) {
	all, err := g.List()
	if err != nil {
		return nil, err
	}
	now := g.now()
	var out []Record
	for _, r := range all {
		if r.Fresh(now) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Providers returns the fresh agents as market sellers (their last
// profiles, the reputation capped by the control plane's, see Penalize),
// leaving out any whose name is in taken (the control plane's
// own providers and pools, which keep their names).
func (g *Registry) Providers(_ context.Context, taken map[string]bool) ([]market.Provider, error) {
	fresh, err := g.Fresh()
	if err != nil {
		return nil, err
	}
	var out []market.Provider
	for _, r := range fresh {
		if taken[r.Name] {
			continue
		}
		rep, err := g.Reputation(r.Name)
		if err != nil {
			return nil, err
		}
		p := r.Profile
		// An agent cannot vouch for itself: the control plane's record
		// of its losses and verdicts caps what it publishes.
		p.Reputation = min(p.Reputation, rep)
		out = append(out, &market.Static{P: p})
	}
	return out, nil
}

// Live returns a fresh agent's record: false when there is none or its
// heartbeat stopped.
func (g *Registry) Live(name string) (Record, bool) {
	r, err := g.Get(name)
	if err != nil || !r.Fresh(g.now()) {
		return Record{}, false
	}
	return r, true
}

// LastSeen reports when agent name last beat and whether that is fresh
// now; ok is false when it never beat (or its record cannot be read).
func (g *Registry) LastSeen(name string) (last time.Time, fresh, ok bool) {
	r, err := g.Get(name)
	if err != nil {
		return time.Time{}, false, false
	}
	return r.LastSeen, r.Fresh(g.now()), true
}
