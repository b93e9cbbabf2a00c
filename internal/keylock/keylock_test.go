package keylock

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestLocksSerialisePerKey(t *testing.T) {
	var l Locks
	var inA, maxA atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := l.Lock("a")
			n := inA.Add(1)
			if n > maxA.Load() {
				maxA.Store(n)
			}
			inA.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if maxA.Load() != 1 {
		t.Fatalf("%d holders of key a at once", maxA.Load())
	}
	// Another key is not blocked by a held one.
	unlock := l.Lock("a")
	defer unlock()
	l.Lock("b")()
}
