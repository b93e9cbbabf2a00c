package settlement

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func balance(t *testing.T, l *Ledger, account string) int64 {
	t.Helper()
	b, err := l.Balance(context.Background(), account, "USD")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A failover reassigns the held job: the settlement pays the new provider,
// the lost one nothing; a replay posts nothing, and the key cannot be reused
// for another provider.
func TestReassignPaysTheNewProvider(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		fund(t, l, "acme", 1000)
		hold(t, l, "job-f", 100, 0, 500)
		r := ReassignRequest{Job: "job-f", From: "gpu-co", To: "gpu-b", N: 1, Reason: "gpu-co lost"}
		got, err := l.Reassign(ctx, r)
		if err != nil || got.To != "gpu-b" || got.From != "gpu-co" || got.Transaction.Replayed {
			t.Fatalf("Reassign = %+v, %v", got, err)
		}
		again, err := l.Reassign(ctx, r)
		if err != nil || !again.Transaction.Replayed || again.To != "gpu-b" {
			t.Fatalf("replay = %+v, %v", again, err)
		}
		other := r
		other.To = "gpu-c"
		if _, err := l.Reassign(ctx, other); !errors.Is(err, ErrKeyReused) {
			t.Errorf("same key, other provider: %v, want ErrKeyReused", err)
		}
		// The next reassignment must start from the provider the job has.
		if _, err := l.Reassign(ctx, ReassignRequest{Job: "job-f", From: "gpu-co", To: "gpu-c", N: 2}); !errors.Is(err, ErrJobState) {
			t.Errorf("reassign from the old provider: %v, want ErrJobState", err)
		}
		st, err := l.Settle(ctx, SettleRequest{Job: "job-f", Attempt: 1, Succeeded: true, Price: 100})
		if err != nil {
			t.Fatal(err)
		}
		if st.Provider != "gpu-b" || st.ProviderPay != 100 {
			t.Errorf("settled %+v, want 100 paid to gpu-b", st)
		}
		if b := balance(t, l, ProviderAccount("gpu-co")); b != 0 {
			t.Errorf("the lost provider holds %d, want 0", b)
		}
		if _, err := l.Reassign(ctx, ReassignRequest{Job: "job-f", From: "gpu-b", To: "gpu-c", N: 3}); !errors.Is(err, ErrJobState) {
			t.Errorf("reassign a settled job: %v, want ErrJobState", err)
		}
		mustCheck(t, l)
	})
}

func TestReassignRefusesBadRequests(t *testing.T) {
	l := openLedger(t, filepath.Join(t.TempDir(), "l.db"))
	for _, r := range []ReassignRequest{
		{Job: "j", From: "a", To: "a", N: 1},
		{Job: "j", From: "a", To: "b", N: 0},
		{Job: "j", From: "a", To: "../b", N: 1},
		{Job: "", From: "a", To: "b", N: 1},
	} {
		if _, err := l.Reassign(context.Background(), r); !errors.Is(err, ErrBadRequest) {
			t.Errorf("Reassign(%+v) = %v, want ErrBadRequest", r, err)
		}
	}
	if _, err := l.Reassign(context.Background(), ReassignRequest{Job: "nope", From: "a", To: "b", N: 1}); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("unknown job: %v", err)
	}
}

// A spot-check verdict slashes the agreed percentage of the stake, at most
// the bond, once per provider and job.
func TestSlashVerdict(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		fund(t, l, "acme", 1000)
		bond(t, l, "cheat", 60)
		hold(t, l, "job-s", 100, 0, 500)
		r := SlashRequest{Job: "job-s", Provider: "cheat", Stake: 100, SlashPercent: 50, Reason: "spot check: minority"}
		s, err := l.Slash(ctx, r)
		if err != nil || s.Slashed != 50 || s.Tenant != "acme" {
			t.Fatalf("Slash = %+v, %v", s, err)
		}
		again, err := l.Slash(ctx, r)
		if err != nil || !again.Transaction.Replayed || again.Slashed != 50 {
			t.Fatalf("replay = %+v, %v", again, err)
		}
		if b := balance(t, l, BondAccount("cheat")); b != 10 {
			t.Errorf("bond = %d, want 10", b)
		}
		// Another job's verdict takes at most what the bond still holds.
		hold(t, l, "job-s2", 100, 0, 500)
		s2, err := l.Slash(ctx, SlashRequest{Job: "job-s2", Provider: "cheat", Stake: 100, SlashPercent: 100, Reason: "spot check"})
		if err != nil || s2.Slashed != 10 {
			t.Fatalf("second slash = %+v, %v", s2, err)
		}
		// Terms with nothing at stake slash nothing, and say so.
		s3, err := l.Slash(ctx, SlashRequest{Job: "job-s", Provider: "nostake", Stake: 0, SlashPercent: 50, Reason: "spot check"})
		if err != nil || s3.Slashed != 0 {
			t.Fatalf("no stake = %+v, %v", s3, err)
		}
		if b := balance(t, l, TenantAccount("acme")); b != 1000-100-100+60 {
			t.Errorf("tenant = %d, want %d", b, 1000-100-100+60)
		}
		if _, err := l.Slash(ctx, SlashRequest{Job: "job-s", Provider: "cheat", SlashPercent: 101, Reason: "x"}); !errors.Is(err, ErrBadRequest) {
			t.Errorf("101%%: %v", err)
		}
		mustCheck(t, l)
	})
}
