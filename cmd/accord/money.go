package main

import (
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/settlement/money"
)

// parseMoney reads an amount as a person types it, in major units: "5",
// "5.00" or "5.00 USD". The currency is *currency (the command's
// --currency flag), or the code typed after the amount when --currency was
// not given; *currency is set to the one used. Errors are usage errors.
func parseMoney(cmd *cobra.Command, s string, currency *string) (int64, error) {
	if _, code := money.Split(s); code != "" && !cmd.Flags().Changed("currency") {
		*currency = code
	}
	if err := names.Currency(*currency); err != nil {
		return 0, cli.WithCode(cli.ExitUsage, err)
	}
	v, err := money.Parse(s, *currency)
	if err != nil {
		return 0, cli.WithCode(cli.ExitUsage, err)
	}
	return v, nil
}

// negativeArg finds "-5" or "-5.00" in pflag's unknown-shorthand error.
var negativeArg = regexp.MustCompile(`in (-[0-9][0-9.]*)$`)

// acceptAmounts makes a negative AMOUNT argument ("-5", which pflag takes
// for a flag) a clear usage error instead of "unknown shorthand flag".
func acceptAmounts(c *cobra.Command) {
	c.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if m := negativeArg.FindStringSubmatch(err.Error()); m != nil {
			return cli.WithCode(cli.ExitUsage, fmt.Errorf("amount %s: amount must be positive", m[1]))
		}
		return cli.WithCode(cli.ExitUsage, err)
	})
}

// formatMoney renders minor units for people: "5.00 USD".
func formatMoney(minor int64, currency string) string { return money.Format(minor, currency) }
