package wdp

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	in, err := GenerateCATS(1, 100, 500, BenchmarkCATS())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		got      []Progress
		returned bool
	)
	opts := Options{Threads: 1, ProgressEvery: time.Millisecond, Progress: func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if returned {
			t.Errorf("progress %+v reported after the call returned", p)
		}
		got = append(got, p)
	}}
	ctx := context.Background()
	sol, err := Solve(ctx, in, opts)
	mu.Lock()
	returned = true
	wdp := got
	got = nil
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	returned = false
	mu.Unlock()
	pay, err := VCG(ctx, in, sol, opts)
	mu.Lock()
	returned = true
	vcg := got
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// The solve takes tens of milliseconds at least, so a 1 ms ticker fires.
	if len(wdp) == 0 || len(vcg) == 0 {
		t.Fatalf("progress reports: %d for wdp, %d for vcg; want some of each", len(wdp), len(vcg))
	}
	check := func(stage string, ps []Progress, nodes int) {
		prev := Progress{}
		for _, p := range ps {
			if p.Stage != stage || p.Nodes < prev.Nodes || p.Nodes > nodes || p.Done < prev.Done ||
				p.Done > p.Total || p.Total < 1 || p.Elapsed < prev.Elapsed {
				t.Errorf("%s progress %+v after %+v (final nodes %d)", stage, p, prev, nodes)
			}
			if stage == "wdp" && (p.Best < prev.Best || p.Best > sol.Objective+1e-6) {
				t.Errorf("wdp best %v after %v, optimum %v", p.Best, prev.Best, sol.Objective)
			}
			prev = p
		}
	}
	check("wdp", wdp, sol.Nodes)
	check("vcg", vcg, pay.Nodes)
	if last := wdp[len(wdp)-1]; last.Best <= 0 {
		t.Errorf("wdp progress never reported an incumbent: %+v", last)
	}
}
