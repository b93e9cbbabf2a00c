package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/runtimes/containerd"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workers/stack"
	"github.com/accordmesh/accord/workflows"
)

// defaultTemporalAddress is where `accord dev` serves the embedded server.
const defaultTemporalAddress = "127.0.0.1:7233"

// temporalFlags select the Temporal cluster for job commands.
type temporalFlags struct {
	address, namespace             string
	tlsCA, tlsCert, tlsKey, tlsSNI string
}

func (f *temporalFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.address, "temporal-address", envOr("ACCORD_TEMPORAL_ADDRESS", defaultTemporalAddress), "Temporal frontend host:port ($ACCORD_TEMPORAL_ADDRESS; accord dev serves "+defaultTemporalAddress+")")
	fl.StringVar(&f.namespace, "namespace", envOr("ACCORD_NAMESPACE", "default"), "Temporal namespace ($ACCORD_NAMESPACE)")
	fl.StringVar(&f.tlsCA, "tls-ca", os.Getenv("ACCORD_TLS_CA"), "CA certificate file to verify the Temporal server ($ACCORD_TLS_CA)")
	fl.StringVar(&f.tlsCert, "tls-cert", os.Getenv("ACCORD_TLS_CERT"), "client certificate file for mTLS ($ACCORD_TLS_CERT)")
	fl.StringVar(&f.tlsKey, "tls-key", os.Getenv("ACCORD_TLS_KEY"), "client key file for mTLS ($ACCORD_TLS_KEY)")
	fl.StringVar(&f.tlsSNI, "tls-server-name", os.Getenv("ACCORD_TLS_SERVER_NAME"), "server name to verify, enables TLS ($ACCORD_TLS_SERVER_NAME)")
}

// envOr returns the environment variable name, or def when it is empty:
// the environment sets flag defaults (deploy/config/accord.env).
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (f *temporalFlags) dial(ctx context.Context) (client.Client, error) {
	return f.dialWith(ctx, nil)
}

// dialWith dials with a metrics handler (nil: none); when nothing answers,
// the error says how to start a server.
func (f *temporalFlags) dialWith(ctx context.Context, metrics client.MetricsHandler) (client.Client, error) {
	c, err := workers.Dial(ctx, workers.ClientOptions{
		Address: f.address, Namespace: f.namespace, Metrics: metrics,
		TLSCA: f.tlsCA, TLSCert: f.tlsCert, TLSKey: f.tlsKey, TLSServerName: f.tlsSNI,
	})
	if err != nil && !errors.Is(err, workers.ErrConfig) {
		return nil, fmt.Errorf("%w (is `accord dev` running? start it with `accord dev`, or pass --temporal-address)", err)
	}
	return c, err
}

func init() {
	root.AddCommand(devCmd(), workerCmd(), runCmd(), submitCmd(), statusCmd(), listCmd(), logsCmd(), cancelCmd(), approveCmd(), counterCmd())
}

