package settlement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// splitLedger is a ledger where tenant acme holds 10,000, the lead
// provider gpu-co a bond of 5,000 and gpu-b one of 3,000.
func splitLedger(t *testing.T, dsn string) *Ledger {
	l := bondedLedger(t, dsn)
	bond(t, l, "gpu-b", 3_000)
	return l
}

var splitT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// threeParts is a split job over gpu-co (metered wall time, within its
// SLA), gpu-b (metered CPU and GPU, late: half refunded, 20 % of a 500
// stake slashed) and gpu-c (a fixed price, no SLA).
func threeParts(job string) SettleRequest {
	return SettleRequest{Job: job, Attempt: 1, Succeeded: true, PayOnSuccess: true, FeeBP: 500,
		Royalties: []Royalty{{Account: "alice", BasisPoints: 1000}},
		ModelFees: []ModelFee{{Model: "acme/m@1.0.0", Digest: "sha256:" + strings.Repeat("a", 64), Use: UseInference,
			Shares: []Payment{{Account: "owner:mo", Amount: 100}}}},
		Parts: []SettlePart{
			{Provider: "gpu-co", Price: 1000, Usage: Usage{WallMillis: 3_600_000}, Rates: Rates{WallPerHour: 100},
				SLA:     SLATerms{MaxDuration: time.Hour, RefundPercent: 25, SlashPercent: 10, Stake: 1000},
				Outcome: Outcome{Duration: 30 * time.Minute}},
			{Provider: "gpu-b", Price: 800, Usage: Usage{CPUMillis: 1_800_000, GPUMillis: 1001},
				Rates:   Rates{CPUPerHour: 60, GPUPerHour: 3600},
				SLA:     SLATerms{Deadline: time.Hour, RefundPercent: 50, SlashPercent: 20, Stake: 500},
				Outcome: Outcome{Placed: splitT0, Finished: splitT0.Add(2 * time.Hour), Duration: 2 * time.Hour}},
			{Provider: "gpu-c", Price: 1200},
		}}
}

func wantBalances(t *testing.T, l *Ledger, want map[string]int64) {
	t.Helper()
	for acct, bal := range want {
		if got := mustBalance(t, l, acct, "USD"); got != bal {
			t.Errorf("%s = %d, want %d", acct, got, bal)
		}
	}
}

