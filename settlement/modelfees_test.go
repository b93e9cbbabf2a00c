package settlement

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func digestOf(label string) string {
	return "sha256:" + fmt.Sprintf("%064x", []byte(label))[:64]
}

// clfFee is one inference of acme/clf@1.2.0 (price 200): 170 to its owner
// ann, a 15 % royalty (30) to bob, the owner of its parent base@2.0.1.
func clfFee() ModelFee {
	return ModelFee{Model: "acme/clf@1.2.0", Digest: digestOf("clf"), Use: UseInference, Shares: []Payment{
		{Account: "owner:ann", Amount: 170, Model: "acme/clf@1.2.0"},
		{Account: "owner:bob", Amount: 30, Model: "acme/base@2.0.1"},
	}}
}

// tunerFee is a fine-tune of ann/tuner@0.1.0 (price 50), all to ann.
func tunerFee() ModelFee {
	return ModelFee{Model: "ann/tuner@0.1.0", Digest: digestOf("tuner"), Use: UseFineTune, Shares: []Payment{
		{Account: "owner:ann", Amount: 50},
	}}
}

func TestSettleModelFeesKnownAnswer(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := bondedLedger(t, dsn)
		s := holdAndSettle(t, l, SettleRequest{Job: "job-1", Attempt: 1, Succeeded: true, PayOnSuccess: true,
			Price: 600, FeeBP: 1000, Royalties: []Royalty{{Account: "carol", BasisPoints: 500}},
			ModelFees: []ModelFee{clfFee(), tunerFee()}})
		want := Settlement{Job: "job-1", Tenant: "acme", Provider: "gpu-co", Currency: "USD", Held: 1000,
			ModelFees: []ModelFee{clfFee(), tunerFee()}, ModelFeeTotal: 250,
			Charge: 600, Payable: 600, PlatformFee: 60, ProviderPay: 510,
			Royalties: []Payment{{Account: "owner:carol", Amount: 30}}, Refund: 150}
		got := *s
		got.Transaction = Transaction{}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("settlement\n got %+v\nwant %+v", got, want)
		}
		if s.Paid()+s.Refund != s.Held || s.Paid() != 850 {
			t.Errorf("Paid = %d, Refund %d, Held %d", s.Paid(), s.Refund, s.Held)
		}
		for acct, bal := range map[string]int64{
			"tenant:acme": 9150, "provider:gpu-co": 510, "platform:fee": 60, "owner:carol": 30,
			"owner:ann": 220, "owner:bob": 30, "escrow:job-1": 0,
		} {
			if got := mustBalance(t, l, acct, "USD"); got != bal {
				t.Errorf("%s = %d, want %d", acct, got, bal)
			}
		}
		memos := map[string]int64{}
		for _, p := range s.Transaction.Postings {
			if p.Account != "escrow:job-1" {
				memos[p.Account+" "+p.Memo] += p.Amount
			}
		}
		for k, v := range map[string]int64{
			"owner:ann model-fee acme/clf@1.2.0": 170, "owner:bob royalty acme/base@2.0.1": 30,
			"owner:ann model-fee ann/tuner@0.1.0": 50, "owner:carol royalty": 30,
		} {
			if memos[k] != v {
				t.Errorf("posting %q = %d, want %d (all: %v)", k, memos[k], v, memos)
			}
		}
		mustCheck(t, l)

		st, err := l.Statement(ctx, "tenant:acme")
		if err != nil || len(st.Jobs) != 1 {
			t.Fatalf("statement %+v, %v", st, err)
		}
		wantJob := JobCost{Job: "job-1", Tenant: "acme", Provider: "gpu-co", Currency: "USD", State: JobSettled,
			Held: 1000, ProviderPay: 510, PlatformFee: 60, Royalties: 30, ModelFees: 250,
			ModelFeeLines: []FeeLine{
				{Account: "owner:ann", Memo: "model-fee acme/clf@1.2.0", Amount: 170},
				{Account: "owner:bob", Memo: "royalty acme/base@2.0.1", Amount: 30},
				{Account: "owner:ann", Memo: "model-fee ann/tuner@0.1.0", Amount: 50},
			},
			Refunded: 150, Cost: 850}
		if !reflect.DeepEqual(st.Jobs[0], wantJob) {
			t.Fatalf("statement job\n got %+v\nwant %+v", st.Jobs[0], wantJob)
		}
		if tot := st.Totals["USD"]; tot.ModelFees != 250 || tot.Cost != 850 {
			t.Errorf("totals %+v", tot)
		}
	})
}

