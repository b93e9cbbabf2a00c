// Command saopbench compares stacked alternating offers (SAOP) with the
// auction and with bilateral alternating offers on the same synthetic
// multi-task jobs and providers (market.Compare), and prints, per
// protocol: the agreement rate, the share of agreements split over
// providers, the buyer's price (mean and median over its agreements, and
// on the jobs every protocol agreed on, with the median ratio to the
// auction's price), the price as a share of the budget, rounds and moves.
// It is `make bench-saop`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"text/tabwriter"
	"time"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/settlement/money"
)

func main() {
	jobs := flag.Int("jobs", 500, "synthetic multi-task jobs (at least two co-location groups)")
	providers := flag.Int("providers", 8, "synthetic providers")
	seed := flag.Uint64("seed", 1, "seed of the synthetic jobs and providers")
	asJSON := flag.Bool("json", false, "print the summaries as JSON")
	flag.Parse()
	start := time.Now()
	c, err := market.Compare(context.Background(), *seed, *jobs, *providers, market.DefaultVariants)
	if err != nil {
		log.Fatal(err)
	}
	sums := c.Summaries()
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sums); err != nil {
			log.Fatal(err)
		}
		return
	}
	fmt.Printf("%d synthetic multi-task jobs (seed %d) × %d providers, each job negotiated alone by each protocol (%.1f s)\n\n",
		len(c.Jobs), c.Seed, c.Providers, time.Since(start).Seconds())
	if err := table(os.Stdout, sums); err != nil {
		log.Fatal(err)
	}
}

// table prints the summaries, prices in major units.
func table(w io.Writer, sums []market.Summary) error {
	usd := func(v float64) string { return money.Format(int64(v+0.5), "USD") }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "protocol\tagreed\tsplit\tmean price\tmedian price\tprice/budget\trounds\tmoves\tcommon jobs: mean price\tmedian ratio to first\t")
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%d/%d (%.0f%%)\t%d (%.0f%%)\t%s\t%s\t%.2f\t%.1f\t%.1f\t%s (%d jobs)\t%.3f\t\n", s.Variant, s.Agreed, s.Jobs,
			pct(s.Agreed, s.Jobs), s.Split, pct(s.Split, s.Agreed), usd(s.MeanPrice), usd(s.MedianPrice), s.MeanBudgetShare,
			s.MeanRounds, s.MeanMoves, usd(s.CommonMeanPrice), s.Common, s.PriceRatio)
	}
	return tw.Flush()
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
