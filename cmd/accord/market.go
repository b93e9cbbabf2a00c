package main

import (
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/market"
)

func init() {
	mkt := &cobra.Command{
		Use:     "market",
		Short:   "Market operations over many jobs",
		Example: "  accord market clear --jobs queue/ --providers providers.yaml",
	}
	var (
		jobsDir, provFile string
		limit             time.Duration
	)
	clear := &cobra.Command{
		Use:   "clear --jobs DIR --providers FILE",
		Short: "Clear every queued job in DIR against the providers in one combinatorial auction",
		Long: `Clear loads and compiles every spec (*.md) directly in DIR, each job named by
its file name, and clears them all at once against the providers in FILE
({"providers": [...]}, YAML or JSON): one sealed-bid combinatorial auction
over whole jobs, bundles of jobs on one provider and multi-task jobs split by
co-location group, each provider's capacity going to at most one winning bid.
It prints the allocation, each award's price (by the job's pricing rule: VCG
with the buyer's reserve by default), the objective (total surplus) with its
bound and gap, and the timings. --time-limit bounds winner determination, and
again the VCG price re-solves together; a clearing it stops is reported with
optimal false.`,
		Example: `  accord market clear --jobs queue/ --providers providers.yaml
  accord market clear --jobs queue/ --providers providers.yaml --time-limit 5m --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobsDir == "" || provFile == "" {
				return cli.Usagef("--jobs and --providers are required")
			}
			if limit < 0 {
				return cli.Usagef("--time-limit must not be negative")
			}
			plans, names, err := market.LoadJobs(jobsDir)
			if err != nil {
				return marketInputErr(err)
			}
			provs, err := market.LoadProviders(provFile)
			if err != nil {
				return marketInputErr(err)
			}
			b, err := market.ClearBatch(cmd.Context(), plans, names, provs, market.Options{TimeLimit: limit})
			if b == nil {
				return marketInputErr(err)
			}
			if perr := cli.Print(cmd, b, func(w cli.Writer) { printBatch(w, b) }); perr != nil {
				return perr
			}
			return err
		},
	}
	clear.Flags().StringVar(&jobsDir, "jobs", "", "directory of job specs (*.md), one job per file")
	clear.Flags().StringVar(&provFile, "providers", "", "providers file (YAML or JSON: {\"providers\": [...]})")
	clear.Flags().DurationVar(&limit, "time-limit", 60*time.Second, "stop winner determination (and again the price re-solves) after this long with the best allocation and its gap")
	mkt.AddCommand(clear, marketScheduleCmd())
	root.AddCommand(mkt)
}

// marketInputErr makes malformed specs or providers a usage error.
func marketInputErr(err error) error {
	if errors.Is(err, market.ErrInvalid) {
		return cli.Usage(err)
	}
	return cli.InputErr(err)
}

// printBatch prints a batch clearing for people: the summary, the awards
// and the diagnostics counted by constraint.
func printBatch(w cli.Writer, b *market.Batch) {
	r := b.Result
	placed := map[string]bool{}
	for _, a := range r.Awards {
		placed[a.Job] = true
	}
	w.Printf("%d jobs, %d providers: %d offers, %d bids over %d goods\n", len(r.Jobs), len(r.Providers), len(r.Offers), b.Bids, b.Goods)
	w.Printf("objective %s surplus (bound %s, gap %g, optimal %v; prices exact %v), %d nodes\n",
		formatMoney(int64(b.Objective), r.Currency), formatMoney(int64(b.Bound), r.Currency), r.Gap, b.Proven, b.PricesExact, r.Nodes)
	t := b.Timings
	w.Printf("timings: bids %.3fs, winner determination %.3fs, prices %.3fs, total %.3fs\n", t.BidsSeconds, t.WDPSeconds, t.PricesSeconds, t.TotalSeconds)
	w.Printf("%d jobs placed, %d not:\n", len(placed), len(r.Jobs)-len(placed))
	for _, a := range r.Awards {
		w.Printf("  %-24s on %-16s ask %s, %s\n", a.Job, a.Provider, formatMoney(a.Ask, r.Currency), a.Explanation)
	}
	count := map[string]int{}
	for _, d := range r.Diagnostics {
		count[d.Constraint]++
	}
	if len(count) > 0 {
		w.Printf("diagnostics (--json lists them):")
		for _, c := range slices.Sorted(maps.Keys(count)) {
			w.Printf(" %s %d", c, count[c])
		}
		w.Printf("\n")
	}
}