// The SLA refund is of the compute charge only: the model owners did not
// breach, so their fees are paid in full.
func TestSettleModelFeesSLARefund(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		l := bondedLedger(t, dsn)
		s := holdAndSettle(t, l, SettleRequest{Job: "job-1", Attempt: 1, Succeeded: true, Price: 600,
			SLA:       SLATerms{MaxDuration: time.Minute, RefundPercent: 50},
			Outcome:   Outcome{Duration: time.Hour},
			ModelFees: []ModelFee{clfFee()}})
		if s.ModelFeeTotal != 200 || s.Charge != 600 || s.SLARefund != 300 || s.Payable != 300 || s.Refund != 500 {
			t.Fatalf("settlement %+v", s)
		}
		if got := mustBalance(t, l, "owner:ann", "USD"); got != 170 {
			t.Errorf("owner:ann = %d, want 170", got)
		}
		mustCheck(t, l)
	})
}

// Model fees the escrow cannot cover are cut in order, the charge gets what
// is left, and nothing fails or comes from nowhere.
func TestSettleModelFeesCapped(t *testing.T) {
	big := func(amounts ...int64) ModelFee {
		f := ModelFee{Model: "acme/big@1.0.0", Digest: digestOf("big"), Use: UseDeployment}
		for i, a := range amounts {
			f.Shares = append(f.Shares, Payment{Account: fmt.Sprintf("owner:o%d", i), Amount: a})
		}
		return f
	}
	cases := []struct {
		name   string
		fees   []ModelFee
		paid   []int64 // per share, all fees in order
		charge int64
		refund int64
		capped bool
	}{
		{"fees exactly the escrow", []ModelFee{big(600, 400)}, []int64{600, 400}, 0, 0, true},
		{"fees beyond the escrow", []ModelFee{big(700, 400, 100)}, []int64{700, 300, 0}, 0, 0, true},
		{"second fee cut", []ModelFee{big(900), big(200, 5)}, []int64{900, 100, 0}, 0, 0, true},
		{"charge cut to what fees leave", []ModelFee{big(800)}, []int64{800}, 200, 0, true},
		{"room for both", []ModelFee{big(100)}, []int64{100}, 600, 300, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, dsn string) {
				l := bondedLedger(t, dsn)
				s := holdAndSettle(t, l, SettleRequest{Job: "job-1", Attempt: 1, Succeeded: true, Price: 600, FeeBP: 1000, ModelFees: c.fees})
				var paid []int64
				var total int64
				for _, f := range s.ModelFees {
					for _, p := range f.Shares {
						paid = append(paid, p.Amount)
						total += p.Amount
					}
				}
				if !reflect.DeepEqual(paid, c.paid) || s.ModelFeeTotal != total || s.Charge != c.charge || s.Refund != c.refund || s.Capped != c.capped {
					t.Fatalf("paid %v (total %d), settlement %+v", paid, total, s)
				}
				if s.Paid()+s.Refund != s.Held || s.ProviderPay < 0 {
					t.Fatalf("does not add up: %+v", s)
				}
				owed := map[string]int64{}
				for _, f := range s.ModelFees {
					for _, p := range f.Shares {
						owed[p.Account] += p.Amount
					}
				}
				for acct, want := range owed {
					if got := mustBalance(t, l, acct, "USD"); got != want {
						t.Errorf("%s = %d, want %d", acct, got, want)
					}
				}
				mustCheck(t, l)
			})
		})
	}
}

