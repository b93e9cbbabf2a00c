// Package stack starts Accord's whole local stack in one process: the
// embedded Temporal server (SQLite under Accord's home), the worker hosting
// the job workflow and its activities, the local containerd pool and the
// embedded transparency log. `accord dev`, `accord run` and the integration
// tests use it; it links the Temporal server, so nothing else should.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/workers"
	"github.com/accordmesh/accord/workers/devserver"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workflows"
)

// SearchAttributes are the job workflow's custom search attributes.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	workflows.SearchAttrTenant: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	workflows.SearchAttrSpec:   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	workflows.SearchAttrStatus: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

// Options configure the stack.
type Options struct {
	Home string
	// InMemory keeps Temporal's state in memory (tests); otherwise it lives
	// in Home/temporal.db and survives restarts.
	InMemory bool
	// DatabaseFile overrides Home/temporal.db.
	DatabaseFile string
	// FrontendPort of the embedded server; 0 picks a free port.
	FrontendPort int
	// MetricsAddr serves Prometheus metrics when set (e.g. 127.0.0.1:9464).
	MetricsAddr string
	// UIPort serves the Temporal Web UI on the frontend's IP when non-zero.
	UIPort int
	// NoWorker starts only the server (tests that run the worker elsewhere).
	NoWorker bool
	Local    local.Options
	// Tuning sizes the worker; zero fields take workers.DefaultTuning's.
	Tuning workers.Tuning
	// ClearEvery, when set, ensures the market clearing schedule at this
	// interval (workers.EnsureClearingSchedule) once the worker runs.
	ClearEvery time.Duration
	Logger     *slog.Logger
}

// Stack is a running local stack.
type Stack struct {
	Server      *devserver.Server
	Client      client.Client
	Worker      *workers.Worker
	Local       *local.Host
	Metrics     *workers.Metrics
	MetricsAddr string
	UI          *UI
	stopMetrics func()
}

// Start starts the server, then (unless NoWorker) the local components and
// the worker. On error everything started so far is stopped.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Home == "" {
		return nil, errors.New("stack: no home directory")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	db := o.DatabaseFile
	if db == "" && !o.InMemory {
		db = filepath.Join(o.Home, "temporal.db")
	}
	s := &Stack{}
	srv, err := devserver.Start(devserver.Options{
		DatabaseFile: db, FrontendPort: o.FrontendPort, SearchAttributes: SearchAttributes,
		LogFile: filepath.Join(o.Home, "temporal.log"),
	})
	if err != nil {
		return nil, err
	}
	s.Server = srv
	s.Metrics = workers.NewMetrics()
	s.Client, err = workers.Dial(ctx, workers.ClientOptions{
		Address: srv.Address(), Namespace: srv.Namespace(), Metrics: s.Metrics.Handler(), Logger: o.Logger,
	})
	if err != nil {
		s.Stop()
		return nil, err
	}
	if o.MetricsAddr != "" {
		if s.stopMetrics, s.MetricsAddr, err = s.Metrics.Serve(o.MetricsAddr); err != nil {
			s.Stop()
			return nil, fmt.Errorf("stack: metrics: %w", err)
		}
	}
	if o.UIPort != 0 {
		host, _, _ := net.SplitHostPort(srv.Address())
		if s.UI, err = StartUI(host, o.UIPort, srv.Address()); err != nil {
			s.Stop()
			return nil, err
		}
	}
	if o.NoWorker {
		return s, nil
	}
	lo := o.Local
	lo.Home, lo.Logger = o.Home, o.Logger
	if s.Local, err = local.Open(ctx, lo); err != nil {
		s.Stop()
		return nil, err
	}
	if s.Worker, err = workers.Start(s.Client, s.Local.Activities, workers.Options{Tuning: o.Tuning, ClearEvery: o.ClearEvery}); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops the worker, the components, the client and the server.
func (s *Stack) Stop() {
	if s.Worker != nil {
		s.Worker.Stop()
	}
	if s.Local != nil {
		_ = s.Local.Close()
	}
	if s.UI != nil {
		s.UI.Stop()
	}
	if s.stopMetrics != nil {
		s.stopMetrics()
	}
	if s.Client != nil {
		s.Client.Close()
	}
	if s.Server != nil {
		s.Server.Stop()
	}
}
