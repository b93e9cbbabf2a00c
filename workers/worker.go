// Package workers starts Accord's worker processes: the client to a
// Temporal cluster (embedded or external, with TLS), one worker per task
// queue hosting the job workflow and its activities, sized by Tuning, and
// the Prometheus metrics the workflow records.
//
// Its neighbours each do one other job: workers/jobclient submits and
// follows jobs, workers/apijobs serves them to the HTTP API, workers/local
// opens the single-host components the activities call, workers/devserver
// embeds the Temporal server and workers/stack runs them all in one
// process (so that linking this package does not pull in the server).
package workers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/accordmesh/accord/activities"
	"github.com/accordmesh/accord/workflows"
)

// ErrConfig reports unusable worker or client options.
var ErrConfig = errors.New("workers: invalid configuration")

// ClientOptions select a Temporal cluster.
type ClientOptions struct {
	Address   string // host:port of the frontend
	Namespace string // default "default"
	// TLS: a CA file to trust, a client certificate and key for mTLS, and the
	// server name to verify; any of them enables TLS.
	TLSCA, TLSCert, TLSKey, TLSServerName string
	Metrics                               client.MetricsHandler
	Logger                                *slog.Logger
}

// Dial connects to Temporal.
func Dial(ctx context.Context, o ClientOptions) (client.Client, error) {
	if o.Address == "" {
		return nil, fmt.Errorf("%w: no Temporal address", ErrConfig)
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	opts := client.Options{
		HostPort:       o.Address,
		Namespace:      o.Namespace,
		Logger:         tlog.NewStructuredLogger(o.Logger),
		MetricsHandler: o.Metrics,
	}
	if o.TLSCA != "" || o.TLSCert != "" || o.TLSKey != "" || o.TLSServerName != "" {
		tc := &tls.Config{ServerName: o.TLSServerName, MinVersion: tls.VersionTLS12}
		if o.TLSCA != "" {
			pem, err := os.ReadFile(o.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("%w: tls ca: %v", ErrConfig, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: tls ca %s holds no certificate", ErrConfig, o.TLSCA)
			}
			tc.RootCAs = pool
		}
		if (o.TLSCert == "") != (o.TLSKey == "") {
			return nil, fmt.Errorf("%w: --tls-cert and --tls-key go together", ErrConfig)
		}
		if o.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("%w: tls client certificate: %v", ErrConfig, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts.ConnectionOptions.TLS = tc
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("workers: dial temporal %s: %w", o.Address, err)
	}
	return c, nil
}

// Options configure a worker process.
type Options struct {
	// Queues to poll; default both workflows.TaskQueueControl and
	// workflows.TaskQueueExecution.
	Queues []string
	// Tuning sizes each queue's worker; zero fields take DefaultTuning's.
	Tuning Tuning
	// ClearEvery, when set, makes a worker hosting the control queue
	// ensure the market clearing schedule at this interval
	// (EnsureClearingSchedule) as it starts.
	ClearEvery time.Duration
}

// Worker is a running worker process: one Temporal worker per task queue,
// sharing the client and the activities.
type Worker struct {
	workers []worker.Worker
}

// Start starts polling. The control queue hosts the job workflow and the
// control-plane activities; the execution queue hosts container activities.
// It sets the process-wide sticky workflow cache size first, so the
// workers it starts share a cache of o.Tuning's size.
func Start(c client.Client, acts *activities.Activities, o Options) (*Worker, error) {
	queues := o.Queues
	if len(queues) == 0 {
		queues = []string{workflows.TaskQueueControl, workflows.TaskQueueExecution}
	}
	tun := o.Tuning.withDefaults()
	if err := tun.Validate(); err != nil {
		return nil, err
	}
	worker.SetStickyWorkflowCacheSize(tun.StickyCacheSize)
	w := &Worker{}
	for _, q := range queues {
		tw := worker.New(c, q, tun.WorkerOptions())
		if err := register(tw, q, acts); err != nil {
			w.Stop()
			return nil, err
		}
		if err := tw.Start(); err != nil {
			w.Stop()
			return nil, fmt.Errorf("workers: start %s: %w", q, err)
		}
		w.workers = append(w.workers, tw)
	}
	if o.ClearEvery > 0 && slices.Contains(queues, workflows.TaskQueueControl) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := EnsureClearingSchedule(ctx, c, o.ClearEvery); err != nil {
			w.Stop()
			return nil, err
		}
	}
	return w, nil
}

// register registers what queue q hosts on tw: the job workflow and the
// control-plane activities, the container activities, or a provider
// agent's (workflows.ExecQueue).
func register(tw worker.Worker, queue string, acts *activities.Activities) error {
	switch queue {
	case workflows.TaskQueueControl:
		workflows.Register(tw)
		workflows.RegisterDeployment(tw)
		acts.RegisterControl(tw)
	case workflows.TaskQueueExecution:
		acts.RegisterExecution(tw)
	default:
		if strings.HasPrefix(queue, workflows.ExecQueuePrefix) {
			// A provider agent's own queue: its tasks and its signature.
			acts.RegisterProvider(tw)
			return nil
		}
		return fmt.Errorf("%w: unknown task queue %q", ErrConfig, queue)
	}
	return nil
}

// Stop stops polling and waits for running activity attempts to return.
func (w *Worker) Stop() {
	for _, tw := range w.workers {
		tw.Stop()
	}
	w.workers = nil
}
