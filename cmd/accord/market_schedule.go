package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/workers"
)

// marketScheduleCmd is `accord market schedule create|describe|delete`:
// the Temporal schedule that clears batch-mode jobs periodically.
func marketScheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Manage the periodic market clearing of batch-mode jobs (negotiation.mode: batch)",
		Long: `The market clearing schedule starts the MarketClearing workflow every interval
(overlap policy skip): it clears every queued batch-mode job in one auction,
delivers each placed job its award and leaves the others queued with the
market's reasons until their batch_wait ends.`,
		Example: `  accord market schedule create --every 1m
  accord market schedule describe --json
  accord market schedule delete`,
	}
	var tf temporalFlags
	var every time.Duration
	create := &cobra.Command{
		Use:   "create --every D",
		Short: "Create the clearing schedule, or set its interval (idempotent)",
		Example: `  accord market schedule create --every 1m
  accord market schedule create --every 30s --temporal-address temporal.example.com:7233`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if every < workers.MinClearEvery || every > workers.MaxClearEvery {
				return cli.Usagef("--every must be between %s and %s", workers.MinClearEvery, workers.MaxClearEvery)
			}
			c, err := tf.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			created, err := workers.EnsureClearingSchedule(cmd.Context(), c, every)
			if err != nil {
				return err
			}
			out := map[string]any{"schedule": "accord-market-clearing", "every": every.String(), "created": created}
			return cli.Print(cmd, out, func(w cli.Writer) {
				verb := "kept (interval set)"
				if created {
					verb = "created"
				}
				w.Printf("market clearing schedule %s: every %s\n", verb, every)
			})
		},
	}
	create.Flags().DurationVar(&every, "every", workers.DefaultClearEvery, "interval between clearings")
	tf.add(create)
	var dtf temporalFlags
	describe := &cobra.Command{
		Use:   "describe",
		Short: "Show the clearing schedule: interval, clearings started and skipped, next runs",
		Example: `  accord market schedule describe
  accord market schedule describe --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dtf.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := workers.DescribeClearingSchedule(cmd.Context(), c)
			if err != nil {
				return scheduleErr(err)
			}
			return cli.Print(cmd, d, func(w cli.Writer) {
				w.Printf("%s: every %s, paused %v, %d clearings started, %d skipped (overlap)\n", d.ID, d.Every, d.Paused, d.Actions, d.Skipped)
				for _, t := range d.Next {
					w.Printf("  next %s\n", t.Format(time.RFC3339))
				}
			})
		},
	}
	dtf.add(describe)
	var xtf temporalFlags
	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete the clearing schedule (queued jobs then wait out their batch_wait)",
		Example: `  accord market schedule delete`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := xtf.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if err := workers.DeleteClearingSchedule(cmd.Context(), c); err != nil {
				return scheduleErr(err)
			}
			return cli.Print(cmd, map[string]any{"deleted": true}, func(w cli.Writer) { w.Printf("market clearing schedule deleted\n") })
		},
	}
	xtf.add(del)
	cmd.AddCommand(create, describe, del)
	return cmd
}

// scheduleErr makes a missing schedule an input error.
func scheduleErr(err error) error {
	if errors.Is(err, workers.ErrNoSchedule) {
		return cli.InputErr(err)
	}
	return err
}
