package settlement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func fund(t testing.TB, l *Ledger, tenant string, amount int64) {
	t.Helper()
	if _, err := l.Deposit(context.Background(), DepositRequest{Tenant: tenant, Currency: "USD", Amount: amount, Key: "fund-" + tenant}); err != nil {
		t.Fatalf("Deposit: %v", err)
	}
}

func bond(t testing.TB, l *Ledger, provider string, amount int64) {
	t.Helper()
	if _, err := l.DepositBond(context.Background(), BondRequest{Provider: provider, Currency: "USD", Amount: amount, Key: "bond-" + provider}); err != nil {
		t.Fatalf("DepositBond: %v", err)
	}
}

func hold(t testing.TB, l *Ledger, job string, price, marginBP, cap int64) *Escrow {
	t.Helper()
	e, err := l.Hold(context.Background(), HoldRequest{Job: job, Tenant: "acme", Provider: "gpu-co", Currency: "USD",
		Price: price, MarginBP: marginBP, Cap: cap, Attempt: 1})
	if err != nil {
		t.Fatalf("Hold(%s): %v", job, err)
	}
	return e
}

func TestSettleKnownAnswer(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		fund(t, l, "acme", 10_000)
		bond(t, l, "gpu-co", 5_000)

		e := hold(t, l, "job-1", 1000, 2000, 1500)
		if e.Amount != 1200 {
			t.Fatalf("hold amount = %d, want 1200 (price + 20%%)", e.Amount)
		}
		if got := mustBalance(t, l, "tenant:acme", "USD"); got != 8800 {
			t.Fatalf("tenant after hold = %d, want 8800", got)
		}
		mustCheck(t, l)

		s, err := l.Settle(ctx, SettleRequest{
			Job: "job-1", Attempt: 1, Succeeded: true, PayOnSuccess: true, Price: 800,
			Usage:     Usage{WallMillis: 3_600_000, CPUMillis: 1_800_000, GPUMillis: 1001},
			Rates:     Rates{WallPerHour: 100, CPUPerHour: 60, MemGBPerHour: 7, GPUPerHour: 3600},
			FeeBP:     500,
			Royalties: []Royalty{{Account: "alice", BasisPoints: 1000}},
		})
		if err != nil {
			t.Fatalf("Settle: %v", err)
		}
		want := Settlement{Job: "job-1", Tenant: "acme", Provider: "gpu-co", Currency: "USD", Held: 1200,
			Usage:   Usage{WallMillis: 3_600_000, CPUMillis: 1_800_000, GPUMillis: 1001},
			Rates:   Rates{WallPerHour: 100, CPUPerHour: 60, MemGBPerHour: 7, GPUPerHour: 3600},
			Metered: Charges{Wall: 100, CPU: 30, Mem: 0, GPU: 2, Total: 132},
			Charge:  932, Payable: 932, PlatformFee: 46, ProviderPay: 793,
			Royalties: []Payment{{Account: "owner:alice", Amount: 93}}, Refund: 268}
		got := *s
		got.Transaction = Transaction{}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("settlement\n got %+v\nwant %+v", got, want)
		}
		for acct, bal := range map[string]int64{
			"tenant:acme": 9068, "provider:gpu-co": 793, "platform:fee": 46, "owner:alice": 93,
			"escrow:job-1": 0, "bond:gpu-co": 5000, "external:world": -15_000,
		} {
			if got := mustBalance(t, l, acct, "USD"); got != bal {
				t.Errorf("%s = %d, want %d", acct, got, bal)
			}
		}
		var sum int64
		for _, p := range s.Transaction.Postings {
			sum += p.Amount
		}
		if sum != 0 || len(s.Transaction.Postings) == 0 {
			t.Fatalf("postings %v do not balance", s.Transaction.Postings)
		}
		// The settlement round-trips through JSON for the attestation.
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Settlement
		if err := json.Unmarshal(b, &back); err != nil || len(back.Transaction.Postings) != len(s.Transaction.Postings) {
			t.Fatalf("JSON round trip: %v, %d postings", err, len(back.Transaction.Postings))
		}
		mustCheck(t, l)

		st, err := l.Statement(ctx, "tenant:acme")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Jobs) != 1 {
			t.Fatalf("statement jobs = %+v", st.Jobs)
		}
		wantJob := JobCost{Job: "job-1", Tenant: "acme", Provider: "gpu-co", Currency: "USD", State: JobSettled,
			Held: 1200, ProviderPay: 793, PlatformFee: 46, Royalties: 93, Refunded: 268, Cost: 932}
		if !reflect.DeepEqual(st.Jobs[0], wantJob) {
			t.Fatalf("statement job\n got %+v\nwant %+v", st.Jobs[0], wantJob)
		}
		pst, err := l.Statement(ctx, "provider:gpu-co")
		if err != nil || len(pst.Jobs) != 1 || pst.Jobs[0].ProviderPay != 793 || len(pst.Balances) != 2 {
			t.Fatalf("provider statement %+v, %v", pst, err)
		}
	})
}