func TestSettleSplitThreeParts(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := splitLedger(t, dsn)
		if e := hold(t, l, "split-3", 3000, 2000, 4000); e.Amount != 3600 {
			t.Fatalf("hold = %d, want 3600", e.Amount)
		}
		r := threeParts("split-3")
		s, err := l.Settle(ctx, r)
		if err != nil {
			t.Fatalf("Settle: %v", err)
		}
		late := SLAResult{Breached: true, Reasons: []string{"finished 2h0m0s after placement, deadline 1h0m0s"},
			RefundPercent: 50, SlashPercent: 20, Stake: 500}
		want := Settlement{Job: "split-3", Tenant: "acme", Provider: "gpu-co", Currency: "USD", Held: 3600,
			Metered:   Charges{Wall: 100, CPU: 30, GPU: 2, Total: 132},
			ModelFees: r.ModelFees, ModelFeeTotal: 100,
			Charge: 3132, SLARefund: 416, Payable: 2716, ProviderPay: 2310, PlatformFee: 135,
			Royalties: []Payment{{Account: "owner:alice", Amount: 271}}, Refund: 784, Slashed: 100,
			Parts: []PartSettlement{
				{Provider: "gpu-co", Price: 1000, Usage: r.Parts[0].Usage, Rates: r.Parts[0].Rates,
					Metered: Charges{Wall: 100, Total: 100}, Charge: 1100, Payable: 1100, ProviderPay: 935, PlatformFee: 55,
					Royalties: []Payment{{Account: "owner:alice", Amount: 110}}},
				{Provider: "gpu-b", Price: 800, Usage: r.Parts[1].Usage, Rates: r.Parts[1].Rates,
					Metered: Charges{CPU: 30, GPU: 2, Total: 32}, Charge: 832, SLA: late, SLARefund: 416, Payable: 416,
					ProviderPay: 355, PlatformFee: 20, Royalties: []Payment{{Account: "owner:alice", Amount: 41}}, Slashed: 100},
				{Provider: "gpu-c", Price: 1200, Charge: 1200, Payable: 1200, ProviderPay: 1020, PlatformFee: 60,
					Royalties: []Payment{{Account: "owner:alice", Amount: 120}}},
			}}
		got := *s
		got.Transaction = Transaction{}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("settlement\n got %+v\nwant %+v", got, want)
		}
		checkSplit(t, r, s)
		// 10,000 - 3,600 held + 784 refunded + 100 slashed.
		wantBalances(t, l, map[string]int64{
			"tenant:acme": 7284, "provider:gpu-co": 935, "provider:gpu-b": 355, "provider:gpu-c": 1020,
			"platform:fee": 135, "owner:alice": 271, "owner:mo": 100, "escrow:split-3": 0,
			"bond:gpu-co": 5000, "bond:gpu-b": 2900,
		})
		var pays, slashes int
		for _, p := range s.Transaction.Postings {
			switch {
			case p.Memo == "pay" && p.Amount > 0:
				pays++
			case p.Memo == "slash" && p.Amount < 0:
				slashes++
				if p.Account != "bond:gpu-b" {
					t.Errorf("slash from %s, want bond:gpu-b", p.Account)
				}
			}
		}
		if pays != 3 || slashes != 1 {
			t.Errorf("postings pay %d providers and slash %d bonds, want 3 and 1: %+v", pays, slashes, s.Transaction.Postings)
		}
		st, err := l.Statement(ctx, "tenant:acme")
		if err != nil || len(st.Jobs) != 1 {
			t.Fatalf("statement %+v, %v", st, err)
		}
		if j := st.Jobs[0]; j.ProviderPay != 2310 || j.PlatformFee != 135 || j.Royalties != 271 || j.ModelFees != 100 ||
			j.Refunded != 784 || j.Slashed != 100 || j.Cost != 2716 {
			t.Errorf("statement job = %+v", j)
		}
		// Each provider's statement lists the job with its own pay and
		// slash: the lead's as the job's provider of record, the other
		// parts' by their postings.
		for prov, want := range map[string][2]int64{"gpu-co": {935, 0}, "gpu-b": {355, 100}, "gpu-c": {1020, 0}} {
			st, err := l.Statement(ctx, "provider:"+prov)
			if err != nil || len(st.Jobs) != 1 {
				t.Fatalf("%s's statement %+v, %v", prov, st, err)
			}
			if j := st.Jobs[0]; j.Job != "split-3" || j.ProviderPay != want[0] || j.Slashed != want[1] {
				t.Errorf("%s's statement job = %+v, want pay %d slashed %d", prov, j, want[0], want[1])
			}
		}
		mustCheck(t, l)
	})
}

// TestSettleSplitCapped: the escrow covers the first part, a cut of the
// second and nothing of the third; the first part's breach refunds and
// slashes its lead provider.
func TestSettleSplitCapped(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		l := splitLedger(t, dsn)
		hold(t, l, "split-cap", 1000, 0, 1000)
		r := SettleRequest{Job: "split-cap", Attempt: 1, Succeeded: true, PayOnSuccess: true, FeeBP: 1000,
			Parts: []SettlePart{
				{Provider: "gpu-co", Price: 600, Usage: Usage{WallMillis: 3_600_000}, Rates: Rates{WallPerHour: 100},
					SLA:     SLATerms{MaxDuration: time.Hour, RefundPercent: 10, SlashPercent: 50, Stake: 400},
					Outcome: Outcome{Duration: 2 * time.Hour}},
				{Provider: "gpu-b", Price: 500, SLA: SLATerms{RefundPercent: 100}},
				{Provider: "gpu-c", Price: 100},
			}}
		s, err := l.Settle(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		checkSplit(t, r, s)
		a, b, c := s.Parts[0], s.Parts[1], s.Parts[2]
		if a.Charge != 700 || a.Capped || a.SLARefund != 70 || a.PlatformFee != 63 || a.ProviderPay != 567 || a.Slashed != 200 {
			t.Errorf("first part = %+v", a)
		}
		// The first part's SLA refund (70) is the tenant's: the second part
		// gets what is left of the escrow after the first's charge.
		if b.Charge != 300 || !b.Capped || b.PlatformFee != 30 || b.ProviderPay != 270 || b.Slashed != 0 {
			t.Errorf("second part = %+v", b)
		}
		if c.Charge != 0 || !c.Capped || c.ProviderPay != 0 {
			t.Errorf("third part = %+v", c)
		}
		if !s.Capped || s.Charge != 1000 || s.Payable != 930 || s.Refund != 70 || s.Slashed != 200 {
			t.Errorf("settlement = %+v", s)
		}
		wantBalances(t, l, map[string]int64{
			"tenant:acme": 9270, "provider:gpu-co": 567, "provider:gpu-b": 270, "provider:gpu-c": 0,
			"platform:fee": 93, "escrow:split-cap": 0, "bond:gpu-co": 4800, "bond:gpu-b": 3000,
		})
		mustCheck(t, l)
	})
}