// tuning completes the worker tuning flags from their environment
// variables ($ACCORD_WORKER_*) and checks them.
func tuning(cmd *cobra.Command, t *workers.Tuning) error {
	if err := t.FromEnv(cmd.Flags(), os.Getenv); err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	if err := t.Validate(); err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	return nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func devCmd() *cobra.Command {
	var port, uiPort int
	var lf localFlags
	var metrics, rekorListen string
	var keepContainerd bool
	var sf sweepFlags
	var clearEvery time.Duration
	tun := workers.DefaultTuning()
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the local stack in the foreground: embedded Temporal, worker, containerd pool, transparency log",
		Example: `  accord dev
  accord dev --host-inputs examples    # then: accord submit examples/quickstart.md (its oci-archive image)
  accord dev --port 7234 --ui-port 0 --rekor-listen ''
  accord dev --ledger-dsn postgres://accord@localhost/accord`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := cli.Home()
			if err != nil {
				return err
			}
			if err := tuning(cmd, &tun); err != nil {
				return err
			}
			if err := sf.check(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			st, err := stack.Start(ctx, stack.Options{
				Home: home, FrontendPort: port, MetricsAddr: metrics, UIPort: uiPort,
				Local: lf.stackOptions(), Tuning: tun, ClearEvery: clearEvery,
			})
			if err != nil {
				return err
			}
			defer stopStack(st, keepContainerd)
			defer sf.start(ctx, st.Local.Sweeper(jobclient.States{Client: st.Client}, sf.after))()
			info := map[string]string{
				"temporal_address": st.Server.Address(), "namespace": st.Server.Namespace(),
				"metrics": st.MetricsAddr, "home": home, "status": "running",
			}
			if rekorListen != "" {
				addr, stopLog, err := serveRekorAPI(rekorListen, st.Local.Log)
				if err != nil {
					return err
				}
				defer stopLog()
				info["rekor_api"] = "http://" + addr
			}
			ui := "off"
			if st.UI != nil {
				ui = "http://" + st.UI.Addr
				info["ui"] = ui
			}
			if err := cli.Print(cmd, info, func(w cli.Writer) {
				w.Printf("accord dev: Temporal on %s (namespace %s), metrics on http://%s/metrics\n", info["temporal_address"], info["namespace"], info["metrics"])
				w.Printf("state in %s; Temporal Web UI: %s\n", home, ui)
				if info["rekor_api"] != "" {
					w.Printf("transparency log (Rekor v1 API for rekor-cli --rekor_server): %s\n", info["rekor_api"])
				}
				w.Printf("submit jobs with: accord submit SPEC --temporal-address %s; Ctrl-C stops\n", info["temporal_address"])
			}); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().IntVar(&port, "port", 7233, "frontend port of the embedded Temporal server")
	cmd.Flags().IntVar(&uiPort, "ui-port", 8233, "Temporal Web UI port (0: off)")
	cmd.Flags().StringVar(&metrics, "metrics-addr", envOr("ACCORD_METRICS_ADDR", "127.0.0.1:9464"), "Prometheus metrics listen address ($ACCORD_METRICS_ADDR)")
	lf.add(cmd)
	cmd.Flags().BoolVar(&keepContainerd, "keep-containerd", false, "leave the private containerd daemon running after Ctrl-C (accord runtime stop ends it)")
	cmd.Flags().StringVar(&rekorListen, "rekor-listen", "127.0.0.1:3000", "serve the transparency log's Rekor v1 REST API here (empty: off)")
	addClearEvery(cmd, &clearEvery)
	tun.AddFlags(cmd.Flags())
	return cmd
}

func workerCmd() *cobra.Command {
	var tf temporalFlags
	var clearEvery time.Duration
	var queues []string
	var lf localFlags
	var metrics string
	var sf sweepFlags
	tun := workers.DefaultTuning()
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker against a Temporal cluster (job workflow and activities)",
		Example: `  accord worker --temporal-address temporal.example.com:7233 --namespace accord
  accord worker --queues accord-execution --tls-ca ca.pem --tls-cert client.pem --tls-key client.key
  accord worker --host-inputs /srv/accord/images    # operators' own specs may import archives from here
  accord worker --sweep-every 30m --sweep-after 48h
  accord worker --sweep-every 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := cli.Home()
			if err != nil {
				return err
			}
			if err := tuning(cmd, &tun); err != nil {
				return err
			}
			if err := sf.check(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			m := workers.NewMetrics()
			c, err := tf.dialWith(ctx, m.Handler())
			if err != nil {
				return err
			}
			defer c.Close()
			if metrics != "" {
				stop, addr, err := m.Serve(metrics)
				if err != nil {
					return fmt.Errorf("metrics: %w", err)
				}
				defer stop()
				metrics = addr
			}
			host, err := local.Open(ctx, lf.options(home))
			if err != nil {
				return err
			}
			defer host.Close()
			w, err := workers.Start(c, host.Activities, workers.Options{Queues: queues, Tuning: tun, ClearEvery: clearEvery})
			if err != nil {
				return err
			}
			defer w.Stop()
			if slices.Contains(queues, workflows.TaskQueueControl) {
				defer sf.start(ctx, host.Sweeper(jobclient.States{Client: c}, sf.after))()
			}
			if err := cli.Print(cmd, map[string]any{"status": "running", "temporal_address": tf.address, "queues": queues, "metrics": metrics},
				func(wr cli.Writer) {
					wr.Printf("accord worker: polling %v on %s (namespace %s), metrics on %s\n", queues, tf.address, tf.namespace, metrics)
				}); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		},
	}
	tf.add(cmd)
	cmd.Flags().StringSliceVar(&queues, "queues", strings.Split(envOr("ACCORD_QUEUES", workflows.TaskQueueControl+","+workflows.TaskQueueExecution), ","), "task queues to poll ($ACCORD_QUEUES)")
	cmd.Flags().StringVar(&metrics, "metrics-addr", envOr("ACCORD_METRICS_ADDR", "127.0.0.1:9464"), "Prometheus metrics listen address, empty: off ($ACCORD_METRICS_ADDR)")
	lf.add(cmd)
	sf.add(cmd)
	addClearEvery(cmd, &clearEvery)
	tun.AddFlags(cmd.Flags())
	return cmd
}

func runCmd() *cobra.Command {
	var fund string
	var lf localFlags
	var metrics, jobID string
	var autoApprove, approveTried bool
	var approveAs string
	tun := workers.DefaultTuning()
	cmd := &cobra.Command{
		Use:   "run SPEC",
		Short: "Run one spec end to end in this process and print its receipt summary",
		Example: `  accord run examples/quickstart.md --fund 50000
  accord run examples/llm-finetune.md --approve --as alice@acme.example --json
  accord run job.md --host-inputs /data/corpus --host-inputs .    # inputs outside the spec's directory`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if approveAs == "" {
				approveAs = os.Getenv("USER")
			}
			home, err := cli.Home()
			if err != nil {
				return err
			}
			if err := tuning(cmd, &tun); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			if jobID == "" {
				jobID = jobclient.NewJobID()
			}
			if err := prepareFunds(ctx, settlement.ResolveDSN(lf.ledgerDSN, home), args[0], jobID, fund); err != nil {
				return err
			}
			if len(lf.hostInputs) == 0 { // the operator's own spec: its directory holds its files
				lf.hostInputs = []string{filepath.Dir(args[0])}
			}
			out := cmd.OutOrStdout()
			progress := !cli.JSON()
			if progress {
				fmt.Fprintf(out, "starting the local stack in %s ...\n", home)
			}
			t0 := time.Now()
			st, err := stack.Start(context.WithoutCancel(ctx), stack.Options{
				Home: home, MetricsAddr: metrics, Logger: quietLogger(ctx),
				Local: lf.stackOptions(), Tuning: tun,
			})
			if err != nil {
				return err
			}
			defer stopStack(st, false) // and the containerd daemon it started
			sub, err := jobclient.Submit(ctx, st.Client, args[0], jobID)
			if err != nil {
				return err
			}
			if progress {
				fmt.Fprintf(out, "stack up in %.1fs; job %s: spec %s, tenant %s\n", time.Since(t0).Seconds(), sub.JobID, sub.Spec, sub.Tenant)
			}
			go func() { // Ctrl-C cancels the job (compensations run) rather than abandoning it
				<-ctx.Done()
				_ = jobclient.Cancel(context.Background(), st.Client, sub.JobID, "interrupted")
			}()
			p := &progressPrinter{w: out, on: progress}
			res, err := jobclient.Watch(context.WithoutCancel(ctx), st.Client, sub.JobID, 100*time.Millisecond, func(s workflows.JobStatus) {
				p.update(s)
				if autoApprove && s.Status == workflows.StatusAwaitingApproval && !s.Approved && !approveTried {
					approveTried = true
					in := workflows.ApproveInput{By: approveAs, Reason: "accord run --approve"}
					if err := jobclient.Approve(context.Background(), st.Client, sub.JobID, in); err != nil {
						slog.Warn("approval refused; the job waits at its gate (accord approve, or Ctrl-C to cancel)", "job_id", sub.JobID, "err", err)
					}
				}
			})
			if err != nil {
				return err
			}
			return printResult(cmd, res)
		},
	}
	cmd.Flags().StringVar(&fund, "fund", "", "top the spec's tenant up to this amount first, in major units of the budget's currency, e.g. 10.00 (local demo ledgers)")
	cmd.Flags().StringVar(&metrics, "metrics-addr", "", "serve Prometheus metrics on this address while running")
	cmd.Flags().StringVar(&jobID, "job-id", "", "job ID to use (default: generated)")
	cmd.Flags().BoolVar(&autoApprove, "approve", false, "pass the spec's approval gate as --as when the job reaches it")
	cmd.Flags().StringVar(&approveAs, "as", "", "identity --approve approves as; must be in the spec's approval.approvers (default $USER)")
	lf.add(cmd)
	tun.AddFlags(cmd.Flags())
	return cmd
}

