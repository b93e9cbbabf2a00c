package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/market/wdp"
)

func init() {
	auction := &cobra.Command{
		Use:     "auction",
		Short:   "Combinatorial auction tools",
		Example: "  accord auction solve instance.json --vcg",
	}
	var (
		vcg     bool
		limit   time.Duration
		threads int
	)
	solve := &cobra.Command{
		Use:   "solve FILE|-",
		Short: "Solve a winner-determination instance exactly (branch-and-bound over LP relaxations)",
		Long: `Solve reads {"goods": N, "bids": [{"bidder": "b1", "goods": [0, 5, 7], "price": 12.5}]}
from FILE (- for standard input) and prints the revenue-maximising set of
non-conflicting bids. With --vcg it also prints Clarke-pivot (VCG) payments of
the winning bidders. Prices are numbers in 0..1e15.`,
		Example: `  accord auction solve instance.json
  accord auction solve instance.json --vcg --json
  echo '{"goods": 1, "bids": [{"bidder": "a", "goods": [0], "price": 3}]}' | accord auction solve -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return cli.Usagef("--time-limit must not be negative")
			}
			if threads < 0 {
				return cli.Usagef("--threads must not be negative")
			}
			if threads == 0 {
				threads = runtime.GOMAXPROCS(0)
			}
			in, err := readInstance(cmd, args[0])
			if err != nil {
				return err
			}
			// Long solves log their progress on stderr, off the result.
			r, err := wdp.SolveReport(cmd.Context(), in, vcg, wdp.Options{TimeLimit: limit, Threads: threads, Progress: logProgress})
			if err != nil {
				return err
			}
			return cli.Print(cmd, r, func(w cli.Writer) { printSolution(w, in, r) })
		},
	}
	solve.Flags().BoolVar(&vcg, "vcg", false, "compute VCG (Clarke pivot) payments")
	solve.Flags().DurationVar(&limit, "time-limit", 60*time.Second, "stop after this long with the best solution and its gap (0: no limit)")
	solve.Flags().IntVar(&threads, "threads", 1, "search threads per independent part of the instance (0: one per CPU); with more than one, ties between optimal packings may be broken differently from run to run")
	auction.AddCommand(solve)
	root.AddCommand(auction)
}

// readInstance reads and checks an instance from path, or from standard
// input when path is "-"; a malformed or empty one is a usage error.
func readInstance(cmd *cobra.Command, path string) (*wdp.Instance, error) {
	var r io.Reader = cmd.InOrStdin()
	name := "standard input"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, path
	}
	in, err := wdp.Decode(r)
	if errors.Is(err, wdp.ErrInvalid) {
		return nil, cli.Usagef("%s: %w", name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(in.Bids) == 0 || in.Goods == 0 {
		return nil, cli.Usagef("%s: no goods or no bids: want {\"goods\": N, \"bids\": [{\"bidder\": ..., \"goods\": [...], \"price\": ...}]}", name)
	}
	return in, nil
}

// printSolution lists the winning bids by bidder, with their bundles.
func printSolution(w cli.Writer, in *wdp.Instance, r *wdp.Report) {
	w.Printf("objective %g (optimal %v, gap %g), %d nodes, %.3fs\n", r.Objective, r.Optimal, r.Gap, r.Nodes, r.Seconds)
	w.Printf("%d winning bids:\n", len(r.Winners))
	for _, i := range r.Winners {
		b := in.Bids[i]
		w.Printf("  %-16s bid %-5d goods %v for %g\n", b.Bidder, i, b.Goods, b.Price)
	}
	for _, b := range slices.Sorted(maps.Keys(r.Payments)) {
		w.Printf("  %s pays %g\n", b, r.Payments[b])
	}
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