// TestSettleSplitPayOnSuccessFailed: a failed pay-on-success split job
// pays no model fee and no part, refunds the whole escrow, and still
// slashes the part whose provider breached.
func TestSettleSplitPayOnSuccessFailed(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		l := splitLedger(t, dsn)
		hold(t, l, "split-fail", 3000, 2000, 4000)
		r := threeParts("split-fail")
		r.Succeeded = false
		s, err := l.Settle(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		checkSplit(t, r, s)
		// As for a whole job, the royalties are listed, with nothing paid.
		if s.Charge != 0 || s.Payable != 0 || s.ModelFeeTotal != 0 || s.ModelFees != nil ||
			!reflect.DeepEqual(s.Royalties, []Payment{{Account: "owner:alice"}}) ||
			s.Refund != 3600 || s.Slashed != 100 || s.Metered.Total != 132 {
			t.Errorf("failed split settlement = %+v", s)
		}
		for _, p := range s.Parts {
			if p.Charge != 0 || p.ProviderPay != 0 || p.Capped {
				t.Errorf("failed job paid part %+v", p)
			}
		}
		wantBalances(t, l, map[string]int64{
			"tenant:acme": 10_100, "provider:gpu-co": 0, "provider:gpu-b": 0, "owner:mo": 0,
			"escrow:split-fail": 0, "bond:gpu-b": 2900,
		})
		mustCheck(t, l)
	})
}

func TestSettleSplitTwoPartsAndReplay(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := splitLedger(t, dsn)
		hold(t, l, "split-2", 2000, 0, 2000)
		r := SettleRequest{Job: "split-2", Attempt: 3, Succeeded: true, FeeBP: 250,
			Royalties: []Royalty{{Account: "owner:bob", BasisPoints: 300}, {Account: "carol", BasisPoints: 200}},
			Parts: []SettlePart{
				{Provider: "gpu-b", Price: 400, Usage: Usage{GPUMillis: 900_000}, Rates: Rates{GPUPerHour: 2000},
					SLA:     SLATerms{MaxDuration: time.Minute, RefundPercent: 20, SlashPercent: 100, Stake: 5000},
					Outcome: Outcome{Duration: time.Hour}},
				{Provider: "gpu-co", Price: 300, Usage: Usage{MemGBMillis: 7_200_000}, Rates: Rates{MemGBPerHour: 50}},
			}}
		first, err := l.Settle(ctx, r)
		if err != nil || first.Transaction.Replayed {
			t.Fatalf("Settle: %+v, %v", first, err)
		}
		checkSplit(t, r, first)
		// gpu-b: 400 + 500 metered = 900, 180 refunded, slashed its whole
		// bond (3,000: less than 100 % of the 5,000 stake); gpu-co: 300 + 100.
		if b := first.Parts[0]; b.Charge != 900 || b.SLARefund != 180 || b.Payable != 720 || b.PlatformFee != 18 ||
			!reflect.DeepEqual(b.Royalties, []Payment{{Account: "owner:bob", Amount: 21}, {Account: "owner:carol", Amount: 14}}) ||
			b.ProviderPay != 667 || b.Slashed != 3000 {
			t.Errorf("gpu-b part = %+v", b)
		}
		if c := first.Parts[1]; c.Charge != 400 || c.Payable != 400 || c.PlatformFee != 10 || c.ProviderPay != 370 || c.Slashed != 0 {
			t.Errorf("gpu-co part = %+v", c)
		}
		if !reflect.DeepEqual(first.Royalties, []Payment{{Account: "owner:bob", Amount: 33}, {Account: "owner:carol", Amount: 22}}) ||
			first.Refund != 2000-1120 {
			t.Errorf("settlement = %+v", first)
		}
		before := snapshot(t, l)
		again, err := l.Settle(ctx, r)
		if err != nil || !again.Transaction.Replayed || again.Transaction.ID != first.Transaction.ID {
			t.Fatalf("replay: %+v, %v", again, err)
		}
		if !reflect.DeepEqual(again.Transaction.Postings, first.Transaction.Postings) {
			t.Fatalf("replay postings %v, want %v", again.Transaction.Postings, first.Transaction.Postings)
		}
		a, f := *again, *first
		a.Transaction, f.Transaction = Transaction{}, Transaction{}
		if !reflect.DeepEqual(a, f) {
			t.Fatalf("replayed settlement\n got %+v\nwant %+v", a, f)
		}
		if after := snapshot(t, l); !reflect.DeepEqual(before, after) {
			t.Fatalf("replay changed balances:\n%v\n%v", before, after)
		}
		changed := r
		changed.Parts = append([]SettlePart(nil), r.Parts...)
		changed.Parts[1].Price++
		if _, err := l.Settle(ctx, changed); !errors.Is(err, ErrKeyReused) {
			t.Fatalf("same key, other parts: %v, want ErrKeyReused", err)
		}
		r.Attempt++
		if _, err := l.Settle(ctx, r); !errors.Is(err, ErrJobState) {
			t.Fatalf("second settle: %v, want ErrJobState", err)
		}
		mustCheck(t, l)
	})
}

