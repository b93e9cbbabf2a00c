package provenance_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
)

// recordFailedOver attests a job whose awarded provider (prov-a) was lost
// before it accepted the placement (job layout 11): prov-b accepted it and
// ran the job, both stages naming the failover and signed by prov-b's
// key, unless edit changes a stage or by picks another signer.
func recordFailedOver(t *testing.T, p *parties, jobID string, provB *provenance.Key, edit func(stage string, pred map[string]any), by func(stage string) *provenance.Key) *provenance.Receipt {
	t.Helper()
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	failover := func() []map[string]any {
		return []map[string]any{{"lost": awarded, "at": at, "reason": "queue not served", "provider": "prov-b", "price": 1200, "currency": "EUR", "reputation": 0.9}}
	}
	for _, s := range stagePredicates(jobID) {
		switch s.stage {
		case provenance.StagePlacement, provenance.StageExecution:
			s.pred["provider"], s.pred["failovers"] = "prov-b", failover()
		case provenance.StageSettlement:
			s.pred["record"].(map[string]any)["provider"] = "prov-b"
		}
		if edit != nil {
			edit(s.stage, s.pred)
		}
		k := p.signer(s.stage)
		if s.stage == provenance.StagePlacement || s.stage == provenance.StageExecution {
			k = provB
		}
		if by != nil && by(s.stage) != nil {
			k = by(s.stage)
		}
		b, _ := json.Marshal(s.pred)
		if _, err := provenance.NewRecorder(p.log, k, p.store).Attest(context.Background(),
			provenance.AttestRequest{JobID: jobID, Stage: s.stage, Subjects: s.subjects, Predicate: b}); err != nil {
			t.Fatalf("attest %s: %v", s.stage, err)
		}
	}
	return p.receipt(t, jobID)
}

// A placement accepted by a replacement verifies when it names the
// failovers from the awarded provider, its replacement signed it and the
// execution's failovers begin with them (terms included); otherwise audit verify names the
// stage that breaks.
func TestPlacementFailovers(t *testing.T) {
	ctx := context.Background()
	p := newParties(t)
	provB, err := provenance.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.trust.Add(provB.PublicPEM(), "prov-b", provenance.ProviderScope("prov-b")); err != nil {
		t.Fatal(err)
	}
	r := recordFailedOver(t, p, "job-moved", provB, nil, nil)
	rep, err := provenance.Verify(ctx, r, p.trust, provenance.VerifyOptions{Parties: true})
	if err != nil || !rep.OK {
		t.Fatalf("honest failover before placement: %v %+v", err, rep.Problems)
	}
	if got := rep.Stages[provenance.StageIndex(provenance.StagePlacement)].Party; got != "provider:prov-b" {
		t.Errorf("placement signed as %q, want provider:prov-b", got)
	}
	for _, tc := range []struct {
		name string
		edit func(stage string, pred map[string]any)
		by   func(stage string) *provenance.Key
		want string
	}{
		{"signed by the lost provider", nil, func(stage string) *provenance.Key {
			if stage == provenance.StagePlacement {
				return p.provider
			}
			return nil
		}, "stage placement: signer: must be signed by provider:prov-b"},
		{"no failover named", func(stage string, pred map[string]any) {
			if stage == provenance.StagePlacement {
				delete(pred, "failovers")
			}
		}, nil, `placed with provider "prov-b", negotiation awarded "prov-a"`},
		{"a failover from another provider", func(stage string, pred map[string]any) {
			if stage == provenance.StagePlacement {
				pred["failovers"].([]map[string]any)[0]["lost"] = "prov-x"
			}
		}, nil, `stage placement: failover: failover 1 abandons provider "prov-x"`},
		{"the execution forgets it", func(stage string, pred map[string]any) {
			if stage == provenance.StageExecution {
				pred["failovers"].([]map[string]any)[0]["reason"] = "another story"
			}
		}, nil, "the execution's failovers do not begin with the 1 the placement names"},
		{"the execution changes the replacement terms", func(stage string, pred map[string]any) {
			if stage == provenance.StageExecution {
				pred["failovers"].([]map[string]any)[0]["sla"] = map[string]any{"refund_percent": 1}
			}
		}, nil, "the execution's failovers do not begin with the 1 the placement names"},
		{"a part moved in a job not split", func(stage string, pred map[string]any) {
			if stage == provenance.StagePlacement {
				pred["failovers"].([]map[string]any)[0]["tasks"] = []string{"train"}
			}
		}, nil, "stage placement: failover: failover 1 moves tasks [train], the negotiation split nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := recordFailedOver(t, p, "job-"+strings.ReplaceAll(tc.name, " ", "-"), provB, tc.edit, tc.by)
			rep, err := provenance.Verify(ctx, r, p.trust, provenance.VerifyOptions{Parties: true})
			if err == nil || rep.OK || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q (problems %v)", err, tc.want, rep.Problems)
			}
		})
	}
}