// quietLogger keeps the worker's own logs off a progress display unless
// -v asked for debug logging.
func quietLogger(ctx context.Context) *slog.Logger {
	if slog.Default().Enabled(ctx, slog.LevelDebug) {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// progressPrinter prints each stage as it ends, with its elapsed time, and
// task state changes.
type progressPrinter struct {
	w       io.Writer
	on      bool
	printed map[string]bool
	tasks   map[string]string
}

var stageOrder = []string{
	workflows.StageCompile, workflows.StageAdmit, workflows.StageNegotiate, workflows.StageApproval,
	workflows.StagePlace, workflows.StageExecute, workflows.StageVerify, workflows.StagePublish, workflows.StageSettle,
}

func (p *progressPrinter) update(s workflows.JobStatus) {
	if !p.on {
		return
	}
	if p.printed == nil {
		p.printed, p.tasks = map[string]bool{}, map[string]string{}
	}
	names := make([]string, 0, len(s.Tasks))
	for n := range s.Tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := s.Tasks[n]
		key := fmt.Sprintf("%s#%d", t.State, t.Attempt)
		if p.tasks[n] != key && t.State != workflows.TaskPending {
			p.tasks[n] = key
			extra := ""
			if t.State == workflows.TaskFailed {
				extra = fmt.Sprintf(" (exit %d %s)", t.ExitCode, t.Reason)
			}
			fmt.Fprintf(p.w, "    task %-16s %s, attempt %d%s\n", n, t.State, t.Attempt, extra)
		}
	}
	for _, st := range stageOrder {
		tm, ok := s.Stages[st]
		if !ok || tm.End.IsZero() || p.printed[st] {
			continue
		}
		p.printed[st] = true
		fmt.Fprintf(p.w, "  ✓ %-10s %8.2fs\n", st, tm.End.Sub(tm.Start).Seconds())
	}
	if s.Status == workflows.StatusAwaitingApproval && !p.printed["awaiting"] {
		p.printed["awaiting"] = true
		fmt.Fprintf(p.w, "  … awaiting approval: accord approve %s\n", s.JobID)
	}
}

// printParts lists a split job's parts: each provider, its tasks and its
// price.
func printParts(w cli.Writer, parts []workflows.AwardPart, currency string) {
	for _, p := range parts {
		w.Printf("  part %s: %s, price %s\n", p.Provider, strings.Join(p.Tasks, ", "), formatMoney(p.Price, currency))
	}
}

// printFailovers lists the providers a job lost and what replaced them:
// before placement, mid-run, or (a split job's part) for some tasks.
func printFailovers(w cli.Writer, fs []workflows.Failover, currency string) {
	for _, f := range fs {
		what := "the job"
		if len(f.Tasks) > 0 {
			what = "tasks " + strings.Join(f.Tasks, ", ")
		}
		w.Printf("  failover: %s lost (%s); %s moved to %s at %s\n", f.Lost, f.Reason, what, f.Provider, formatMoney(f.Price, currency))
	}
}

func printResult(cmd *cobra.Command, res workflows.JobResult) error {
	err := cli.Print(cmd, res, func(w cli.Writer) {
		w.Printf("job %s: %s", res.JobID, res.Status)
		if res.Class != "" {
			w.Printf(" (%s at %s: %s)", res.Class, res.Stage, res.Error)
		}
		w.Printf("\n")
		if fundingFailure(res) {
			w.Printf("  %s\n", fundingHint(res))
		}
		if res.Provider != "" {
			w.Printf("  provider %s, price %s, paid %s, refunded %s\n", res.Provider,
				formatMoney(res.Price, res.Currency), formatMoney(res.Paid, res.Currency), formatMoney(res.Refunded, res.Currency))
			if res.PriceExplanation != "" {
				w.Printf("  price: %s\n", res.PriceExplanation)
			}
		}
		printParts(w, res.Parts, res.Currency)
		printFailovers(w, res.Failovers, res.Currency)
		for _, t := range res.Tests {
			mark := "pass"
			if !t.Passed {
				mark = "FAIL " + t.Detail
			}
			w.Printf("  test %s: %s\n", t.Name, mark)
		}
		if len(res.Compensated) > 0 {
			w.Printf("  compensations: %s\n", strings.Join(res.Compensated, ", "))
		}
		if len(res.Attestations) > 0 {
			w.Printf("  receipt: %d attestations in the transparency log\n", len(res.Attestations))
			for _, a := range res.Attestations {
				w.Printf("    %-13s log index %-4d %s\n", a.Stage, a.LogIndex, a.Digest)
			}
			w.Printf("  export: accord receipt export %s -o receipt.json; verify: accord audit verify receipt.json\n", res.JobID)
		}
	})
	if err != nil {
		return err
	}
	if code := jobclient.ExitCode(res); code != cli.ExitOK {
		return cli.WithCode(code, fmt.Errorf("job %s %s: %s", res.JobID, res.Status, res.Error))
	}
	return nil
}

func submitCmd() *cobra.Command {
	var tf temporalFlags
	var wait bool
	var jobID string
	cmd := &cobra.Command{
		Use:   "submit SPEC",
		Short: "Submit a spec as a durable job",
		Example: `  accord submit examples/quickstart.md
  accord submit examples/quickstart.md --wait --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			sub, err := jobclient.Submit(ctx, c, args[0], jobID)
			if err != nil {
				return err
			}
			if !wait {
				return cli.Print(cmd, map[string]string{"job_id": sub.JobID, "status": workflows.StatusPending, "spec": sub.Spec, "tenant": sub.Tenant},
					func(w cli.Writer) { w.Printf("submitted %s (spec %s, tenant %s)\n", sub.JobID, sub.Spec, sub.Tenant) })
			}
			res, err := jobclient.Watch(ctx, c, sub.JobID, 500*time.Millisecond, nil)
			if err != nil {
				return err
			}
			return printResult(cmd, res)
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the job to finish and print its result")
	cmd.Flags().StringVar(&jobID, "job-id", "", "job ID to use (default: generated)")
	return cmd
}

func statusCmd() *cobra.Command {
	var tf temporalFlags
	cmd := &cobra.Command{
		Use:   "status JOB",
		Short: "Show a job's stage, tasks and cost so far",
		Example: `  accord status job-20261125t200134-fb81bb43
  accord status job-20261125t200134-fb81bb43 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := jobclient.Status(ctx, c, args[0])
			if err != nil {
				return err
			}
			return cli.Print(cmd, st, func(w cli.Writer) {
				w.Printf("job %s: %s, stage %s (spec %s, tenant %s)\n", st.JobID, st.Status, st.Stage, st.Spec, st.Tenant)
				w.Printf("  cost: price %s, held %s, paid %s\n", formatMoney(st.Cost.Price, st.Cost.Currency),
					formatMoney(st.Cost.Held, st.Cost.Currency), formatMoney(st.Cost.Paid, st.Cost.Currency))
				if st.Cost.PriceExplanation != "" {
					w.Printf("  price: %s\n", st.Cost.PriceExplanation)
				}
				printParts(w, st.Parts, st.Cost.Currency)
				if b := st.Bargain; b != nil {
					w.Printf("  bargain: round %d of %d, budget %s, move by %s (accord counter)\n", b.Round, b.DeadlineRound,
						formatMoney(b.Budget, b.Currency), b.Timeout.UTC().Format(time.RFC3339))
					for _, o := range b.Offers {
						w.Printf("    offer %-24s %s\n", o.Provider, formatMoney(o.Price, b.Currency))
					}
				}
				if c := st.Clearing; c != nil {
					w.Printf("  clearing: queued for the periodic market clearing until %s\n", c.WaitUntil.UTC().Format(time.RFC3339))
					if c.Reason != "" {
						w.Printf("    last clearing %s: %s\n", c.NotedAt.UTC().Format(time.RFC3339), c.Reason)
					}
				}
				names := make([]string, 0, len(st.Tasks))
				for n := range st.Tasks {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					t := st.Tasks[n]
					w.Printf("  task %-16s %-10s attempt %d exit %d %s\n", n, t.State, t.Attempt, t.ExitCode, t.Reason)
				}
			})
		},
	}
	tf.add(cmd)
	return cmd
}