func TestSettleSplitBadRequests(t *testing.T) {
	l := openLedger(t, backendList[0].dsn(t))
	ctx := context.Background()
	fund(t, l, "acme", 10_000)
	hold(t, l, "split-bad", 1000, 0, 1000)
	good := func() SettleRequest {
		return SettleRequest{Job: "split-bad", Attempt: 1, Succeeded: true,
			Parts: []SettlePart{{Provider: "gpu-co", Price: 10}, {Provider: "gpu-b", Price: 20}}}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("Validate of a good split request: %v", err)
	}
	many := good()
	many.Parts = nil
	for i := range MaxSettleParts + 1 {
		many.Parts = append(many.Parts, SettlePart{Provider: fmt.Sprintf("p%d", i)})
	}
	cases := []struct {
		name string
		err  error
		edit func(r *SettleRequest)
	}{
		{"top-level price", ErrBadRequest, func(r *SettleRequest) { r.Price = 1 }},
		{"top-level usage", ErrBadRequest, func(r *SettleRequest) { r.Usage.CPUMillis = 1 }},
		{"top-level rates", ErrBadRequest, func(r *SettleRequest) { r.Rates.GPUPerHour = 1 }},
		{"top-level SLA", ErrBadRequest, func(r *SettleRequest) { r.SLA.SlashOnTests = true }},
		{"top-level outcome duration", ErrBadRequest, func(r *SettleRequest) { r.Outcome.Duration = time.Second }},
		{"top-level outcome placed", ErrBadRequest, func(r *SettleRequest) { r.Outcome.Placed = splitT0 }},
		{"top-level outcome tests", ErrBadRequest, func(r *SettleRequest) { r.Outcome.VerificationFailed = true }},
		{"too many parts", ErrBadRequest, func(r *SettleRequest) { r.Parts = many.Parts }},
		{"same provider twice", ErrBadRequest, func(r *SettleRequest) { r.Parts[1].Provider = "gpu-co" }},
		{"empty provider", ErrBadAccount, func(r *SettleRequest) { r.Parts[0].Provider = "" }},
		{"space in provider", ErrBadAccount, func(r *SettleRequest) { r.Parts[1].Provider = "gpu b" }},
		{"long provider", ErrBadAccount, func(r *SettleRequest) { r.Parts[1].Provider = strings.Repeat("p", 64) }},
		{"upper-case provider", ErrBadRequest, func(r *SettleRequest) { r.Parts[1].Provider = "GPU-B" }},
		{"provider with colon", ErrBadRequest, func(r *SettleRequest) { r.Parts[0].Provider = "bond:x" }},
		{"negative price", ErrBadAmount, func(r *SettleRequest) { r.Parts[0].Price = -1 }},
		{"huge price", ErrBadAmount, func(r *SettleRequest) { r.Parts[0].Price = MaxAmount + 1 }},
		{"negative usage", ErrBadRequest, func(r *SettleRequest) { r.Parts[1].Usage.WallMillis = -1 }},
		{"negative rate", ErrBadAmount, func(r *SettleRequest) { r.Parts[1].Rates.MemGBPerHour = -5 }},
		{"metered overflow", ErrBadAmount, func(r *SettleRequest) {
			r.Parts[0].Usage.GPUMillis, r.Parts[0].Rates.GPUPerHour = MaxAmount, MaxAmount
		}},
		{"refund over 100%", ErrBadRequest, func(r *SettleRequest) { r.Parts[1].SLA.RefundPercent = 101 }},
		{"negative stake", ErrBadRequest, func(r *SettleRequest) { r.Parts[0].SLA.Stake = -1 }},
		{"fee over 100%", ErrBadRequest, func(r *SettleRequest) { r.FeeBP = 10_001 }},
	}
	for _, c := range cases {
		r := good()
		c.edit(&r)
		if err := r.Validate(); !errors.Is(err, c.err) {
			t.Errorf("%s: Validate: %v, want %v", c.name, err, c.err)
		}
		if _, err := l.Settle(ctx, r); !errors.Is(err, c.err) {
			t.Errorf("%s: Settle: %v, want %v", c.name, err, c.err)
		}
	}
	// Nothing was posted: the job is still held and can be settled.
	if got := mustBalance(t, l, "escrow:split-bad", "USD"); got != 1000 {
		t.Fatalf("escrow after refused requests = %d", got)
	}
	if _, err := l.Settle(ctx, good()); err != nil {
		t.Fatalf("good request after refused ones: %v", err)
	}
	mustCheck(t, l)
}

