package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/market/wdp"
)

func init() {
	auction := &cobra.Command{
		Use:   "auction",
		Short: "Combinatorial auction tools",
	}
	var (
		vcg     bool
		limit   time.Duration
		threads int
	)
	solve := &cobra.Command{
		Use:   "solve FILE",
		Short: "Solve a winner-determination instance exactly (branch-and-bound over LP relaxations)",
		Long: `Solve reads {"goods": N, "bids": [{"bidder": "b1", "goods": [0, 5, 7], "price": 12.5}]}
and prints the revenue-maximising set of non-conflicting bids. With --vcg it also
prints Clarke-pivot (VCG) payments of the winning bidders.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			defer f.Close()
			in, err := wdp.Decode(f)
			if err != nil {
				if errors.Is(err, wdp.ErrInvalid) {
					return cli.WithCode(cli.ExitUsage, fmt.Errorf("%s: %w", args[0], err))
				}
				return err
			}
			if limit < 0 {
				return cli.WithCode(cli.ExitUsage, fmt.Errorf("--time-limit must not be negative"))
			}
			if threads < 0 {
				return cli.WithCode(cli.ExitUsage, fmt.Errorf("--threads must not be negative"))
			}
			if threads == 0 {
				threads = runtime.GOMAXPROCS(0)
			}
			// Long solves log their progress on stderr, off the result.
			r, err := wdp.SolveReport(cmd.Context(), in, vcg, wdp.Options{TimeLimit: limit, Threads: threads, Progress: logProgress})
			if err != nil {
				return err
			}
			return cli.Print(cmd, r, func(w cli.Writer) {
				w.Printf("objective %g (optimal %v, gap %g), %d nodes, %.3fs\n", r.Objective, r.Optimal, r.Gap, r.Nodes, r.Seconds)
				w.Printf("winners %v\n", r.Winners)
				for b, p := range r.Payments {
					w.Printf("  %s pays %g\n", b, p)
				}
			})
		},
	}
	solve.Flags().BoolVar(&vcg, "vcg", false, "compute VCG (Clarke pivot) payments")
	solve.Flags().DurationVar(&limit, "time-limit", 60*time.Second, "stop after this long with the best solution and its gap (0: no limit)")
	solve.Flags().IntVar(&threads, "threads", 1, "search threads per independent part of the instance (0: one per CPU); with more than one, ties between optimal packings may be broken differently from run to run")
	auction.AddCommand(solve)
	root.AddCommand(auction)
}

// logProgress logs a running solve's progress (every 5 s).
func logProgress(p wdp.Progress) {
	attrs := []any{"stage", p.Stage, "nodes", p.Nodes, "elapsed", p.Elapsed.Round(time.Second)}
	if p.Stage == "wdp" {
		attrs = append(attrs, "best", p.Best, "components_done", p.Done, "components", p.Total)
	} else {
		attrs = append(attrs, "groups_done", p.Done, "groups", p.Total)
	}
	slog.Info("auction solve", attrs...)
}