// A failed pay-on-success job pays neither model fees nor the charge; a
// failed job without pay-on-success pays both.
func TestSettleModelFeesFailedJob(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		l := bondedLedger(t, dsn)
		s := holdAndSettle(t, l, SettleRequest{Job: "job-1", Attempt: 1, Succeeded: false, PayOnSuccess: true, Price: 600,
			ModelFees: []ModelFee{clfFee()}})
		if s.ModelFees != nil || s.ModelFeeTotal != 0 || s.Charge != 0 || s.Refund != 1000 {
			t.Fatalf("failed pay-on-success job: %+v", s)
		}
		s = holdAndSettle(t, l, SettleRequest{Job: "job-2", Attempt: 1, Succeeded: false, Price: 600,
			ModelFees: []ModelFee{clfFee()}})
		if s.ModelFeeTotal != 200 || s.Charge != 600 || s.Refund != 200 {
			t.Fatalf("failed job without pay-on-success: %+v", s)
		}
		if got := mustBalance(t, l, "owner:ann", "USD"); got != 170 {
			t.Errorf("owner:ann = %d, want 170 (job-2 only)", got)
		}
		mustCheck(t, l)
	})
}

// Settle is idempotent by Key(job, "settle", attempt) with and without
// model fees: a replay pays nobody twice, and the key cannot be reused for
// other fees.
func TestSettleModelFeesReplay(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := bondedLedger(t, dsn)
		for _, fees := range [][]ModelFee{nil, {clfFee(), tunerFee()}} {
			job := fmt.Sprintf("job-%d", len(fees))
			r := SettleRequest{Job: job, Attempt: 1, Succeeded: true, Price: 600, FeeBP: 500, ModelFees: fees}
			first := holdAndSettle(t, l, r)
			before := snapshot(t, l)
			for range 3 {
				again, err := l.Settle(ctx, r)
				if err != nil {
					t.Fatalf("%s: replay: %v", job, err)
				}
				if !again.Transaction.Replayed || again.Transaction.ID != first.Transaction.ID {
					t.Fatalf("%s: replay posted anew: %+v", job, again.Transaction)
				}
				a, f := *again, *first
				a.Transaction, f.Transaction = Transaction{}, Transaction{}
				if !reflect.DeepEqual(a, f) {
					t.Fatalf("%s: replay returned\n%+v\nnot\n%+v", job, a, f)
				}
			}
			if after := snapshot(t, l); !reflect.DeepEqual(before, after) {
				t.Fatalf("%s: replay changed balances:\n%v\n%v", job, before, after)
			}
			other := r
			other.ModelFees = []ModelFee{tunerFee()}
			if _, err := l.Settle(ctx, other); !errors.Is(err, ErrKeyReused) {
				t.Fatalf("%s: same key, other fees: %v", job, err)
			}
			mustCheck(t, l)
		}
		if got := mustBalance(t, l, "owner:ann", "USD"); got != 220 {
			t.Errorf("owner:ann = %d, want 220 (paid once)", got)
		}
	})
}

// The largest settlement accepted (64 fees of 256 shares: 32,768 fee
// postings) posts in bounded INSERTs and checks clean.
func TestSettleModelFeesLargest(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		l := bondedLedger(t, dsn)
		var fees []ModelFee
		for i := range MaxModelFees {
			f := ModelFee{Model: fmt.Sprintf("m/model-%d@1.0.0", i), Digest: digestOf(fmt.Sprint(i)), Use: UseInference}
			for j := range MaxModelFeeShares {
				f.Shares = append(f.Shares, Payment{Account: fmt.Sprintf("owner:o%d", j%50), Amount: 1, Model: fmt.Sprintf("m/anc-%d@1.0.0", j)})
			}
			fees = append(fees, f)
		}
		if _, err := l.Deposit(context.Background(), DepositRequest{Tenant: "acme", Currency: "USD", Amount: 20_000, Key: "more"}); err != nil {
			t.Fatal(err)
		}
		hold(t, l, "job-1", 20_000, 0, 20_000)
		s, err := l.Settle(context.Background(), SettleRequest{Job: "job-1", Attempt: 1, Succeeded: true, Price: 100, ModelFees: fees})
		if err != nil {
			t.Fatal(err)
		}
		if s.ModelFeeTotal != MaxModelFees*MaxModelFeeShares || s.Charge != 100 || s.Refund != 20_000-100-s.ModelFeeTotal {
			t.Fatalf("fees %d, charge %d, refund %d", s.ModelFeeTotal, s.Charge, s.Refund)
		}
		if n := len(s.Transaction.Postings); n < 2*MaxModelFees*MaxModelFeeShares {
			t.Fatalf("%d postings", n)
		}
		mustCheck(t, l)
	})
}