// TestSettleRequestWithoutPartsUnchanged: a whole job's request and
// settlement encode as before Parts existed, so the fingerprints of stored
// settle keys and the stored settlements stay valid.
func TestSettleRequestWithoutPartsUnchanged(t *testing.T) {
	b, err := json.Marshal(SettleRequest{Job: "j", Price: 1})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"job":"j","attempt":0,"succeeded":false,"pay_on_success":false,"price":1,` +
		`"usage":{"wall_ms":0,"cpu_ms":0,"mem_gb_ms":0,"gpu_ms":0},` +
		`"rates":{"wall_per_hour":0,"cpu_per_hour":0,"mem_gb_per_hour":0,"gpu_per_hour":0},` +
		`"fee_bp":0,"sla":{},"outcome":{"placed":"0001-01-01T00:00:00Z","finished":"0001-01-01T00:00:00Z","duration_ns":0}}`
	if string(b) != want {
		t.Fatalf("request JSON\n got %s\nwant %s", b, want)
	}
	stored := `{"job":"job-1","tenant":"acme","provider":"gpu-co","currency":"USD","held":1200,"usage":{"wall_ms":1,"cpu_ms":0,"mem_gb_ms":0,"gpu_ms":0},` +
		`"rates":{"wall_per_hour":0,"cpu_per_hour":0,"mem_gb_per_hour":0,"gpu_per_hour":0},"metered":{"wall":0,"cpu":0,"mem":0,"gpu":0,"total":0},` +
		`"charge":932,"sla":{"breached":false,"refund_percent":0,"slash_percent":0},"sla_refund":0,"payable":932,"provider_pay":886,"platform_fee":46,` +
		`"refund":268,"slashed":0,"transaction":{"id":0,"key":"","kind":"","time":"0001-01-01T00:00:00Z","postings":null}}`
	var s Settlement
	if err := json.Unmarshal([]byte(stored), &s); err != nil || s.Charge != 932 || s.Parts != nil {
		t.Fatalf("stored settlement: %+v, %v", s, err)
	}
	if back, _ := json.Marshal(s); string(back) != stored {
		t.Fatalf("settlement JSON\n got %s\nwant %s", back, stored)
	}
}

// TestRandomSplitSettlements settles seeded random split jobs (one to six
// parts, random prices, usage, rates, SLA terms and outcomes, model fees,
// royalties, holds too small for some) with replays, and after each checks
// that the settlement adds up, the escrow is zero and every ledger
// invariant holds.
func TestRandomSplitSettlements(t *testing.T) {
	jobs := 40
	if testing.Short() {
		jobs = 15
	}
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		rng := rand.New(rand.NewPCG(7, 0x5911))
		fund(t, l, "acme", 1_000_000_000)
		for i := range 8 {
			if i%3 != 2 {
				bond(t, l, fmt.Sprintf("p%d", i), 1+rng.Int64N(3000))
			}
		}
		var settled []SettleRequest
		seen := map[string]int{} // what the random jobs exercised
		for n := range jobs {
			job := fmt.Sprintf("split-%d", n)
			price := rng.Int64N(5000)
			hold(t, l, job, price, rng.Int64N(5000), price+rng.Int64N(3000))
			r := randomSplit(rng, job)
			s, err := l.Settle(ctx, r)
			if err != nil {
				t.Fatalf("%s: %v", job, err)
			}
			checkSplit(t, r, s)
			checkSplitPostings(t, s, s.Transaction.Postings)
			for _, p := range s.Parts {
				seen["parts"]++
				seen["capped"] += b2i(p.Capped)
				seen["slashed"] += b2i(p.Slashed > 0)
				seen["refunded"] += b2i(p.SLARefund > 0)
			}
			seen["unpaid"] += b2i(!r.Succeeded && r.PayOnSuccess)
			if got := mustBalance(t, l, EscrowAccount(job), "USD"); got != 0 {
				t.Fatalf("%s: escrow = %d after settling", job, got)
			}
			settled = append(settled, r)
			if rng.IntN(3) == 0 {
				old := settled[rng.IntN(len(settled))]
				before := snapshot(t, l)
				again, err := l.Settle(ctx, old)
				if err != nil || !again.Transaction.Replayed {
					t.Fatalf("replay of %s: %+v, %v", old.Job, again, err)
				}
				if after := snapshot(t, l); !reflect.DeepEqual(before, after) {
					t.Fatalf("replay of %s changed balances", old.Job)
				}
			}
			mustCheck(t, l)
		}
		t.Logf("%d jobs: %v", jobs, seen)
		for _, k := range []string{"capped", "slashed", "refunded", "unpaid"} {
			if seen[k] == 0 {
				t.Errorf("no random job exercised %s: %v", k, seen)
			}
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// randomSplit is a random valid split settlement of job over one to six of
// the providers p0…p7.
func randomSplit(rng *rand.Rand, job string) SettleRequest {
	r := SettleRequest{Job: job, Attempt: 1, Succeeded: rng.IntN(4) > 0, PayOnSuccess: rng.IntN(2) == 0,
		FeeBP: rng.Int64N(2000)}
	for i := range rng.IntN(3) {
		r.Royalties = append(r.Royalties, Royalty{Account: fmt.Sprintf("m%d", i), BasisPoints: rng.Int64N(2500)})
	}
	for i := range rng.IntN(2) {
		f := ModelFee{Model: fmt.Sprintf("acme/m%d@1.0.0", i), Digest: "sha256:" + strings.Repeat("b", 64), Use: UseFineTune}
		for range 1 + rng.IntN(2) {
			f.Shares = append(f.Shares, Payment{Account: fmt.Sprintf("owner:o%d", rng.IntN(2)), Amount: rng.Int64N(800)})
		}
		r.ModelFees = append(r.ModelFees, f)
	}
	for _, i := range rng.Perm(8)[:1+rng.IntN(6)] {
		placed := splitT0.Add(time.Duration(rng.IntN(60)) * time.Minute)
		d := time.Duration(rng.IntN(120)) * time.Minute
		r.Parts = append(r.Parts, SettlePart{Provider: fmt.Sprintf("p%d", i), Price: rng.Int64N(3000),
			Usage: Usage{WallMillis: rng.Int64N(7_200_000), CPUMillis: rng.Int64N(7_200_000),
				MemGBMillis: rng.Int64N(30_000_000), GPUMillis: rng.Int64N(3_600_000)},
			Rates: Rates{WallPerHour: rng.Int64N(100), CPUPerHour: rng.Int64N(50), MemGBPerHour: rng.Int64N(10), GPUPerHour: rng.Int64N(400)},
			SLA: SLATerms{Deadline: time.Duration(rng.IntN(3)) * time.Hour, MaxDuration: time.Duration(rng.IntN(90)) * time.Minute,
				RefundPercent: rng.IntN(101), SlashPercent: rng.IntN(101), Stake: rng.Int64N(2000), SlashOnTests: rng.IntN(2) == 0},
			Outcome: Outcome{Placed: placed, Finished: placed.Add(d), Duration: d, VerificationFailed: rng.IntN(6) == 0}})
	}
	return r
}

// foldAmount maps any int64 onto [0, MaxAmount].
func foldAmount(x int64) int64 {
	x %= MaxAmount + 1
	if x < 0 {
		x += MaxAmount + 1
	}
	return x
}

// FuzzSplitSettlement computes split settlements of random parts over a
// random escrow and bonds, without a database: every one must add up
// (checkSplit) and its postings balance and empty the escrow.
func FuzzSplitSettlement(f *testing.F) {
	f.Add(uint64(1), int64(1000), int64(500))
	f.Add(uint64(2), int64(0), int64(0))
	f.Add(uint64(3), MaxAmount, MaxAmount)
	f.Fuzz(func(t *testing.T, seed uint64, held, bondAmt int64) {
		// Any input, folded into what the ledger can hold.
		held, bondAmt = foldAmount(held), foldAmount(bondAmt)
		rng := rand.New(rand.NewPCG(seed, 0xf022))
		r := randomSplit(rng, "fuzz")
		if rng.IntN(4) == 0 { // large amounts too
			for i := range r.Parts {
				r.Parts[i].Price = rng.Int64N(MaxAmount / 2)
			}
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Validate of a valid random split: %v", err)
		}
		bonds := map[string]int64{}
		for i, p := range r.Parts {
			if i%2 == 0 {
				bonds[p.Provider] = bondAmt
			}
		}
		s, err := splitSettlement(r, held, bonds)
		if err != nil {
			t.Fatal(err)
		}
		s.Job, s.Currency = "fuzz", "USD"
		checkSplit(t, r, s)
		for _, p := range s.Parts {
			if p.Slashed > bonds[p.Provider] {
				t.Fatalf("part %s slashed %d of a bond holding %d", p.Provider, p.Slashed, bonds[p.Provider])
			}
		}
		checkSplitPostings(t, s, nonZero(splitPostings(s, EscrowAccount("fuzz"), "acme")))
	})
}

// checkSplit checks that split settlement s of r adds up: each part is
// charged its price plus its metered usage (less only where the escrow ran
// out, and then nothing after it), divided as a whole job's charge; the
// top-level amounts are the parts' sums; Paid + Refund = Held.
func checkSplit(t *testing.T, r SettleRequest, s *Settlement) {
	t.Helper()
	if len(s.Parts) != len(r.Parts) {
		t.Fatalf("%d parts settled of %d", len(s.Parts), len(r.Parts))
	}
	pays := r.Succeeded || !r.PayOnSuccess
	var sum Settlement
	royalties := map[string]int64{}
	short := false
	for i, p := range s.Parts {
		q := r.Parts[i]
		metered, err := Meter(q.Usage, q.Rates)
		if err != nil {
			t.Fatal(err)
		}
		verdict, err := EvaluateSLA(q.SLA, q.Outcome)
		if err != nil {
			t.Fatal(err)
		}
		wantCharge := q.Price + metered.Total
		if !pays {
			wantCharge = 0
		}
		switch {
		case p.Provider != q.Provider || p.Price != q.Price || p.Usage != q.Usage || p.Rates != q.Rates ||
			p.Metered != metered || !reflect.DeepEqual(p.SLA, verdict):
			t.Fatalf("part %d = %+v, not of %+v", i, p, q)
		case p.Charge < 0 || p.Charge > wantCharge || p.Capped != (p.Charge < wantCharge) || short && p.Charge != 0:
			t.Fatalf("part %d charged %d of %d (capped %v, short before %v)", i, p.Charge, wantCharge, p.Capped, short)
		case p.SLARefund != pct(p.Charge, verdict.RefundPercent) || p.Payable != p.Charge-p.SLARefund ||
			p.PlatformFee != bp(p.Payable, r.FeeBP) || p.ProviderPay < 0 || len(p.Royalties) != len(r.Royalties):
			t.Fatalf("part %d divided wrongly: %+v", i, p)
		case p.Slashed < 0 || p.Slashed > SlashAmount(verdict, MaxAmount):
			t.Fatalf("part %d slashed %d under %+v", i, p.Slashed, verdict)
		}
		short = short || p.Capped
		split := p.ProviderPay + p.PlatformFee
		for j, py := range p.Royalties {
			if py.Account != OwnerAccount(r.Royalties[j].Account) || py.Amount != bp(p.Payable, r.Royalties[j].BasisPoints) {
				t.Fatalf("part %d royalty %d = %+v", i, j, py)
			}
			split += py.Amount
			royalties[py.Account] += py.Amount
		}
		if split != p.Payable {
			t.Fatalf("part %d pays out %d of payable %d", i, split, p.Payable)
		}
		sum.Metered = addCharges(sum.Metered, p.Metered)
		sum.Charge += p.Charge
		sum.SLARefund += p.SLARefund
		sum.Payable += p.Payable
		sum.ProviderPay += p.ProviderPay
		sum.PlatformFee += p.PlatformFee
		sum.Slashed += p.Slashed
	}
	switch {
	case s.Metered != sum.Metered || s.Charge != sum.Charge || s.SLARefund != sum.SLARefund || s.Payable != sum.Payable ||
		s.ProviderPay != sum.ProviderPay || s.PlatformFee != sum.PlatformFee || s.Slashed != sum.Slashed:
		t.Fatalf("top level %+v is not the parts' sum %+v", s, sum)
	case len(s.Royalties) != len(royalties):
		t.Fatalf("royalties %+v, want the sums %v", s.Royalties, royalties)
	case s.Usage != (Usage{}) || s.Rates != (Rates{}) || !reflect.DeepEqual(s.SLA, SLAResult{}):
		t.Fatalf("split settlement has top-level usage, rates or SLA: %+v", s)
	case !pays && (s.ModelFeeTotal != 0 || s.Charge != 0):
		t.Fatalf("failed pay-on-success job paid fees %d and charge %d", s.ModelFeeTotal, s.Charge)
	case s.Paid()+s.Refund != s.Held || s.Refund < 0 || s.Charge > s.Held-s.ModelFeeTotal:
		t.Fatalf("settlement does not add up: held %d, fees %d, charge %d, payable %d, refund %d",
			s.Held, s.ModelFeeTotal, s.Charge, s.Payable, s.Refund)
	case short && !s.Capped:
		t.Fatalf("a part was capped but the settlement is not")
	}
	for i, py := range s.Royalties {
		if py.Account != OwnerAccount(r.Royalties[i].Account) || py.Amount != royalties[py.Account] {
			t.Fatalf("royalty %d = %+v, want %s: %d", i, py, r.Royalties[i].Account, royalties[py.Account])
		}
	}
}

// checkSplitPostings checks that ps balance, move exactly Held out of the
// escrow, pay each part's provider its pay and slash each bond its part's
// slash.
func checkSplitPostings(t *testing.T, s *Settlement, ps []Posting) {
	t.Helper()
	if err := checkBalanced(ps); err != nil {
		t.Fatal(err)
	}
	by := map[string]int64{}
	for _, p := range ps {
		by[p.Account] += p.Amount
	}
	if got := by[EscrowAccount(s.Job)]; got != -s.Held {
		t.Fatalf("postings move %d out of an escrow holding %d", -got, s.Held)
	}
	for _, p := range s.Parts {
		if by[ProviderAccount(p.Provider)] != p.ProviderPay || by[BondAccount(p.Provider)] != -p.Slashed {
			t.Fatalf("part %s: postings pay %d and slash %d, want %d and %d", p.Provider,
				by[ProviderAccount(p.Provider)], -by[BondAccount(p.Provider)], p.ProviderPay, p.Slashed)
		}
	}
}
