package agents

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/internal/names"
)

// Reputation is kept by the control plane, never taken from an agent's own
// word: each provider starts at 1 and every penalty (a provider lost
// mid-job, a spot check that found it in the minority) multiplies it by
// PenaltyFactor. It is bounded in (0, 1], does not decay, and counts at
// most MaxPenalties penalties. The market sees the lower of the agent's
// published reputation and this one (Registry.Providers), in placement
// policies (min reputation) and in bargaining, where it breaks price ties.
const (
	PenaltyFactor = 0.8
	MaxPenalties  = 1000
)

// maxPenalty bounds a stored penalty record.
const maxPenalty = 16 << 10

// Penalty is one recorded penalty: Key makes it idempotent (a job and
// what happened in it), Reason says why.
type Penalty struct {
	Provider string    `json:"provider"`
	Key      string    `json:"key"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

func (g *Registry) penaltyDir(name string) string {
	return filepath.Join(filepath.Dir(g.Dir), "reputation", name)
}

// Penalize records a penalty for provider name under key, once: a second
// call with the same key records nothing. It returns the provider's
// reputation afterwards. Each penalty is its own file, named by the key's
// digest, so that processes penalizing at once lose nothing.
func (g *Registry) Penalize(name, key, reason string) (float64, error) {
	if err := names.Provider(name); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if key == "" || len(key) > 512 || len(reason) > 1024 || strings.ContainsAny(key, "\x00") {
		return 0, fmt.Errorf("%w: penalty key of 1..512 bytes and a reason of at most 1024", ErrInvalid)
	}
	dir := g.penaltyDir(name)
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(dir, hex.EncodeToString(sum[:])+".json")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		b, err := json.Marshal(Penalty{Provider: name, Key: key, Reason: reason, At: g.now().UTC()})
		if err != nil {
			return 0, fmt.Errorf("agents: penalize %s: %w", name, err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, fmt.Errorf("agents: penalize %s: %w", name, err)
		}
		if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
			return 0, fmt.Errorf("agents: penalize %s: %w", name, err)
		}
	} else if err != nil {
		return 0, fmt.Errorf("agents: penalize %s: %w", name, err)
	}
	return g.Reputation(name)
}

// Penalties lists provider name's penalties (at most MaxPenalties).
func (g *Registry) Penalties(name string) ([]Penalty, error) {
	if err := names.Provider(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ents, err := os.ReadDir(g.penaltyDir(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agents: penalties of %s: %w", name, err)
	}
	var out []Penalty
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") || len(out) == MaxPenalties {
			continue
		}
		b, err := bounded.ReadFile(filepath.Join(g.penaltyDir(name), e.Name()), maxPenalty)
		if err != nil {
			return nil, fmt.Errorf("agents: penalties of %s: %w", name, err)
		}
		var p Penalty
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("agents: penalties of %s: %s: %w", name, e.Name(), err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Reputation is provider name's reputation: PenaltyFactor to the power of
// its penalties, 1 without any.
func (g *Registry) Reputation(name string) (float64, error) {
	ps, err := g.Penalties(name)
	if err != nil {
		return 0, err
	}
	return Score(len(ps)), nil
}

// Score is the reputation after n penalties.
func Score(n int) float64 {
	return math.Pow(PenaltyFactor, float64(min(max(n, 0), MaxPenalties)))
}
