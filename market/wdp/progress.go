package wdp

import (
	"math"
	"sync/atomic"
	"time"
)

// Progress is a snapshot of a running Solve or VCG, passed to
// Options.Progress.
type Progress struct {
	// Stage is "wdp" for winner determination, "vcg" for the payments.
	Stage string
	// Nodes counts the branch-and-bound nodes explored so far.
	Nodes int
	// Best is the best objective found so far (wdp only; 0 for vcg).
	Best float64
	// Done of Total searches have finished: the instance's independent
	// components for wdp, the groups of re-solves for vcg.
	Done, Total int
	// Elapsed is the time since the stage began.
	Elapsed time.Duration
}

// meter counts a running search's progress for Options.Progress. Workers
// update it with atomics; a ticker goroutine reads it.
type meter struct {
	nodes atomic.Int64
	done  atomic.Int64
	best  []atomic.Uint64 // float64 bits of each component's incumbent (wdp)
}

// watch calls opts.Progress with a snapshot every opts.ProgressEvery
// (default 5 s) until the returned stop is called; stop returns once the
// last call has finished, so none comes after it.
func (m *meter) watch(stage string, total int, opts Options, start time.Time) (stop func()) {
	if opts.Progress == nil {
		return func() {}
	}
	every := opts.ProgressEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				p := Progress{Stage: stage, Nodes: int(m.nodes.Load()), Done: int(m.done.Load()),
					Total: total, Elapsed: time.Since(start)}
				for i := range m.best {
					p.Best += math.Float64frombits(m.best[i].Load())
				}
				p.Best = tidy(p.Best)
				opts.Progress(p)
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}
