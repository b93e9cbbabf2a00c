package settlement

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// propertySeeds are the seeded runs of TestRandomSequences; set
// ACCORD_SETTLEMENT_SEED to run one other seed.
func propertySeeds(t *testing.T) []uint64 {
	if s := os.Getenv("ACCORD_SETTLEMENT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ACCORD_SETTLEMENT_SEED: %v", err)
		}
		return []uint64{n}
	}
	return []uint64{1, 2, 3}
}

// TestRandomSequences applies random sequences of deposits, bonds, holds,
// settlements (with SLA refunds and slashes), releases, floor changes and
// replays of earlier calls, and after every step checks every invariant,
// that replays change nothing, and that the balances equal the sum of the
// postings the calls returned.
func TestRandomSequences(t *testing.T) {
	steps := 250
	if testing.Short() {
		steps = 80
	}
	// finals[seed][backend] is the final state, compared across backends:
	// the same sequence must leave the same balances on SQLite and PostgreSQL.
	finals := map[uint64]map[string]map[string]int64{}
	for _, b := range backendList {
		t.Run(b.name, func(t *testing.T) {
			for _, seed := range propertySeeds(t) {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					l := openLedger(t, b.dsn(t))
					runRandom(t, l, rand.New(rand.NewPCG(seed, 0x5e77)), steps)
					if finals[seed] == nil {
						finals[seed] = map[string]map[string]int64{}
					}
					finals[seed][b.name] = snapshot(t, l)
				})
			}
		})
	}
	for seed, byBackend := range finals {
		if len(byBackend) == 2 && !reflect.DeepEqual(byBackend["sqlite"], byBackend["postgres"]) {
			t.Errorf("seed %d: SQLite and PostgreSQL disagree:\n%v\n%v", seed, byBackend["sqlite"], byBackend["postgres"])
		}
	}
}

type replayable struct {
	name string
	id   int64
	call func() (*Transaction, error)
}

