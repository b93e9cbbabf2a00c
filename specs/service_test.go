package specs

import (
	"strings"
	"testing"
	"time"
)

func TestServiceExample(t *testing.T) {
	inRepoRoot(t)
	s, err := Load("examples/service.md")
	if err != nil {
		t.Fatal(err)
	}
	sv := s.Service
	if sv == nil {
		t.Fatal("no service decoded")
	}
	if sv.Replicas != 2 || sv.Port != 8080 || sv.Endpoint != "sentiment" {
		t.Errorf("replicas %d port %d endpoint %q", sv.Replicas, sv.Port, sv.Endpoint)
	}
	if sv.Readiness.Path != "/healthz" || sv.Readiness.Period != 2*time.Second || sv.Liveness.FailureThreshold != 3 {
		t.Errorf("probes %+v %+v", sv.Readiness, sv.Liveness)
	}
	if sv.Rollout.CanaryPercent != 20 || sv.Rollout.MinSuccessBP != 9900 || sv.Rollout.MaxP95 != 200*time.Millisecond || sv.Rollout.Duration != 2*time.Minute {
		t.Errorf("rollout %+v", sv.Rollout)
	}
	if sv.SLA.AvailabilityBP != 9950 || sv.SLA.Window != time.Hour || sv.SLA.RefundPercent != 25 || sv.SLA.SlashPercent != 10 || sv.SLA.Stake != 1000 {
		t.Errorf("sla %+v", sv.SLA)
	}
	if sv.Billing.Period != time.Hour || sv.Billing.ReplicaHour != 40 || sv.Billing.Grace != 15*time.Minute {
		t.Errorf("billing %+v", sv.Billing)
	}
	if sv.Resources.MilliCPU != 500 || sv.Resources.MemoryBytes != 128<<20 {
		t.Errorf("resources %+v", sv.Resources)
	}
	if !strings.HasSuffix(sv.Image, "images/server.tar") {
		t.Errorf("image %q", sv.Image)
	}
}

func TestServiceErrors(t *testing.T) {
	doc := "---\naccord: v1\nname: s\nversion: 1.0.0\ntenant: demo\n---\n\n## Service\n\n```yaml\n" +
		"port: 70000\n" +
		"endpoint: Bad_Name\n" +
		"readiness:\n  path: healthz\n  period: 10ms\n" +
		"rollout:\n  canary_percent: 0\n  gates:\n    success_percent: 101\n" +
		"sla:\n  availability_percent: 99.9\n  slash_percent: 10\n" +
		"billing:\n  period: 500ms\n" +
		"replicaz: 3\n" +
		"```\n\n## Budget\n\n```yaml\nmax_price: 100\ncurrency: USD\n```\n"
	_, err := Parse("svc.md", []byte(doc))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		"svc.md:11:7: port must be between 1 and 65535",
		"svc.md:12:11: endpoint \"Bad_Name\"",
		"svc.md:14:9: readiness.path \"healthz\"",
		"svc.md:15:11: readiness.period must be at least 100ms",
		"svc.md:17:19: canary_percent must be between 1 and 100",
		"svc.md:19:22: gates.success_percent must be between 0 and 100",
		"sla needs a window",
		"sla.slash_percent needs sla.stake",
		"billing.period must be at least 1s",
		"service needs an image",
		"service needs billing.replica_hour",
		"unknown key \"replicaz\" in service",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// TestNoServiceDigestUnchanged: a spec without a service canonicalises as
// before (no "service" key), so existing contract digests hold.
func TestNoServiceDigestUnchanged(t *testing.T) {
	inRepoRoot(t)
	p, err := LoadPlan("examples/quickstart.md")
	if err != nil {
		t.Fatal(err)
	}
	b, err := CanonicalJSON(p.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"service"`) {
		t.Errorf("canonical JSON of a task spec names a service: %s", b)
	}
}
