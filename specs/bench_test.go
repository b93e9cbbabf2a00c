package specs

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
)

// BenchmarkCompile measures parse + compose + validate + compile of a
// generated spec with N tasks (see genSpec); time per op should grow
// linearly with N.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{50, 500, 5000} {
		data := []byte(genSpec(n, rand.New(rand.NewPCG(1, 2)), true))
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				s, err := Parse("bench.md", data)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Compile(s); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time (user+system, all threads) is reported beside wall time
			// because shared build machines are often heavily loaded.
			cpu := float64(cpuTime()-cpu0) / float64(b.N)
			b.ReportMetric(cpu, "cpu-ns/op")
			b.ReportMetric(cpu/float64(n), "cpu-ns/task")
		})
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
