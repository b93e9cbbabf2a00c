package settlement

import (
	"context"
	"errors"
	"testing"
	"time"
)

// HeldEscrows lists held jobs older than the cut-off only: not released,
// not settled, not young.
func TestHeldEscrows(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		fund(t, l, "acme", 10_000)
		hold(t, l, "job-held", 100, 0, 100)
		hold(t, l, "job-released", 200, 0, 200)
		hold(t, l, "job-settled", 300, 0, 300)
		if _, err := l.Release(ctx, ReleaseRequest{Job: "job-released", Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Settle(ctx, SettleRequest{Job: "job-settled", Attempt: 1, Succeeded: true, Price: 300}); err != nil {
			t.Fatal(err)
		}
		got, err := l.HeldEscrows(ctx, time.Now().Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Job != "job-held" || got[0].Held != 100 || got[0].Tenant != "acme" ||
			got[0].Provider != "gpu-co" || got[0].Currency != "USD" || got[0].Since.IsZero() {
			t.Fatalf("HeldEscrows = %+v, want job-held only", got)
		}
		young, err := l.HeldEscrows(ctx, got[0].Since, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(young) != 0 {
			t.Fatalf("HeldEscrows before the hold = %+v, want none", young)
		}
	})
}

// The sweep journal keeps the first decision, lists it as pending until it
// is marked attested, and drops only pending sweeps.
func TestSweepJournal(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		esc := HeldEscrow{Job: "job-1", Tenant: "acme", Provider: "gpu-co", Currency: "USD", Held: 120}
		first := Sweep{Job: "job-1", Kind: SweepRelease, Reason: "swept: workflow closed", Escrow: esc,
			Release: &ReleaseRequest{Job: "job-1", Attempt: 1}}
		got, err := l.RecordSweep(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		second := Sweep{Job: "job-1", Kind: SweepSettle, Reason: "other", Escrow: esc,
			Settle: &SettleRequest{Job: "job-1", Attempt: 1, Price: 100}}
		again, err := l.RecordSweep(ctx, second)
		if err != nil {
			t.Fatal(err)
		}
		if again.Kind != SweepRelease || again.Release == nil || again.Settle != nil || again.Reason != first.Reason ||
			again.Escrow.Held != 120 || !again.Created.Equal(got.Created) {
			t.Fatalf("second RecordSweep = %+v, want the first decision %+v", again, got)
		}
		pending, err := l.PendingSweeps(ctx)
		if err != nil || len(pending) != 1 || pending[0].Job != "job-1" {
			t.Fatalf("PendingSweeps = %+v, %v; want job-1", pending, err)
		}
		if err := l.MarkSweepAttested(ctx, "job-1", "sha256:00"); err != nil {
			t.Fatal(err)
		}
		if err := l.DropSweep(ctx, "job-1"); err != nil {
			t.Fatal(err)
		}
		if pending, err = l.PendingSweeps(ctx); err != nil || len(pending) != 0 {
			t.Fatalf("PendingSweeps after attest = %+v, %v; want none", pending, err)
		}
		if s, err := l.sweep(ctx, "job-1"); err != nil || s.Attested != "sha256:00" {
			t.Fatalf("attested sweep = %+v, %v; want kept with its digest", s, err)
		}
		if _, err := l.RecordSweep(ctx, Sweep{Job: "job-2", Kind: SweepSettle, Escrow: esc}); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("RecordSweep of a mismatched sweep: %v, want ErrBadRequest", err)
		}
	})
}
