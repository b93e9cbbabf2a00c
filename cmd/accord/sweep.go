package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/sweep"
	"github.com/accordmesh/accord/workers/jobclient"
)

func ledgerSweepCmd() *cobra.Command {
	var tf temporalFlags
	var lf logFlags
	var after time.Duration
	var dryRun bool
	c := &cobra.Command{
		Use:   "sweep",
		Short: "Settle or refund escrow held longer than --after whose job workflow has ended or is gone",
		Long: "sweep finds jobs whose escrow is still held after --after and whose workflow is closed or unknown\n" +
			"to Temporal (terminated, timed out, reset, history lost). A job with an attested execution is paid\n" +
			"for that work (price plus metered usage under the terms the provider agreed, the rest refunded);\n" +
			"any other is refunded in full. Quota follows the money, and each sweep is attested as the job's\n" +
			"settlement stage with reason \"swept: workflow closed\" or \"swept: workflow not found\".\n\n" +
			"`accord worker` sweeps every hour by itself (--sweep-every); this command is for a one-off pass or\n" +
			"a look with --dry-run. It writes to the transparency log, so with the embedded log it cannot run\n" +
			"while a worker holds that log: use --dry-run then, and let the worker's own sweep act.",
		Example: `  accord ledger sweep --dry-run
  accord ledger sweep --after 48h --json
  accord ledger sweep --temporal-address temporal.example.com:7233 --rekor-url https://rekor.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if after < sweep.MinAfter {
				return cli.Usagef("--after %s: want at least %s", after, sweep.MinAfter)
			}
			return withLedger(cmd, false, func(ctx context.Context, l *settlement.Ledger) error {
				s, closeAll, err := openSweeper(ctx, l, &tf, &lf, dryRun)
				if err != nil {
					return err
				}
				defer closeAll()
				s.After = after
				r, err := s.Sweep(ctx, dryRun)
				if err != nil {
					return err
				}
				if err := cli.Print(cmd, r, func(w cli.Writer) { printSweep(w, r) }); err != nil {
					return err
				}
				if r.Failed > 0 {
					return cli.WithCode(cli.ExitError, fmt.Errorf("ledger sweep: %d jobs failed (see above); the next sweep retries them", r.Failed))
				}
				return nil
			})
		},
	}
	tf.add(c)
	lf.add(c)
	c.Flags().DurationVar(&after, "after", sweep.DefaultAfter, "sweep escrow held longer than this")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be settled or refunded; post and attest nothing")
	return c
}

// openSweeper wires a sweeper for the CLI: Temporal for workflow states,
// the home's provenance (written unless dryRun) and tenancy store.
func openSweeper(ctx context.Context, l *settlement.Ledger, tf *temporalFlags, lf *logFlags, dryRun bool) (*sweep.Sweeper, func(), error) {
	home, err := cli.Home()
	if err != nil {
		return nil, nil, err
	}
	tc, err := tf.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	cfg := tlog.Config{Kind: lf.kind, Home: home, URL: lf.rekorURL, ReadOnly: dryRun}
	if lf.rekorURL != "" {
		cfg.Kind = tlog.KindRekor
	}
	prov, err := provenance.OpenLocal(ctx, home, cfg)
	if errors.Is(err, embedded.ErrLocked) {
		err = fmt.Errorf("%w: a running worker holds the embedded log and sweeps every hour itself; use --dry-run to look", err)
	}
	if err != nil {
		tc.Close()
		return nil, nil, err
	}
	quota, err := policies.OpenStore(ctx, policies.StorePath(home))
	if err != nil {
		prov.Close(context.Background())
		tc.Close()
		return nil, nil, err
	}
	closeAll := func() {
		quota.Close()
		prov.Close(context.Background())
		tc.Close()
	}
	s := &sweep.Sweeper{
		Ledger: l, Jobs: jobclient.States{Client: tc}, Attestor: prov.Recorder, Quota: quota,
		Evidence: sweep.Attestations{Store: prov.Store, Trust: func() (*provenance.TrustStore, error) {
			return prov.Trust, nil
		}},
	}
	return s, closeAll, nil
}

func printSweep(w cli.Writer, r sweep.Report) {
	verb := map[string]string{sweep.ActionSettle: "settled", sweep.ActionRelease: "refunded",
		sweep.ActionReattest: "attested", sweep.ActionLost: "left to its workflow"}
	if r.DryRun {
		verb = map[string]string{sweep.ActionSettle: "would settle", sweep.ActionRelease: "would refund",
			sweep.ActionReattest: "would attest", sweep.ActionLost: "left to its workflow"}
	}
	for _, a := range r.Actions {
		w.Printf("%s\t%s: held %s since %s, paid %s, refunded %s (%s", a.Job, verb[a.Action],
			formatMoney(a.Held, a.Currency), a.Since.Format(time.RFC3339), formatMoney(a.Paid, a.Currency),
			formatMoney(a.Refunded, a.Currency), a.Reason)
		if a.Basis != "" {
			w.Printf("; %s", a.Basis)
		}
		w.Printf(")\n")
		if a.Error != "" {
			w.Printf("\terror: %s\n", a.Error)
		}
	}
	w.Printf("sweep (held over %s): %d examined, %d running, %d settled, %d refunded, %d re-attested, %d lost to the workflow, %d failed\n",
		r.After, r.Examined, r.Running, r.Settled, r.Released, r.Reattested, r.Lost, r.Failed)
}

// sweepFlags are the worker's periodic escrow sweep.
type sweepFlags struct {
	every, after time.Duration
}

func (f *sweepFlags) add(c *cobra.Command) {
	c.Flags().DurationVar(&f.every, "sweep-every", sweep.DefaultEvery, "settle or refund abandoned escrow this often (0: never; see accord ledger sweep)")
	c.Flags().DurationVar(&f.after, "sweep-after", sweep.DefaultAfter, "sweep escrow held longer than this whose job workflow has ended or is gone")
}

func (f *sweepFlags) check() error {
	switch {
	case f.every < 0:
		return cli.Usagef("--sweep-every %s: want 0 (never) or more", f.every)
	case f.after < sweep.MinAfter:
		return cli.Usagef("--sweep-after %s: want at least %s", f.after, sweep.MinAfter)
	}
	return nil
}

// start runs s every f.every in the background (nothing when f.every is
// 0) and returns what stops it and waits for the pass in progress, so
// that the ledger it uses is closed only afterwards.
func (f *sweepFlags) start(ctx context.Context, s *sweep.Sweeper) (stop func()) {
	if f.every == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, f.every)
	}()
	return func() {
		cancel()
		<-done
	}
}
