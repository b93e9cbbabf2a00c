package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/settlement/money"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
)

// counterCmd is the buyer's move in a job that bargains with an agent as
// its buyer (negotiation.buyer: agent).
func counterCmd() *cobra.Command {
	var tf temporalFlags
	var price, accept, as string
	cmd := &cobra.Command{
		Use:   "counter JOB (--price P | --accept PROVIDER)",
		Short: "Make the buyer's move in a job that bargains with its agent as buyer",
		Long: "A job whose spec says negotiation: {protocol: alternating-offers, buyer: agent} waits in each\n" +
			"round for the buyer's move: a counter-offer (--price, in major units of the budget's currency,\n" +
			"at most the budget) or the acceptance of one provider's current offer (--accept; accord status\n" +
			"shows the offers). The sellers answer at once: their next offers, or the agreement. A round\n" +
			"without a move before negotiation.round_timeout ends the bargain without agreement.",
		Example: `  accord counter job-20261125t200134-fb81bb43 --price 3.50
  accord counter job-20261125t200134-fb81bb43 --accept gpu-east --as buyer-agent`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (price == "") == (accept == "") {
				return cli.Usagef("counter: give exactly one of --price and --accept")
			}
			if as == "" {
				as = os.Getenv("USER")
			}
			if as == "" {
				return cli.Usagef("counter: give the buyer's identity with --as ($USER is not set)")
			}
			ctx := cmd.Context()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			in := workflows.CounterInput{By: as, Accept: accept}
			st, err := jobclient.Status(ctx, c, args[0])
			if err != nil {
				return err
			}
			if st.Bargain == nil {
				return fmt.Errorf("counter %s: %w: the job is not bargaining now (status %s, stage %s)", args[0], jobclient.ErrNotBargaining, st.Status, st.Stage)
			}
			currency := st.Bargain.Currency
			if price != "" {
				if in.Price, err = money.Parse(price, currency); err != nil {
					return cli.Usagef("counter: --price: %v", err)
				}
			}
			out, err := jobclient.Counter(ctx, c, args[0], in)
			if err != nil {
				if errors.Is(err, jobclient.ErrNoJob) {
					return err
				}
				return fmt.Errorf("counter %s: %w", args[0], err)
			}
			return cli.Print(cmd, out, func(w cli.Writer) { printCounter(w, args[0], out, currency) })
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&price, "price", "", "counter-offer, in major units of the budget's currency (e.g. 3.50)")
	cmd.Flags().StringVar(&accept, "accept", "", "accept this provider's current offer")
	cmd.Flags().StringVar(&as, "as", "", "the buyer's identity, recorded with the move (default $USER)")
	return cmd
}

func printCounter(w cli.Writer, jobID string, out workflows.CounterOutput, currency string) {
	switch {
	case out.Agreed != "":
		w.Printf("%s: agreed with %s at %s in round %d\n", jobID, out.Agreed, money.Format(out.Price, currency), out.Round)
	case out.Over:
		w.Printf("%s: the bargain ended without agreement (round %d)\n", jobID, out.Round)
	default:
		w.Printf("%s: round %d, the sellers' offers:\n", jobID, out.Round)
		for _, o := range out.Offers {
			w.Printf("  %-24s %s\n", o.Provider, money.Format(o.Price, currency))
		}
	}
}
