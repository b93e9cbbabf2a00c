package workers

import (
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
)

// Metrics exposes the job workflow's metrics to Prometheus. It implements
// Temporal's client.MetricsHandler so that the workflow records through
// workflow.GetMetricsHandler, which stays silent during replay: a replayed
// job is never counted twice. Only Accord's own metrics (names starting
// "accord_") are exported; the SDK's internal ones are dropped.
type Metrics struct {
	Registry *prometheus.Registry

	jobs   *prometheus.CounterVec
	stages *prometheus.HistogramVec
	spend  *prometheus.CounterVec
}

// NewMetrics creates the registry and Accord's collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accord_jobs_total", Help: "Finished jobs by the stage they ended in and their outcome.",
		}, []string{"stage", "outcome"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "accord_stage_latency_seconds", Help: "Time spent in each job stage (workflow time).",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, []string{"stage"}),
		spend: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accord_spend_minor_units_total", Help: "Money paid out of escrow, in minor units.",
		}, []string{"currency"}),
	}
	m.Registry.MustRegister(m.jobs, m.stages, m.spend,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Handler returns the Temporal metrics handler feeding m.
func (m *Metrics) Handler() client.MetricsHandler { return &handler{m: m} }

// Serve serves /metrics on addr until the returned function is called.
func (m *Metrics) Serve(addr string) (stop func(), bound string, err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return func() { _ = srv.Close() }, l.Addr().String(), nil
}

type handler struct {
	m    *Metrics
	tags map[string]string
}

func (h *handler) WithTags(tags map[string]string) client.MetricsHandler {
	n := &handler{m: h.m, tags: map[string]string{}}
	for k, v := range h.tags {
		n.tags[k] = v
	}
	for k, v := range tags {
		n.tags[k] = v
	}
	return n
}

func (h *handler) label(names ...string) prometheus.Labels {
	l := prometheus.Labels{}
	for _, n := range names {
		l[n] = h.tags[n]
	}
	return l
}

func (h *handler) Counter(name string) client.MetricsCounter {
	switch name {
	case "accord_jobs_total":
		return counter{h.m.jobs.With(h.label("stage", "outcome"))}
	case "accord_spend_minor_units_total":
		return counter{h.m.spend.With(h.label("currency"))}
	}
	return client.MetricsNopHandler.Counter(name)
}

func (h *handler) Gauge(name string) client.MetricsGauge { return client.MetricsNopHandler.Gauge(name) }

func (h *handler) Timer(name string) client.MetricsTimer {
	if name == "accord_stage_latency" {
		return timer{h.m.stages.With(h.label("stage"))}
	}
	return client.MetricsNopHandler.Timer(name)
}

type counter struct{ c prometheus.Counter }

func (c counter) Inc(n int64) { c.c.Add(float64(n)) }

type timer struct{ o prometheus.Observer }

func (t timer) Record(d time.Duration) { t.o.Observe(d.Seconds()) }
