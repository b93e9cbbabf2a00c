package specs

import (
	"fmt"
	"strings"
	"time"

	"github.com/accordmesh/accord/models/modelref"
)

// Service is a long-running deployment: replicas of one container behind
// an Accord endpoint (the "## Service" section). A spec with a service
// needs no tasks.
type Service struct {
	Image     string            `json:"image"`           // the server, as a task's image
	Model     *ModelUse         `json:"model,omitempty"` // a registry model mounted read-only at Model.As
	Command   []string          `json:"command,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Port      int               `json:"port"`
	Replicas  int               `json:"replicas"`
	Endpoint  string            `json:"endpoint"`
	Readiness Probe             `json:"readiness"`
	Liveness  Probe             `json:"liveness"`
	Resources Resources         `json:"resources"`
	Rollout   Rollout           `json:"rollout"`
	Rollback  Rollback          `json:"rollback"`
	SLA       ServiceSLA        `json:"sla"`
	Billing   Billing           `json:"billing"`
}

// Probe is an HTTP health check against a replica: GET Path must answer
// 2xx within Timeout. SuccessThreshold consecutive successes make a
// replica ready (or alive again); FailureThreshold consecutive failures
// make it unready (readiness) or restart it (liveness).
type Probe struct {
	Path             string        `json:"path"`
	Period           time.Duration `json:"period_ns"`
	Timeout          time.Duration `json:"timeout_ns"`
	SuccessThreshold int           `json:"success_threshold"`
	FailureThreshold int           `json:"failure_threshold"`
}

// Rollout is how an update reaches traffic: one canary replica of the new
// version takes CanaryPercent of the requests for Duration, then is
// promoted when every gate holds over that window, else rolled back.
type Rollout struct {
	CanaryPercent int           `json:"canary_percent"`
	Duration      time.Duration `json:"duration_ns"`
	// MinSuccessPercent gates on the share of the canary's requests that
	// succeeded (status < 500), in hundredths of a percent (9900 = 99 %).
	MinSuccessBP int `json:"min_success_basis_points"`
	// MaxP95 gates on the canary's 95th-percentile latency; 0: no gate.
	MaxP95 time.Duration `json:"max_p95_ns,omitempty"`
	// MinRequests is the least number of canary requests the gates need;
	// fewer in the window rolls back (nothing shows the canary is good).
	MinRequests int `json:"min_requests"`
}

// Rollback says when a deployment undoes an update on its own.
type Rollback struct {
	// Automatic rolls a failing canary back (default true); false leaves
	// it at its share until `accord deploy rollback` or a new update.
	Automatic bool `json:"automatic"`
	// MaxRestarts bounds restarts of one replica within a billing period
	// before the deployment counts it failed (default 5).
	MaxRestarts int `json:"max_restarts"`
}

// ServiceSLA is the availability and latency a provider is held to, per
// measurement window, with the refund and slash its offer accepted.
type ServiceSLA struct {
	// AvailabilityBP is the least share of successful requests, in basis
	// points (9950 = 99.5 %); 0: no availability term.
	AvailabilityBP int           `json:"availability_basis_points,omitempty"`
	P95Latency     time.Duration `json:"p95_latency_ns,omitempty"`
	Window         time.Duration `json:"window_ns,omitempty"`
	RefundPercent  int           `json:"refund_percent,omitempty"` // of the window's charge, to the tenant
	SlashPercent   int           `json:"slash_percent,omitempty"`  // of the provider's stake for the deployment
	Stake          int64         `json:"stake,omitempty"`          // minor units the provider puts at risk
}

// Billing is how a deployment is paid as it runs: each Period the escrow
// is topped up for the next period and the last one settles.
type Billing struct {
	Period time.Duration `json:"period_ns"`
	// ReplicaHour is the most the tenant pays per replica-hour, minor
	// units of budget.currency (the negotiated price is at most this).
	ReplicaHour int64 `json:"replica_hour"`
	// Grace is how long a deployment whose escrow cannot be topped up
	// keeps serving before it is stopped (default one period).
	Grace time.Duration `json:"grace_ns"`
}

// Service defaults and bounds.
const (
	DefaultReplicas       = 1
	MaxReplicas           = 64
	DefaultProbePeriod    = 5 * time.Second
	DefaultProbeTimeout   = time.Second
	DefaultProbeFailures  = 3
	DefaultCanaryPercent  = 10
	DefaultCanaryDuration = 5 * time.Minute
	DefaultMinSuccessBP   = 9900
	DefaultCanaryRequests = 20
	DefaultMaxRestarts    = 5
	DefaultBillingPeriod  = time.Hour
	MinBillingPeriod      = time.Second
	maxProbePath          = 256
	maxServiceEnv         = 128
)

var (
	serviceKeys  = []string{"image", "model", "command", "env", "port", "replicas", "endpoint", "readiness", "liveness", "resources", "rollout", "rollback", "sla", "billing"}
	probeKeys    = []string{"path", "period", "timeout", "success_threshold", "failure_threshold"}
	rolloutKeys  = []string{"canary_percent", "duration", "gates", "min_requests"}
	gateKeys     = []string{"success_percent", "p95_latency"}
	rollbackKeys = []string{"automatic", "max_restarts"}
	svcSLAKeys   = []string{"availability_percent", "p95_latency", "window", "refund_percent", "slash_percent", "stake"}
	billingKeys  = []string{"period", "replica_hour", "grace"}
)

// decodeService reads the "## Service" section.
func (d *decoder) decodeService(n *node) *Service {
	if n == nil || n.kind == kindNull {
		return nil
	}
	const p = "service"
	f := d.fields(n, p, "service", serviceKeys)
	s := &Service{Replicas: DefaultReplicas, Rollback: Rollback{Automatic: true, MaxRestarts: DefaultMaxRestarts}}
	d.decodeServiceImage(s, n, f)
	s.Command = d.strings(f["command"], p+".command", "command")
	s.Env = d.stringMap(f["env"], p+".env", "env", envKeyRE, "an environment variable name")
	if len(s.Env) > maxServiceEnv {
		d.e.add(f["env"].pos, "service env has %d entries, at most %d", len(s.Env), maxServiceEnv)
	}
	if v := f["port"]; v != nil {
		x, _ := d.integer(v, "port", 1, 65535)
		s.Port = int(x)
	} else {
		d.e.add(n.pos, "service needs a port (the TCP port the server listens on inside the replica)")
	}
	if v := f["replicas"]; v != nil {
		x, _ := d.integer(v, "replicas", 1, MaxReplicas)
		s.Replicas = int(x)
	}
	if v := f["endpoint"]; v != nil {
		s.Endpoint = d.str(v, "endpoint")
		if !nameRE.MatchString(s.Endpoint) {
			d.e.add(v.pos, "endpoint %q must be lower-case letters, digits and - (at most 63)", s.Endpoint)
		}
	} else {
		d.e.add(n.pos, "service needs an endpoint name (lower-case letters, digits and -)")
	}
	s.Readiness = d.decodeProbe(f["readiness"], p+".readiness", "readiness", 1)
	s.Liveness = d.decodeProbe(f["liveness"], p+".liveness", "liveness", 1)
	d.decodeResources(&s.Resources, f["resources"], p+".resources")
	d.decodeRollout(&s.Rollout, f["rollout"])
	d.decodeRollback(&s.Rollback, f["rollback"])
	d.decodeServiceSLA(&s.SLA, f["sla"])
	d.decodeBilling(&s.Billing, f["billing"], n)
	return s
}

func (d *decoder) decodeServiceImage(s *Service, n *node, f map[string]*node) {
	img, model := f["image"], f["model"]
	if img == nil {
		d.e.add(n.pos, "service needs an image (the server; a model, when given, is mounted into it)")
	}
	if img != nil {
		s.Image = d.str(img, "image")
		if s.Image != "" && !validImage(s.Image) {
			d.e.add(img.pos, "image %q must be an OCI reference pinned by digest (name@sha256:<64 hex>), artifact:sha256:<64 hex> or oci-archive:PATH", s.Image)
		} else if ap, ok := strings.CutPrefix(s.Image, "oci-archive:"); ok {
			s.Image = "oci-archive:" + d.rebase(ap, img)
		}
	}
	if model == nil {
		return
	}
	mf := d.fields(model, "service.model", "a model", modelKeys)
	m := &ModelUse{Name: d.str(mf["name"], "name"), Version: d.str(mf["version"], "version"), As: d.str(mf["as"], "as")}
	if mf["name"] == nil {
		d.e.add(model.pos, "model needs a name (a registry model such as acme/legal-es-classifier)")
	} else if err := modelref.CheckName(m.Name); err != nil {
		d.e.add(mf["name"].pos, "model name: %v", err)
	}
	if mf["version"] == nil {
		d.e.add(model.pos, "model %q needs a version: 1.2.3, ^1.2 or ~1.2.3", m.Name)
	} else if _, err := modelref.ParseConstraint(m.Version); err != nil {
		d.e.add(mf["version"].pos, "%v", err)
	}
	if mf["as"] == nil {
		d.e.add(model.pos, "model %q needs as: the absolute path it is mounted at", m.Name)
	} else if !absPath(m.As) {
		d.e.add(mf["as"].pos, "as %q must be a clean absolute path inside the container", m.As)
	}
	s.Model = m
}

// decodeProbe reads a probe; a missing probe checks "/" every period.
func (d *decoder) decodeProbe(n *node, p, what string, defSuccess int) Probe {
	pr := Probe{Path: "/", Period: DefaultProbePeriod, Timeout: DefaultProbeTimeout, SuccessThreshold: defSuccess, FailureThreshold: DefaultProbeFailures}
	f := d.fields(n, p, what, probeKeys)
	if v := f["path"]; v != nil {
		pr.Path = d.str(v, what+".path")
		if !strings.HasPrefix(pr.Path, "/") || len(pr.Path) > maxProbePath || strings.ContainsAny(pr.Path, " \t\r\n\x00#") {
			d.e.add(v.pos, "%s.path %q must be an absolute URL path (at most %d bytes, no spaces or #)", what, pr.Path, maxProbePath)
		}
	}
	if v := f["period"]; v != nil {
		if t, ok := d.duration(v, what+".period"); ok {
			if t < 100*time.Millisecond {
				d.e.add(v.pos, "%s.period must be at least 100ms, not %s", what, formatDuration(t))
			}
			pr.Period = t
		}
	}
	if v := f["timeout"]; v != nil {
		if t, ok := d.duration(v, what+".timeout"); ok {
			if t <= 0 || t > pr.Period {
				d.e.add(v.pos, "%s.timeout must be more than 0 and at most the period (%s)", what, formatDuration(pr.Period))
			}
			pr.Timeout = t
		}
	}
	if v := f["success_threshold"]; v != nil {
		x, _ := d.integer(v, what+".success_threshold", 1, 100)
		pr.SuccessThreshold = int(x)
	}
	if v := f["failure_threshold"]; v != nil {
		x, _ := d.integer(v, what+".failure_threshold", 1, 100)
		pr.FailureThreshold = int(x)
	}
	return pr
}

func (d *decoder) decodeRollout(r *Rollout, n *node) {
	const p = "service.rollout"
	f := d.fields(n, p, "rollout", rolloutKeys)
	r.CanaryPercent, r.Duration, r.MinSuccessBP, r.MinRequests = DefaultCanaryPercent, DefaultCanaryDuration, DefaultMinSuccessBP, DefaultCanaryRequests
	if v := f["canary_percent"]; v != nil {
		x, _ := d.integer(v, "canary_percent", 1, 100)
		r.CanaryPercent = int(x)
	}
	if v := f["duration"]; v != nil {
		if t, ok := d.duration(v, "rollout.duration"); ok {
			if t < time.Second {
				d.e.add(v.pos, "rollout.duration must be at least 1s, not %s", formatDuration(t))
			}
			r.Duration = t
		}
	}
	if v := f["min_requests"]; v != nil {
		x, _ := d.integer(v, "min_requests", 1, 1_000_000)
		r.MinRequests = int(x)
	}
	g := d.fields(f["gates"], p+".gates", "gates", gateKeys)
	if v := g["success_percent"]; v != nil {
		r.MinSuccessBP = d.percentBP(v, "gates.success_percent")
	}
	if v := g["p95_latency"]; v != nil {
		if t, ok := d.duration(v, "gates.p95_latency"); ok {
			if t <= 0 {
				d.e.add(v.pos, "gates.p95_latency must be more than 0")
			}
			r.MaxP95 = t
		}
	}
}

// percentBP reads a percentage such as 99.5 into basis points (9950).
func (d *decoder) percentBP(n *node, field string) int {
	x, ok := d.number(n, field)
	if !ok {
		return 0
	}
	if x < 0 || x > 100 {
		d.e.add(n.pos, "%s must be between 0 and 100, not %v", field, x)
		return 0
	}
	bp := x * 100
	if bp != float64(int(bp)) {
		d.e.add(n.pos, "%s %v has more than two decimals", field, x)
	}
	return int(bp)
}

func (d *decoder) decodeRollback(r *Rollback, n *node) {
	f := d.fields(n, "service.rollback", "rollback", rollbackKeys)
	if v := f["automatic"]; v != nil {
		if b, ok := d.boolean(v, "rollback.automatic"); ok {
			r.Automatic = b
		}
	}
	if v := f["max_restarts"]; v != nil {
		x, _ := d.integer(v, "rollback.max_restarts", 0, 1000)
		r.MaxRestarts = int(x)
	}
}

func (d *decoder) decodeServiceSLA(s *ServiceSLA, n *node) {
	f := d.fields(n, "service.sla", "sla", svcSLAKeys)
	if v := f["availability_percent"]; v != nil {
		s.AvailabilityBP = d.percentBP(v, "sla.availability_percent")
	}
	if v := f["p95_latency"]; v != nil {
		s.P95Latency, _ = d.duration(v, "sla.p95_latency")
	}
	if v := f["window"]; v != nil {
		if t, ok := d.duration(v, "sla.window"); ok {
			if t < time.Second {
				d.e.add(v.pos, "sla.window must be at least 1s, not %s", formatDuration(t))
			}
			s.Window = t
		}
	}
	if v := f["refund_percent"]; v != nil {
		x, _ := d.integer(v, "refund_percent", 0, 100)
		s.RefundPercent = int(x)
	}
	if v := f["slash_percent"]; v != nil {
		x, _ := d.integer(v, "slash_percent", 0, 100)
		s.SlashPercent = int(x)
	}
	s.Stake = d.money(f["stake"], "sla.stake")
	if (s.AvailabilityBP > 0 || s.P95Latency > 0) && s.Window == 0 && n != nil {
		d.e.add(n.pos, "sla needs a window (the measurement window the terms apply to, e.g. 1h)")
	}
	if s.SlashPercent > 0 && s.Stake == 0 && f["slash_percent"] != nil {
		d.e.add(f["slash_percent"].pos, "sla.slash_percent needs sla.stake (what the provider puts at risk)")
	}
}

func (d *decoder) decodeBilling(b *Billing, n, svc *node) {
	f := d.fields(n, "service.billing", "billing", billingKeys)
	b.Period = DefaultBillingPeriod
	if v := f["period"]; v != nil {
		if t, ok := d.duration(v, "billing.period"); ok {
			if t < MinBillingPeriod {
				d.e.add(v.pos, "billing.period must be at least %s, not %s", formatDuration(MinBillingPeriod), formatDuration(t))
			}
			b.Period = t
		}
	}
	if v := f["replica_hour"]; v != nil {
		b.ReplicaHour = d.money(v, "billing.replica_hour")
	} else {
		d.e.add(svc.pos, "service needs billing.replica_hour (the most paid per replica-hour, minor units)")
	}
	b.Grace = b.Period
	if v := f["grace"]; v != nil {
		b.Grace, _ = d.duration(v, "billing.grace")
	}
}

// validateService checks what needs the whole spec: the budget's currency
// and that the SLA window is a whole number of billing periods.
func (v *validator) service() {
	s := v.s.Service
	if s == nil {
		return
	}
	at := func(k string) Pos { return v.at("service."+k, v.at("service", v.top)) }
	if s.SLA.Window > 0 && s.Billing.Period > 0 && s.SLA.Window%s.Billing.Period != 0 && s.Billing.Period%s.SLA.Window != 0 {
		v.e.add(at("sla.window"), "sla.window %s and billing.period %s must divide one another", formatDuration(s.SLA.Window), formatDuration(s.Billing.Period))
	}
	if s.Rollout.CanaryPercent == 100 && s.Replicas > 1 {
		v.e.add(at("rollout.canary_percent"), "rollout.canary_percent 100 sends every request to the canary; use at most 99")
	}
	if s.Resources.GPU.Count > 0 && s.Replicas > 8 {
		v.e.add(at("replicas"), "at most 8 GPU replicas per deployment, not %d", s.Replicas)
	}
}

// ServiceSummary is one line describing a service, for plans and logs.
func (s *Service) ServiceSummary() string {
	what := s.Image
	if s.Model != nil {
		what += " serving " + s.Model.Name + "@" + s.Model.Version
	}
	return fmt.Sprintf("%s: %d × %s on port %d", s.Endpoint, s.Replicas, what, s.Port)
}