func listCmd() *cobra.Command {
	var tf temporalFlags
	var f jobclient.Filter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, filtered by tenant, status or spec",
		Example: `  accord list
  accord list --tenant demo --status settled --limit 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			jobs, err := jobclient.List(ctx, c, f)
			if err != nil {
				return err
			}
			if jobs == nil {
				jobs = []jobclient.JobSummary{}
			}
			return cli.Print(cmd, map[string]any{"jobs": jobs, "count": len(jobs)}, func(w cli.Writer) {
				for _, j := range jobs {
					w.Printf("%-36s %-18s %-12s %-10s %s\n", j.JobID, j.Spec, j.Tenant, j.Status, j.Started.Format(time.RFC3339))
				}
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&f.Tenant, "tenant", "", "only this tenant's jobs")
	cmd.Flags().StringVar(&f.Status, "status", "", "only jobs in this status (settled, failed, cancelled, running, ...)")
	cmd.Flags().StringVar(&f.Spec, "spec", "", "only jobs of this spec name")
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "at most this many jobs")
	return cmd
}

func logsCmd() *cobra.Command {
	var tf temporalFlags
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs JOB",
		Short: "Print a job's task logs; -f follows running tasks",
		Example: `  accord logs job-20261125t200134-fb81bb43
  accord logs job-20261125t200134-fb81bb43 -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := cli.HomePath()
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			jobID := args[0]
			logsDir := filepath.Join(home, "jobs", jobID, "logs")
			shown := map[string]bool{}
			var rt *containerd.Runtime
			for {
				st, err := jobclient.Status(ctx, c, jobID)
				if err != nil {
					return err
				}
				names := make([]string, 0, len(st.Tasks))
				for n := range st.Tasks {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					t := st.Tasks[n]
					for a := 1; a <= t.Attempt; a++ {
						run := workflows.RunID(jobID, n, a)
						if shown[run] {
							continue
						}
						if streamLog(cmd.OutOrStdout(), run, filepath.Join(logsDir, run+".log")) {
							shown[run] = true
							continue
						}
						if !follow || t.State != workflows.TaskRunning || a != t.Attempt {
							continue
						}
						if rt == nil {
							if rt, err = containerd.New(ctx, containerd.Options{StateDir: filepath.Join(home, "containerd")}); err != nil {
								return err
							}
						}
						rc, err := rt.Logs(ctx, run, true)
						if err != nil {
							continue // not started yet; try again
						}
						fmt.Fprintf(cmd.OutOrStdout(), "==> %s <==\n", run)
						_, _ = io.Copy(cmd.OutOrStdout(), rc)
						rc.Close()
						shown[run] = true
					}
				}
				terminal := st.Status == workflows.StatusSettled || st.Status == workflows.StatusFailed || st.Status == workflows.StatusCancelled
				if !follow || terminal {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow running tasks until the job ends")
	return cmd
}

func cancelCmd() *cobra.Command {
	var tf temporalFlags
	var reason string
	cmd := &cobra.Command{
		Use:     "cancel JOB",
		Short:   "Cancel a job: stop its containers and refund its escrow",
		Example: `  accord cancel job-20261125t200134-fb81bb43 --reason 'wrong dataset'`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return signalJob(cmd, &tf, args[0], func(ctx context.Context, c client.Client) error {
				return jobclient.Cancel(ctx, c, args[0], reason)
			}, "cancelling")
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&reason, "reason", "cancelled by user", "why")
	return cmd
}

func approveCmd() *cobra.Command {
	var tf temporalFlags
	var approver, reason string
	cmd := &cobra.Command{
		Use:   "approve JOB",
		Short: "Pass a job's approval gate",
		Long: "Approve a job waiting at its approval gate. The job's workflow accepts the approval only\n" +
			"at the gate and only from an identity its spec names in approval.approvers; the approver\n" +
			"and the reason are recorded in the job's placement attestation. Through the HTTP API the\n" +
			"identity is the token's; here, with direct access to Temporal, it is --as.",
		Example: `  accord approve job-20261125t200134-fb81bb43 --as alice@acme.example --reason "within Q4 budget"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if approver == "" {
				approver = os.Getenv("USER")
			}
			in := workflows.ApproveInput{By: approver, Reason: reason}
			return signalJob(cmd, &tf, args[0], func(ctx context.Context, c client.Client) error {
				return jobclient.Approve(ctx, c, args[0], in)
			}, "approve")
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&approver, "as", "", "approver identity, as the spec's approval.approvers names it (default $USER)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the job is approved (recorded in the attestation)")
	return cmd
}

func signalJob(cmd *cobra.Command, tf *temporalFlags, jobID string, send func(context.Context, client.Client) error, verb string) error {
	ctx := cmd.Context()
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := send(ctx, c); err != nil {
		if errors.Is(err, jobclient.ErrNoJob) {
			return err
		}
		return fmt.Errorf("%s %s: %w", verb, jobID, err)
	}
	st, err := jobclient.Status(ctx, c, jobID)
	if err != nil {
		st = workflows.JobStatus{JobID: jobID, Status: workflows.StatusRunning}
	}
	return cli.Print(cmd, map[string]string{"job_id": jobID, "status": st.Status, "stage": st.Stage},
		func(w cli.Writer) { w.Printf("%s %s (now %s, stage %s)\n", verb, jobID, st.Status, st.Stage) })
}

// streamLog copies a finished run's saved log to w under a header, without
// holding it in memory (a task writes as much log as it likes); false when
// there is no such log file.
func streamLog(w io.Writer, run, path string) bool {
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		return false // not a fifo or device that would block or never end
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fmt.Fprintf(w, "==> %s <==\n", run)
	if _, err := io.Copy(w, f); err != nil {
		fmt.Fprintf(w, "\n(log cut short: %v)\n", err)
	}
	return true
}

// addClearEvery adds --clear-every: the interval of the market clearing
// schedule a worker hosting the control queue ensures as it starts.
func addClearEvery(cmd *cobra.Command, every *time.Duration) {
	cmd.Flags().DurationVar(every, "clear-every", 0, "ensure the periodic market clearing of batch-mode jobs (a Temporal schedule) at this interval, e.g. 1m (0: leave it as it is; see accord market schedule)")
}
