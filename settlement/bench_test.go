package settlement

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSettle measures settled jobs per second on each backend: b.N
// jobs are held first (untimed), then settled from 8 goroutines per CPU.
// Each settlement is one durable transaction with ten postings (provider,
// fee, royalty, refund, SLA slash). make bench-settlement runs both.
func BenchmarkSettle(b *testing.B) {
	for _, be := range backendList {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			l := openLedger(b, be.dsn(b))
			if _, err := l.Deposit(ctx, DepositRequest{Tenant: "acme", Currency: "USD", Amount: int64(b.N) * 1100, Key: "fund"}); err != nil {
				b.Fatal(err)
			}
			if _, err := l.DepositBond(ctx, BondRequest{Provider: "gpu-co", Currency: "USD", Amount: MaxAmount, Key: "bond"}); err != nil {
				b.Fatal(err)
			}
			for i := range b.N {
				if _, err := l.Hold(ctx, holdReq(fmt.Sprintf("job-%d", i))); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := settleReq(fmt.Sprintf("job-%d", next.Add(1)-1))
					r.Usage = Usage{WallMillis: 60_000, CPUMillis: 120_000, GPUMillis: 60_000}
					r.Rates = Rates{WallPerHour: 60, CPUPerHour: 30, GPUPerHour: 60}
					r.SLA = SLATerms{MaxDuration: time.Second, SlashPercent: 1, Stake: 100}
					r.Outcome = Outcome{Duration: 2 * time.Second}
					if _, err := l.Settle(ctx, r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
			if r := mustCheck(b, l); r.Jobs != b.N {
				b.Fatalf("%d jobs in the ledger, want %d", r.Jobs, b.N)
			}
		})
	}
}
