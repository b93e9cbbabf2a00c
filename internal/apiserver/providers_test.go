package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/policies"
)

func heartbeatBody(name string, interval time.Duration) string {
	b, _ := json.Marshal(Heartbeat{Runtime: "containerd", Interval: interval, Profile: market.Profile{
		Name: name, Reputation: 0.9, Free: market.Capacity{MilliCPU: 2000, MemoryBytes: 1 << 30},
		Pricing: market.Pricing{Currency: "USD", CPUHour: 10},
	}})
	return string(b)
}

// A provider agent's token publishes its own provider's profile and
// nothing else: not another provider's, not any tenant's jobs or data.
func TestProviderHeartbeat(t *testing.T) {
	reg := &agents.Registry{Dir: t.TempDir()}
	f := setup(t, WithProviders(reg))
	prov, err := f.store.CreateToken(context.Background(), policies.Principal{Role: policies.RoleProvider, Name: "gpu-a"})
	if err != nil {
		t.Fatal(err)
	}
	code, out := f.call(t, prov, "PUT", "/v1/providers/gpu-a", heartbeatBody("gpu-a", 10*time.Second))
	if code != http.StatusOK || !strings.Contains(out, `"name":"gpu-a"`) {
		t.Fatalf("heartbeat: %d %s", code, out)
	}
	if rec, ok := reg.Live("gpu-a"); !ok || rec.Profile.Free.MilliCPU != 2000 || rec.Runtime != "containerd" {
		t.Errorf("registry after heartbeat: %+v %v", rec, ok)
	}
	for _, c := range []struct {
		tok, path, body string
		want            int
	}{
		{prov, "/v1/providers/gpu-b", heartbeatBody("gpu-b", 10*time.Second), http.StatusForbidden}, // another provider
		{f.tokA, "/v1/providers/gpu-a", heartbeatBody("gpu-a", 10*time.Second), http.StatusForbidden},
		{f.auditor, "/v1/providers/gpu-a", heartbeatBody("gpu-a", 10*time.Second), http.StatusForbidden},
		{prov, "/v1/providers/gpu-a", heartbeatBody("gpu-b", 10*time.Second), http.StatusBadRequest}, // profile of another name
		{prov, "/v1/providers/gpu-a", heartbeatBody("gpu-a", time.Hour), http.StatusBadRequest},
		{prov, "/v1/providers/gpu-a", `{"runtime":"containerd","extra":1}`, http.StatusBadRequest},
		{f.admin, "/v1/providers/gpu-c", heartbeatBody("gpu-c", 10*time.Second), http.StatusOK},
	} {
		if code, out := f.call(t, c.tok, "PUT", c.path, c.body); code != c.want {
			t.Errorf("PUT %s: %d %s, want %d", c.path, code, out, c.want)
		}
	}
	if _, ok := reg.Live("gpu-b"); ok {
		t.Error("gpu-b was published by gpu-a's token")
	}
	// Every other route is closed to a provider token.
	for _, rt := range Routes {
		if rt.Path == "/v1/providers/{name}" {
			continue
		}
		if code, out := f.call(t, prov, rt.Method, path(rt, "job-a"), ""); code != http.StatusForbidden {
			t.Errorf("provider token on %s %s: %d %s, want 403", rt.Method, rt.Path, code, out)
		}
	}
}

func TestProviderTokenNeedsProviderName(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for _, p := range []policies.Principal{
		{Role: policies.RoleProvider},
		{Role: policies.RoleProvider, Name: "Bad Name"},
		{Role: policies.RoleProvider, Name: "gpu-a", Tenant: "a"},
	} {
		if _, err := f.store.CreateToken(ctx, p); err == nil {
			t.Errorf("token created for %+v", p)
		}
	}
}