// bondedLedger is a ledger where tenant acme holds 10,000 and provider
// gpu-co a bond of 5,000.
func bondedLedger(t *testing.T, dsn string) *Ledger {
	l := openLedger(t, dsn)
	fund(t, l, "acme", 10_000)
	bond(t, l, "gpu-co", 5_000)
	return l
}

// holdAndSettle holds 1,000 for r.Job and settles it with r.
func holdAndSettle(t *testing.T, l *Ledger, r SettleRequest) *Settlement {
	t.Helper()
	hold(t, l, r.Job, 1000, 0, 1000)
	s, err := l.Settle(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSLABreachRefundsAndSlashes(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := bondedLedger(t, dsn)
		terms := SLATerms{MaxDuration: time.Hour, RefundPercent: 25, SlashPercent: 10, Stake: 1000}

		hold(t, l, "job-late", 1000, 0, 1000)
		s, err := l.Settle(ctx, SettleRequest{Job: "job-late", Attempt: 1, Succeeded: true, PayOnSuccess: true,
			Price: 1000, FeeBP: 500, SLA: terms, Outcome: Outcome{Duration: 2 * time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		// 10% of the agreed stake, not of the bond.
		if !s.SLA.Breached || s.Charge != 1000 || s.SLARefund != 250 || s.Payable != 750 ||
			s.PlatformFee != 37 || s.ProviderPay != 713 || s.Refund != 250 || s.Slashed != 100 {
			t.Fatalf("breached settlement = %+v", s)
		}
		if got := mustBalance(t, l, "bond:gpu-co", "USD"); got != 4900 {
			t.Fatalf("bond = %d, want 4900", got)
		}

		// A failed pay-on-success job refunds everything; its failing
		// tenant-written tests breach the SLA but slash nothing: the
		// provider did not agree to test-based slashing.
		s = holdAndSettle(t, l, SettleRequest{Job: "job-bad", Attempt: 1, Succeeded: false, PayOnSuccess: true,
			Price: 1000, FeeBP: 500, SLA: terms, Outcome: Outcome{Duration: time.Minute, VerificationFailed: true}})
		if !s.SLA.Breached || s.Charge != 0 || s.ProviderPay != 0 || s.PlatformFee != 0 || s.Refund != 1000 || s.Slashed != 0 {
			t.Fatalf("failed settlement = %+v", s)
		}

		// Where the provider agreed to test-based slashing, it is slashed.
		onTests := terms
		onTests.SlashOnTests = true
		s = holdAndSettle(t, l, SettleRequest{Job: "job-bad-2", Attempt: 1, Succeeded: false, PayOnSuccess: true,
			Price: 1000, SLA: onTests, Outcome: Outcome{Duration: time.Minute, VerificationFailed: true}})
		if s.Refund != 1000 || s.Slashed != 100 {
			t.Fatalf("failed settlement with test slashing = %+v", s)
		}
		// 10000 - 1000 + 250 + 100 - 1000 + 1000 - 1000 + 1000 + 100
		if got := mustBalance(t, l, "tenant:acme", "USD"); got != 9450 {
			t.Fatalf("tenant = %d, want 9450", got)
		}
		mustCheck(t, l)
	})
}

// TestSLAAttackCannotDrainBond is issue 19's attack: a spec asking
// sla: {deadline: 1ms, refund_percent: 100, slash_percent: 100} used to pay
// the tenant the provider's whole bond. A slash is now bounded by the stake
// the provider agreed: none with no stake, the stake at most otherwise.
func TestSLAAttackCannotDrainBond(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		l := bondedLedger(t, dsn)
		placed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		out := Outcome{Placed: placed, Finished: placed.Add(time.Second), Duration: time.Second}
		for i, c := range []struct {
			stake, slashed int64
		}{{0, 0}, {200, 200}} {
			s := holdAndSettle(t, l, SettleRequest{Job: fmt.Sprintf("attack-%d", i), Attempt: 1, Succeeded: true, PayOnSuccess: true, Price: 1000,
				SLA: SLATerms{Deadline: time.Millisecond, RefundPercent: 100, SlashPercent: 100, Stake: c.stake}, Outcome: out})
			if !s.SLA.Breached || s.Slashed != c.slashed {
				t.Fatalf("stake %d: slashed %d, want %d (%+v)", c.stake, s.Slashed, c.slashed, s)
			}
		}
		if got := mustBalance(t, l, "bond:gpu-co", "USD"); got != 4800 {
			t.Fatalf("bond = %d, want 4800: the attack took more than the agreed stake", got)
		}
		mustCheck(t, l)
	})
}

func TestHoldInsufficientFunds(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		fund(t, l, "acme", 500)
		req := HoldRequest{Job: "job-1", Tenant: "acme", Provider: "p", Currency: "USD", Price: 1000, Cap: 2000, Attempt: 1}
		_, err := l.Hold(ctx, req)
		if !errors.Is(err, ErrInsufficientFunds) {
			t.Fatalf("Hold without funds: %v, want ErrInsufficientFunds", err)
		}
		if got := mustBalance(t, l, "tenant:acme", "USD"); got != 500 {
			t.Fatalf("failed hold moved money: tenant = %d", got)
		}
		mustCheck(t, l)
		// A credit floor lets the same hold through.
		if err := l.SetFloor(ctx, "acme", "USD", -600); err != nil {
			t.Fatal(err)
		}
		e, err := l.Hold(ctx, req)
		if err != nil || e.Transaction.Replayed {
			t.Fatalf("Hold on credit: %v (replayed %v)", err, e != nil && e.Transaction.Replayed)
		}
		if got := mustBalance(t, l, "tenant:acme", "USD"); got != -500 {
			t.Fatalf("tenant on credit = %d, want -500", got)
		}
		if err := l.SetFloor(ctx, "acme", "USD", 0); !errors.Is(err, ErrInsufficientFunds) {
			t.Fatalf("raising the floor above the balance: %v", err)
		}
		mustCheck(t, l)
		if _, err := l.Hold(ctx, HoldRequest{Job: "job-2", Tenant: "acme", Provider: "p", Currency: "USD", Price: 3000, Cap: 2000}); !errors.Is(err, ErrOverBudget) {
			t.Fatalf("price over cap: %v", err)
		}
	})
}

func TestReplaysPostNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		dep := DepositRequest{Tenant: "acme", Currency: "USD", Amount: 5000, Key: "pay-1"}
		bnd := BondRequest{Provider: "p", Currency: "USD", Amount: 100, Key: "b-1"}
		hr := HoldRequest{Job: "job-1", Tenant: "acme", Provider: "p", Currency: "USD", Price: 1000, MarginBP: 1000, Cap: 5000, Attempt: 1}
		sr := SettleRequest{Job: "job-1", Attempt: 1, Succeeded: true, Price: 900, FeeBP: 100,
			SLA: SLATerms{MaxDuration: time.Second, SlashPercent: 50, Stake: 100}, Outcome: Outcome{Duration: time.Minute}}
		ops := []func() (*Transaction, error){
			func() (*Transaction, error) { return l.Deposit(ctx, dep) },
			func() (*Transaction, error) { return l.DepositBond(ctx, bnd) },
			func() (*Transaction, error) {
				e, err := l.Hold(ctx, hr)
				if err != nil {
					return nil, err
				}
				return &e.Transaction, nil
			},
			func() (*Transaction, error) {
				s, err := l.Settle(ctx, sr)
				if err != nil {
					return nil, err
				}
				return &s.Transaction, nil
			},
		}
		for i, op := range ops {
			first, err := op()
			if err != nil || first.Replayed {
				t.Fatalf("op %d: %v", i, err)
			}
			before := snapshot(t, l)
			again, err := op()
			if err != nil {
				t.Fatalf("op %d replay: %v", i, err)
			}
			if !again.Replayed || again.ID != first.ID || !reflect.DeepEqual(again.Postings, first.Postings) {
				t.Fatalf("op %d replay = %+v, want the original %+v", i, again, first)
			}
			if after := snapshot(t, l); !reflect.DeepEqual(before, after) {
				t.Fatalf("op %d replay changed balances:\n%v\n%v", i, before, after)
			}
		}
		s1, _ := l.Settle(ctx, sr)
		if s1.Slashed != 50 || s1.Charge != 900 {
			t.Fatalf("replayed settlement lost its detail: %+v", s1)
		}
		// Same key, different request.
		dep.Amount = 6000
		if _, err := l.Deposit(ctx, dep); !errors.Is(err, ErrKeyReused) {
			t.Fatalf("key reuse: %v", err)
		}
		// The job is settled: another settle attempt or a hold must fail.
		sr.Attempt = 2
		if _, err := l.Settle(ctx, sr); !errors.Is(err, ErrJobState) {
			t.Fatalf("second settle: %v", err)
		}
		hr.Attempt = 2
		if _, err := l.Hold(ctx, hr); !errors.Is(err, ErrJobState) {
			t.Fatalf("hold of a settled job: %v", err)
		}
		if _, err := l.Release(ctx, ReleaseRequest{Job: "job-1", Attempt: 1}); !errors.Is(err, ErrJobState) {
			t.Fatalf("release of a settled job: %v", err)
		}
		mustCheck(t, l)
	})
}

