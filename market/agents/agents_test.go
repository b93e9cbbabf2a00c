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