func TestCheckModelFees(t *testing.T) {
	many := func(n int, f ModelFee) []ModelFee {
		out := make([]ModelFee, n)
		for i := range out {
			out[i] = f
		}
		return out
	}
	edit := func(fn func(f *ModelFee)) []ModelFee {
		f := clfFee()
		fn(&f)
		return []ModelFee{f}
	}
	if err := CheckModelFees(many(MaxModelFees, clfFee())); err != nil {
		t.Fatalf("valid fees: %v", err)
	}
	cases := map[string]struct {
		fees []ModelFee
		want error
	}{
		"too many fees":      {many(MaxModelFees+1, clfFee()), ErrBadRequest},
		"too many shares":    {edit(func(f *ModelFee) { f.Shares = make([]Payment, MaxModelFeeShares+1) }), ErrBadRequest},
		"empty model":        {edit(func(f *ModelFee) { f.Model = "" }), ErrBadRequest},
		"model without @":    {edit(func(f *ModelFee) { f.Model = "acme/clf" }), ErrBadRequest},
		"model with space":   {edit(func(f *ModelFee) { f.Model = "acme/clf @1.0.0" }), ErrBadRequest},
		"model too long":     {edit(func(f *ModelFee) { f.Model = strings.Repeat("a", 300) + "@1.0.0" }), ErrBadRequest},
		"bad digest":         {edit(func(f *ModelFee) { f.Digest = "sha256:ABC" }), ErrBadRequest},
		"bad use":            {edit(func(f *ModelFee) { f.Use = "training" }), ErrBadRequest},
		"tenant account":     {edit(func(f *ModelFee) { f.Shares[0].Account = "tenant:ann" }), ErrBadAccount},
		"escrow account":     {edit(func(f *ModelFee) { f.Shares[0].Account = "escrow:job-1" }), ErrBadAccount},
		"external account":   {edit(func(f *ModelFee) { f.Shares[0].Account = "external:world" }), ErrBadAccount},
		"bare name":          {edit(func(f *ModelFee) { f.Shares[0].Account = "ann" }), ErrBadAccount},
		"owner not a tenant": {edit(func(f *ModelFee) { f.Shares[0].Account = "owner:Ann" }), ErrBadAccount},
		"negative share":     {edit(func(f *ModelFee) { f.Shares[0].Amount = -1 }), ErrBadAmount},
		"share too large":    {edit(func(f *ModelFee) { f.Shares[0].Amount = MaxAmount + 1 }), ErrBadAmount},
		"total too large": {edit(func(f *ModelFee) {
			f.Shares[0].Amount, f.Shares[1].Amount = MaxAmount, 1
		}), ErrBadAmount},
		"bad share model": {edit(func(f *ModelFee) { f.Shares[1].Model = "base\n@1" }), ErrBadRequest},
	}
	for name, c := range cases {
		err := CheckModelFees(c.fees)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
		if err != nil && len(err.Error()) > 700 {
			t.Errorf("%s: error of %d bytes", name, len(err.Error()))
		}
	}
	// Settle refuses what CheckModelFees refuses, before touching the ledger.
	l := openLedger(t, backendList[0].dsn(t))
	r := SettleRequest{Job: "job-1", Attempt: 1, Succeeded: true, ModelFees: cases["escrow account"].fees}
	if _, err := l.Settle(context.Background(), r); !errors.Is(err, ErrBadAccount) {
		t.Errorf("Settle with a fee to an escrow: %v", err)
	}
}