func TestReleaseCompensation(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		fund(t, l, "acme", 2000)
		// Never held (its hold failed): nothing to release.
		tx, err := l.Release(ctx, ReleaseRequest{Job: "job-none", Attempt: 1})
		if err != nil || len(tx.Postings) != 0 {
			t.Fatalf("release of an unknown job: %+v, %v", tx, err)
		}
		hold(t, l, "job-1", 1500, 0, 1500)
		tx, err = l.Release(ctx, ReleaseRequest{Job: "job-1", Attempt: 1})
		if err != nil || len(tx.Postings) != 2 {
			t.Fatalf("release: %+v, %v", tx, err)
		}
		again, err := l.Release(ctx, ReleaseRequest{Job: "job-1", Attempt: 1})
		if err != nil || !again.Replayed || again.ID != tx.ID {
			t.Fatalf("release replay: %+v, %v", again, err)
		}
		other, err := l.Release(ctx, ReleaseRequest{Job: "job-1", Attempt: 7})
		if err != nil || len(other.Postings) != 0 {
			t.Fatalf("release of a released job: %+v, %v", other, err)
		}
		if got := mustBalance(t, l, "tenant:acme", "USD"); got != 2000 {
			t.Fatalf("tenant after release = %d", got)
		}
		if _, err := l.Settle(ctx, SettleRequest{Job: "job-1", Attempt: 1, Succeeded: true, Price: 1}); !errors.Is(err, ErrJobState) {
			t.Fatalf("settle of a released job: %v", err)
		}
		// A released job can be placed again.
		e, err := l.Hold(ctx, HoldRequest{Job: "job-1", Tenant: "acme", Provider: "q", Currency: "USD", Price: 700, Cap: 700, Attempt: 2})
		if err != nil || e.Amount != 700 {
			t.Fatalf("re-hold: %+v, %v", e, err)
		}
		if _, err := l.Settle(ctx, SettleRequest{Job: "job-1", Attempt: 1, Succeeded: true, Price: 700}); err != nil {
			t.Fatal(err)
		}
		if got := mustBalance(t, l, "provider:q", "USD"); got != 700 {
			t.Fatalf("provider q = %d", got)
		}
		mustCheck(t, l)
	})
}

func TestBadInput(t *testing.T) {
	l := openLedger(t, backendList[0].dsn(t))
	ctx := context.Background()
	cases := []struct {
		name string
		err  error
		run  func() error
	}{
		{"negative deposit", ErrBadAmount, func() error {
			_, err := l.Deposit(ctx, DepositRequest{Tenant: "a", Currency: "USD", Amount: -1, Key: "k"})
			return err
		}},
		{"huge deposit", ErrBadAmount, func() error {
			_, err := l.Deposit(ctx, DepositRequest{Tenant: "a", Currency: "USD", Amount: MaxAmount + 1, Key: "k"})
			return err
		}},
		{"lower-case currency", ErrBadCurrency, func() error {
			_, err := l.Deposit(ctx, DepositRequest{Tenant: "a", Currency: "usd", Amount: 1, Key: "k"})
			return err
		}},
		{"no key", ErrBadRequest, func() error {
			_, err := l.Deposit(ctx, DepositRequest{Tenant: "a", Currency: "USD", Amount: 1})
			return err
		}},
		{"space in tenant", ErrBadAccount, func() error {
			_, err := l.Deposit(ctx, DepositRequest{Tenant: "a b", Currency: "USD", Amount: 1, Key: "k"})
			return err
		}},
		{"settle unknown job", ErrUnknownJob, func() error {
			_, err := l.Settle(ctx, SettleRequest{Job: "nope", Attempt: 1})
			return err
		}},
		{"fee over 100%", ErrBadRequest, func() error {
			_, err := l.Settle(ctx, SettleRequest{Job: "j", FeeBP: 9000, Royalties: []Royalty{{Account: "x", BasisPoints: 2000}}})
			return err
		}},
		{"slash over 100%", ErrBadRequest, func() error {
			_, err := l.Settle(ctx, SettleRequest{Job: "j", SLA: SLATerms{SlashPercent: 101}})
			return err
		}},
		{"negative usage", ErrBadRequest, func() error {
			_, err := l.Settle(ctx, SettleRequest{Job: "j", Usage: Usage{CPUMillis: -1}})
			return err
		}},
		{"unknown account kind", ErrBadAccount, func() error {
			_, err := l.Balances(ctx, "bank:x")
			return err
		}},
		{"statement of escrow", ErrBadAccount, func() error {
			_, err := l.Statement(ctx, "escrow:job-1")
			return err
		}},
	}
	for _, c := range cases {
		if err := c.run(); !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
	}
	mustCheck(t, l)
}