func runRandom(t *testing.T, l *Ledger, rng *rand.Rand, steps int) {
	ctx := context.Background()
	tenants := []string{"t0", "t1", "t2"}
	providers := []string{"p0", "p1"}
	currencies := []string{"USD", "EUR"}
	model := map[string]int64{} // expected balances from returned postings
	apply := func(tx *Transaction) {
		if tx.Replayed {
			return
		}
		for _, p := range tx.Postings {
			model[p.Account+"/"+p.Currency] += p.Amount
		}
	}
	var done []replayable
	record := func(name string, call func() (*Transaction, error)) {
		tx, err := call()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		apply(tx)
		if tx.ID != 0 {
			done = append(done, replayable{name, tx.ID, call})
		}
	}
	// allowed are the refusals a random request may legitimately meet.
	allowed := func(name string, err error) bool {
		for _, e := range []error{ErrInsufficientFunds, ErrJobState, ErrUnknownJob, ErrOverBudget, ErrBadRequest} {
			if errors.Is(err, e) {
				return true
			}
		}
		t.Fatalf("%s: unexpected error %v", name, err)
		return false
	}
	jobCurrency := map[string]string{}
	jobTenant := map[string]string{}
	var held []string
	feesPaid := 0 // settlements that paid model fees
	unhold := func(job string) {
		for i, j := range held {
			if j == job {
				held = append(held[:i], held[i+1:]...)
				return
			}
		}
	}
	for step := 0; step < steps; step++ {
		job := fmt.Sprintf("job-%d", rng.IntN(60))
		op := rng.IntN(100)
		if op >= 45 && op < 82 && len(held) > 0 && rng.IntN(5) > 0 {
			// Mostly settle or release jobs that are held.
			job = held[rng.IntN(len(held))]
		}
		cur := currencies[rng.IntN(2)]
		if c, ok := jobCurrency[job]; ok {
			cur = c
		}
		tenant := tenants[rng.IntN(len(tenants))]
		if tn, ok := jobTenant[job]; ok {
			tenant = tn
		}
		provider := providers[rng.IntN(len(providers))]
		switch {
		case op < 12:
			r := DepositRequest{Tenant: tenants[rng.IntN(3)], Currency: cur, Amount: 1 + rng.Int64N(3000), Key: fmt.Sprintf("dep-%d", step)}
			record("deposit", func() (*Transaction, error) { return l.Deposit(ctx, r) })
		case op < 18:
			r := BondRequest{Provider: provider, Currency: cur, Amount: 1 + rng.Int64N(2000), Key: fmt.Sprintf("bond-%d", step)}
			record("bond", func() (*Transaction, error) { return l.DepositBond(ctx, r) })
		case op < 21:
			if err := l.SetFloor(ctx, tenant, cur, -rng.Int64N(500)); err != nil {
				allowed("floor", err)
			}
		case op < 45:
			price := rng.Int64N(1500)
			r := HoldRequest{Job: job, Tenant: tenant, Provider: provider, Currency: cur, Price: price,
				MarginBP: rng.Int64N(5000), Cap: max(0, price+rng.Int64N(800)-100), Attempt: step}
			call := func() (*Transaction, error) {
				e, err := l.Hold(ctx, r)
				if err != nil {
					return nil, err
				}
				if e.Amount > r.Cap || e.Amount < r.Price {
					t.Fatalf("hold %d outside [price %d, cap %d]", e.Amount, r.Price, r.Cap)
				}
				return &e.Transaction, nil
			}
			if tx, err := call(); err != nil {
				allowed("hold", err)
			} else {
				apply(tx)
				jobCurrency[job], jobTenant[job] = cur, tenant
				held = append(held, job)
				done = append(done, replayable{"hold", tx.ID, call})
			}
		case op < 70:
			var roy []Royalty
			for i := range rng.IntN(3) {
				roy = append(roy, Royalty{Account: fmt.Sprintf("m%d", i), BasisPoints: rng.Int64N(2000)})
			}
			var fees []ModelFee
			for i := range rng.IntN(3) {
				f := ModelFee{Model: fmt.Sprintf("acme/m%d@1.0.0", i), Digest: "sha256:" + strings.Repeat(strconv.Itoa(i), 64), Use: UseInference}
				for j := range 1 + rng.IntN(3) {
					f.Shares = append(f.Shares, Payment{Account: fmt.Sprintf("owner:o%d", rng.IntN(3)), Amount: rng.Int64N(600),
						Model: fmt.Sprintf("acme/a%d@1.0.0", j)})
				}
				fees = append(fees, f)
			}
			r := SettleRequest{Job: job, Attempt: step, Succeeded: rng.IntN(4) > 0, PayOnSuccess: rng.IntN(2) == 0,
				Price: rng.Int64N(1500),
				Usage: Usage{WallMillis: rng.Int64N(7_200_000), CPUMillis: rng.Int64N(7_200_000),
					MemGBMillis: rng.Int64N(30_000_000), GPUMillis: rng.Int64N(3_600_000)},
				Rates: Rates{WallPerHour: rng.Int64N(100), CPUPerHour: rng.Int64N(50), MemGBPerHour: rng.Int64N(10), GPUPerHour: rng.Int64N(400)},
				FeeBP: rng.Int64N(1500), Royalties: roy, ModelFees: fees,
				SLA: SLATerms{MaxDuration: time.Duration(1+rng.IntN(60)) * time.Minute,
					RefundPercent: rng.IntN(101), SlashPercent: rng.IntN(101), Stake: rng.Int64N(2000), SlashOnTests: rng.IntN(2) == 0},
				Outcome: Outcome{Duration: time.Duration(rng.IntN(90)) * time.Minute, VerificationFailed: rng.IntN(8) == 0}}
			call := func() (*Transaction, error) {
				s, err := l.Settle(ctx, r)
				if err != nil {
					return nil, err
				}
				fees := checkFeesPaid(t, r, s)
				if fees > 0 && !s.Transaction.Replayed {
					feesPaid++
				}
				paid := s.ProviderPay + s.PlatformFee + s.Refund + fees
				for _, p := range s.Royalties {
					paid += p.Amount
				}
				if paid != s.Held || s.Paid()+s.Refund != s.Held || s.Charge > s.Held || s.ProviderPay < 0 || s.Payable != s.Charge-s.SLARefund {
					t.Fatalf("settlement does not add up: %+v", s)
				}
				if s.Slashed > r.SLA.Stake {
					t.Fatalf("slashed %d beyond the agreed stake %d", s.Slashed, r.SLA.Stake)
				}
				if !r.Succeeded && r.PayOnSuccess && s.Charge != 0 {
					t.Fatalf("failed pay-on-success job charged %d", s.Charge)
				}
				return &s.Transaction, nil
			}
			if tx, err := call(); err != nil {
				allowed("settle", err)
			} else {
				apply(tx)
				unhold(job)
				done = append(done, replayable{"settle", tx.ID, call})
			}
		case op < 82:
			r := ReleaseRequest{Job: job, Attempt: step}
			call := func() (*Transaction, error) { return l.Release(ctx, r) }
			if tx, err := call(); err != nil {
				allowed("release", err)
			} else {
				apply(tx)
				unhold(job)
				if tx.ID != 0 {
					done = append(done, replayable{"release", tx.ID, call})
				}
			}
		default:
			if len(done) == 0 {
				continue
			}
			d := done[rng.IntN(len(done))]
			before := snapshot(t, l)
			tx, err := d.call()
			if err != nil {
				t.Fatalf("step %d: replay of %s %d: %v", step, d.name, d.id, err)
			}
			if !tx.Replayed || tx.ID != d.id {
				t.Fatalf("step %d: replay of %s %d posted anew: %+v", step, d.name, d.id, tx)
			}
			if after := snapshot(t, l); !reflect.DeepEqual(before, after) {
				t.Fatalf("step %d: replay of %s changed balances", step, d.name)
			}
		}
		if r := mustCheck(t, l); r.Transactions == 0 && step > 50 {
			t.Fatalf("step %d: nothing was ever posted", step)
		}
	}
	got := snapshot(t, l)
	for k, v := range model {
		if got[k] != v {
			t.Errorf("%s = %d, but the returned postings sum to %d", k, got[k], v)
		}
	}
	for k, v := range got {
		if model[k] != v {
			t.Errorf("%s = %d, but the returned postings sum to %d", k, v, model[k])
		}
	}
	kinds := map[string]int{}
	for _, d := range done {
		kinds[d.name]++
	}
	t.Logf("%d steps, committed: %v; %d settlements paid model fees", steps, kinds, feesPaid)
	if kinds["settle"] == 0 || kinds["hold"] == 0 {
		t.Fatalf("the random sequence never settled a job: %v", kinds)
	}
}

