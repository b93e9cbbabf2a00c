package agents

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/accordmesh/accord/market"
)

func record(name string) Record {
	return Record{Name: name, Runtime: "containerd", Heartbeat: 10 * time.Second, Profile: market.Profile{
		Name: name, Reputation: 1, Free: market.Capacity{MilliCPU: 1000, MemoryBytes: 1 << 30},
		Pricing: market.Pricing{Currency: "USD", CPUHour: 5},
	}}
}

func TestFreshness(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	g := &Registry{Dir: t.TempDir(), Now: func() time.Time { return now }}
	for _, n := range []string{"gpu-a", "gpu-b", "local"} {
		if _, err := g.Put(record(n)); err != nil {
			t.Fatal(err)
		}
	}
	names := func() []string {
		provs, err := g.Providers(context.Background(), map[string]bool{"local": true})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range provs {
			prof, _ := p.Profile(context.Background())
			out = append(out, prof.Name)
		}
		return out
	}
	if got := names(); len(got) != 2 || got[0] != "gpu-a" || got[1] != "gpu-b" {
		t.Fatalf("offered %v, want gpu-a gpu-b (local is taken)", got)
	}
	// gpu-b keeps beating; gpu-a stops. At 3 intervals it is still fresh,
	// past them it is withdrawn.
	now = now.Add(30 * time.Second)
	if _, err := g.Put(record("gpu-b")); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Live("gpu-a"); !ok {
		t.Error("gpu-a stale at exactly 3 intervals")
	}
	now = now.Add(time.Second)
	if got := names(); len(got) != 1 || got[0] != "gpu-b" {
		t.Errorf("offered %v after gpu-a's heartbeat stopped, want gpu-b", got)
	}
	if _, ok := g.Live("gpu-a"); ok {
		t.Error("gpu-a still live")
	}
	if _, err := g.Get("gpu-a"); err != nil {
		t.Errorf("stale record gone: %v", err)
	}
}

func TestInvalidRecords(t *testing.T) {
	g := &Registry{Dir: t.TempDir()}
	bad := []func(*Record){
		func(r *Record) { r.Name, r.Profile.Name = "../x", "../x" },
		func(r *Record) { r.Profile.Name = "other" },
		func(r *Record) { r.Heartbeat = time.Hour },
		func(r *Record) { r.Heartbeat = 0 },
		func(r *Record) { r.Runtime = "" },
		func(r *Record) { r.Runtime = "a/b" },
		func(r *Record) { r.Profile.Pricing.CPUHour = -1 },
		func(r *Record) { r.Profile.Pricing.Currency = "" },
	}
	for i, f := range bad {
		r := record("gpu-a")
		f(&r)
		if _, err := g.Put(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i, err)
		}
	}
	if _, err := g.Get("gpu-z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	// A file that does not hold the record its name says is refused.
	if err := os.WriteFile(filepath.Join(g.Dir, "gpu-y.json"), []byte(`{"name":"gpu-x"}`), 0o600); err == nil {
		if _, err := g.Get("gpu-y"); !errors.Is(err, ErrInvalid) {
			t.Errorf("mismatched record: %v", err)
		}
	}
}

// A penalty counts once per key, lowers the reputation the market sees
// (never above what the agent publishes), and survives reopening.
func TestPenalize(t *testing.T) {
	home := t.TempDir()
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	g := Open(home)
	g.Now = func() time.Time { return now }
	if _, err := g.Put(record("gpu-a")); err != nil {
		t.Fatal(err)
	}
	if r, err := g.Reputation("gpu-a"); err != nil || r != 1 {
		t.Fatalf("fresh reputation %v %v, want 1", r, err)
	}
	r1, err := g.Penalize("gpu-a", "job-1/lost", "heartbeat stopped mid-task")
	if err != nil || r1 != PenaltyFactor {
		t.Fatalf("after one loss %v %v, want %v", r1, err, PenaltyFactor)
	}
	if again, err := g.Penalize("gpu-a", "job-1/lost", "retry"); err != nil || again != r1 {
		t.Errorf("same key again: %v %v, want %v", again, err, r1)
	}
	r2, err := g.Penalize("gpu-a", "job-2/lost", "heartbeat stopped mid-task")
	if err != nil || r2 >= r1 || r2 <= 0 {
		t.Errorf("after two losses %v %v", r2, err)
	}
	got, err := g.Providers(context.Background(), nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("providers %v %v", got, err)
	}
	prof, _ := got[0].Profile(context.Background())
	if prof.Reputation != r2 {
		t.Errorf("market sees reputation %v, want %v", prof.Reputation, r2)
	}
	ps, err := Open(home).Penalties("gpu-a")
	if err != nil || len(ps) != 2 {
		t.Errorf("penalties after reopening: %v %v", ps, err)
	}
	if _, err := g.Penalize("../x", "k", "r"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := g.Penalize("gpu-a", "", "r"); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty key: %v", err)
	}
	if s := Score(MaxPenalties + 5); s != Score(MaxPenalties) || s <= 0 {
		t.Errorf("score is not bounded: %v", s)
	}
}
