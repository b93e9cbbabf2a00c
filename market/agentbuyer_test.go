package market

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/accordmesh/accord/specs"
)

func agentSellers(t *testing.T) *Sellers {
	t.Helper()
	pl := plan("solo", 2000, task("t", 4000, 8*gib, 1, "h100"))
	pl.Spec.Negotiation = specs.Negotiation{Protocol: ProtocolAlternating, Rounds: 10, Buyer: specs.BuyerAgent}
	s, err := Snapshot(context.Background(), "job-1", pl, []Provider{provider("a", 100, 1), provider("b", 50, 1), provider("none", 50, 0)})
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot crosses an activity boundary as JSON.
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Sellers
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	return &back
}

func TestSnapshotSellers(t *testing.T) {
	s := agentSellers(t)
	if len(s.Sellers) != 2 || s.Sellers[0].Provider != "a" || s.Sellers[1].Provider != "b" {
		t.Fatalf("sellers %+v", s.Sellers)
	}
	// Reserves are the asks (4 cores·rate + 8 GiB + 1 GPU·200), openings
	// twice that (the default opening).
	if a, b := s.Sellers[0].Agent, s.Sellers[1].Agent; a.Reserve != 608 || a.Initial != 1216 || b.Reserve != 408 || b.Initial != 816 {
		t.Fatalf("agents %+v %+v", a, b)
	}
	if len(s.Diagnostics) != 1 || s.Diagnostics[0].Provider != "none" {
		t.Fatalf("diagnostics %+v", s.Diagnostics)
	}
	if s.Budget != 2000 || s.Rounds != 10 || s.DeadlineRound() != 5 {
		t.Fatalf("budget %d rounds %d", s.Budget, s.Rounds)
	}
	pl := plan("auction", 2000, task("t", 4000, 8*gib, 1, "h100"))
	if _, err := Snapshot(context.Background(), "j", pl, []Provider{provider("a", 100, 1)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("auction snapshot: %v", err)
	}
	pl.Spec.Negotiation.Protocol = ProtocolAlternating
	if _, err := Snapshot(context.Background(), "j", pl, []Provider{provider("x", 100, 0)}); !errors.Is(err, ErrNoOffers) {
		t.Fatalf("no eligible seller: %v", err)
	}
}

func TestPlayCounterThenAccept(t *testing.T) {
	s := agentSellers(t)
	p, err := s.Play(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []SellerOffer{{"a", 1216}, {"b", 816}}
	if p.Over || p.Round != 0 || p.DeadlineRound != 5 || !reflect.DeepEqual(p.Offers, want) {
		t.Fatalf("opening %+v", p)
	}
	// 300 is below both reserves: both refuse and concede (linear, round
	// 2 of 10): a 1216 − 608·0.2, b 816 − 408·0.2, rounded up.
	p, err = s.Play([]Move{{Price: 300}})
	if err != nil {
		t.Fatal(err)
	}
	want = []SellerOffer{{"a", 1095}, {"b", 735}}
	if p.Over || p.Round != 1 || !reflect.DeepEqual(p.Offers, want) {
		t.Fatalf("after a low counter %+v", p)
	}
	p, err = s.Play([]Move{{Price: 300}, {Accept: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Over || len(p.Offers) != 0 || len(p.Result.Awards) != 1 {
		t.Fatalf("after accepting %+v", p)
	}
	aw := p.Result.Awards[0]
	if aw.Provider != "b" || aw.Price != 735 || aw.Ask != 408 || aw.Basis != BasisAgreement ||
		aw.Explanation != "paid 7.35 EUR: the price agreed with b in round 2 of alternating offers, the buyer played by its agent" {
		t.Fatalf("award %+v", aw)
	}
	// Every round is in the record: openings (2), the counter (2
	// answers), the second offers (2), one of them accepted.
	r := p.Result.Rounds
	if len(r) != 6 || r[2].By != "buyer" || r[2].Price != 300 || r[2].Accepted || !r[5].Accepted || r[5].Provider != "b" || r[5].Round != 2 {
		t.Fatalf("rounds %+v", r)
	}
	if p.Result.Protocol != ProtocolAlternating || len(p.Result.Offers) != 2 || len(p.Result.Winners) != 1 {
		t.Fatalf("result %+v", p.Result)
	}
}

func TestPlaySellerAcceptsCounter(t *testing.T) {
	s := agentSellers(t)
	// 900 at round 1 beats b's next offer (735 at round 2) but not a's reserve.
	p, err := s.Play([]Move{{Price: 900}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Over || p.Result.Awards[0].Provider != "b" || p.Result.Awards[0].Price != 900 {
		t.Fatalf("%+v", p.Result.Awards)
	}
	r := p.Result.Rounds
	if r[2].Provider != "a" || r[2].Accepted || r[3].Provider != "b" || !r[3].Accepted {
		t.Fatalf("answers %+v", r[2:])
	}
}

func TestPlayDeadlineAndInvalidMoves(t *testing.T) {
	s := agentSellers(t)
	var moves []Move
	for range s.DeadlineRound() + 1 {
		moves = append(moves, Move{Price: 1})
	}
	p, err := s.Play(moves)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Over || len(p.Result.Awards) != 0 || p.Round != 6 {
		t.Fatalf("deadline %+v", p)
	}
	if _, err := s.Play(append(moves, Move{Price: 1})); !errors.Is(err, ErrMove) {
		t.Fatalf("move after the end: %v", err)
	}
	for _, m := range []Move{{Price: 0}, {Price: -5}, {Price: 2001}, {Accept: "none"}, {Accept: "zz"}} {
		if _, err := s.Play([]Move{m}); !errors.Is(err, ErrMove) {
			t.Errorf("%+v: %v, want ErrMove", m, err)
		}
	}
	// a opens at 1216: with a budget of 1000 its opening cannot be taken.
	tight := *s
	tight.Budget = 1000
	if _, err := tight.Play([]Move{{Accept: "a"}}); !errors.Is(err, ErrMove) {
		t.Fatalf("accepting an offer above the budget: %v", err)
	}
	bad := *s
	bad.Sellers = append([]Seller{}, s.Sellers...)
	bad.Sellers[0].Agent.Beta = 0
	if _, err := bad.Play(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad snapshot: %v", err)
	}
}