// checkFeesPaid checks the model fees of settlement s of r: none for a
// failed pay-on-success job; otherwise every share paid in full, in order,
// until the escrow ran out (one share cut, those after it nothing, and
// Capped set), and ModelFeeTotal their sum. It returns the sum.
func checkFeesPaid(t *testing.T, r SettleRequest, s *Settlement) int64 {
	t.Helper()
	if !r.Succeeded && r.PayOnSuccess {
		if s.ModelFees != nil || s.ModelFeeTotal != 0 {
			t.Fatalf("failed pay-on-success job paid model fees: %+v", s.ModelFees)
		}
		return 0
	}
	if len(s.ModelFees) != len(r.ModelFees) {
		t.Fatalf("%d model fees paid of %d", len(s.ModelFees), len(r.ModelFees))
	}
	var total int64
	short := false
	for i, f := range s.ModelFees {
		for j, p := range f.Shares {
			want := r.ModelFees[i].Shares[j]
			if p.Account != want.Account || p.Model != want.Model || p.Amount < 0 || p.Amount > want.Amount || short && p.Amount != 0 {
				t.Fatalf("fee %d share %d paid %+v of %+v (short before: %v)", i, j, p, want, short)
			}
			short = short || p.Amount < want.Amount
			total += p.Amount
		}
	}
	if total != s.ModelFeeTotal || total > s.Held || short && (!s.Capped || s.Charge != 0 || total != s.Held) {
		t.Fatalf("model fees %d (recorded %d, cut %v) of held %d: %+v", total, s.ModelFeeTotal, short, s.Held, s)
	}
	return total
}
