package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/market/providers"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/money"
)

// ledgerDSN is --ledger-dsn, shared by the ledger and provider bond commands.
var ledgerDSN string

func addLedgerDSNFlag(c *cobra.Command) {
	c.PersistentFlags().StringVar(&ledgerDSN, "ledger-dsn", "",
		"ledger database: postgres://... or an SQLite path (default $"+settlement.DSNEnv+" or ledger.db under Accord's home)")
}

// openLedger opens the ledger. A read-only command creates nothing: an
// SQLite ledger that does not exist yet is an error naming the command
// that creates it.
func openLedger(ctx context.Context, readOnly bool) (*settlement.Ledger, error) {
	home, err := cli.HomePath()
	if !readOnly {
		home, err = cli.Home()
	}
	if err != nil {
		return nil, err
	}
	dsn := settlement.ResolveDSN(ledgerDSN, home)
	if path, ok := settlement.SQLitePath(dsn); ok && readOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no ledger at %s yet (fund a tenant first: accord ledger deposit demo 5.00 --currency USD)", path)
		}
	}
	return settlement.Open(ctx, dsn)
}

// usageErr classifies bad input as a usage error (exit 2).
func usageErr(err error) error {
	for _, e := range []error{settlement.ErrBadAccount, settlement.ErrBadAmount, settlement.ErrBadCurrency, settlement.ErrBadRequest} {
		if errors.Is(err, e) {
			return cli.WithCode(cli.ExitUsage, err)
		}
	}
	return err
}

func newKey() string {
	var b [8]byte
	rand.Read(b[:])
	return "cli-" + time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// withLedger opens the ledger for a command and closes it afterwards.
func withLedger(cmd *cobra.Command, readOnly bool, fn func(ctx context.Context, l *settlement.Ledger) error) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	l, err := openLedger(ctx, readOnly)
	if err != nil {
		return err
	}
	defer l.Close()
	return usageErr(fn(ctx, l))
}

func init() {
	ledger := &cobra.Command{
		Use:   "ledger",
		Short: "Inspect and fund the settlement ledger",
		Example: `  accord ledger deposit demo 500.00
  accord ledger statement tenant:demo
  accord ledger check --ledger-dsn postgres://accord@localhost/accord
  accord ledger sweep --dry-run`,
	}
	addLedgerDSNFlag(ledger)
	ledger.AddCommand(ledgerBalanceCmd(), ledgerStatementCmd(), ledgerCheckCmd(), ledgerDepositCmd(), ledgerCreditCmd(), ledgerSweepCmd())
	root.AddCommand(ledger)
	providerCommand().AddCommand(providerBondCmd())
}

func ledgerBalanceCmd() *cobra.Command {
	var currency string
	balance := &cobra.Command{
		Use:   "balance ACCOUNT",
		Short: "Print an account's balances (ACCOUNT is kind:name, e.g. tenant:acme, escrow:job-1)",
		Example: `  accord ledger balance tenant:demo
  accord ledger balance escrow:job-20261125t200134-fb81bb43 --currency USD`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if currency != "" {
				if err := names.Currency(currency); err != nil {
					return cli.WithCode(cli.ExitUsage, err)
				}
			}
			return withLedger(cmd, true, func(ctx context.Context, l *settlement.Ledger) error {
				bs, err := l.Balances(ctx, args[0])
				if err != nil {
					return err
				}
				if currency != "" {
					kept := []settlement.Balance{}
					for _, b := range bs {
						if b.Currency == currency {
							kept = append(kept, b)
						}
					}
					bs = kept
				}
				v := struct {
					Account  string               `json:"account"`
					Balances []settlement.Balance `json:"balances"`
				}{args[0], bs}
				return cli.Print(cmd, v, func(w cli.Writer) {
					if len(bs) == 0 {
						w.Printf("%s: no balance\n", args[0])
					}
					for _, b := range bs {
						w.Printf("%s\t%s\n", b.Account, formatMoney(b.Balance, b.Currency))
					}
				})
			})
		},
	}
	balance.Flags().StringVar(&currency, "currency", "", "only this currency")
	return balance
}

func ledgerStatementCmd() *cobra.Command {
	statement := &cobra.Command{
		Use:   "statement TENANT|PROVIDER",
		Short: "Per-job cost breakdown of a tenant or provider (tenant:NAME, provider:NAME, or NAME)",
		Example: `  accord ledger statement tenant:demo
  accord ledger statement provider:local --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withLedger(cmd, true, func(ctx context.Context, l *settlement.Ledger) error {
				st, err := statementFor(ctx, l, args[0])
				if err != nil {
					return err
				}
				return cli.Print(cmd, st, func(w cli.Writer) { printStatement(w, st) })
			})
		},
	}
	return statement
}

func ledgerCheckCmd() *cobra.Command {
	check := &cobra.Command{
		Use:     "check",
		Short:   "Verify the ledger's invariants (exit 1 if any is broken)",
		Example: `  accord ledger check`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withLedger(cmd, true, func(ctx context.Context, l *settlement.Ledger) error {
				r, err := l.Check(ctx)
				if err != nil {
					return err
				}
				if err := cli.Print(cmd, r, func(w cli.Writer) {
					status := "ok"
					if !r.OK {
						status = "BROKEN"
					}
					w.Printf("ledger %s (%s): %d accounts, %d transactions, %d jobs\n", status, l.Backend(), r.Accounts, r.Transactions, r.Jobs)
					for _, p := range r.Problems {
						w.Printf("  %s\n", p)
					}
				}); err != nil {
					return err
				}
				if !r.OK {
					return cli.WithCode(cli.ExitError, fmt.Errorf("ledger check: %d problems", len(r.Problems)))
				}
				return nil
			})
		},
	}
	return check
}

func ledgerDepositCmd() *cobra.Command {
	var depCurrency, depKey string
	deposit := &cobra.Command{
		Use:   "deposit TENANT AMOUNT",
		Short: "Credit a tenant with AMOUNT (major units: 5, 5.00 or \"5.00 USD\") from outside the ledger",
		Example: `  accord ledger deposit demo 500.00
  accord ledger deposit demo "500 EUR" --currency EUR --key payment-4711`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			amount, err := parseMoney(cmd, args[1], &depCurrency)
			if err != nil {
				return err
			}
			return withLedger(cmd, false, func(ctx context.Context, l *settlement.Ledger) error {
				key := depKey
				if key == "" {
					key = newKey()
				}
				tx, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: strings.TrimPrefix(args[0], "tenant:"), Currency: depCurrency, Amount: amount, Key: key})
				if err != nil {
					return err
				}
				return printFunding(ctx, cmd, l, tx, settlement.TenantAccount(strings.TrimPrefix(args[0], "tenant:")), depCurrency)
			})
		},
	}
	acceptAmounts(deposit)
	deposit.Flags().StringVar(&depCurrency, "currency", "USD", "currency code")
	deposit.Flags().StringVar(&depKey, "key", "", "idempotency key (e.g. a payment reference); a repeat with the same key posts nothing (default: a new random key)")
	return deposit
}

func ledgerCreditCmd() *cobra.Command {
	var creditCurrency string
	credit := &cobra.Command{
		Use:   "credit TENANT LIMIT",
		Short: "Let a tenant's balance go down to -LIMIT (major units, e.g. 20.00; 0 removes the credit line)",
		Example: `  accord ledger credit demo 1000.00
  accord ledger credit demo 0`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit, err := parseMoney(cmd, args[1], &creditCurrency)
			if err != nil {
				return err
			}
			tenant := strings.TrimPrefix(args[0], "tenant:")
			return withLedger(cmd, false, func(ctx context.Context, l *settlement.Ledger) error {
				if err := l.SetFloor(ctx, tenant, creditCurrency, -limit); err != nil {
					return err
				}
				v := map[string]any{"account": settlement.TenantAccount(tenant), "currency": creditCurrency, "floor_minor": -limit}
				return cli.Print(cmd, v, func(w cli.Writer) {
					w.Printf("%s may go down to %s\n", settlement.TenantAccount(tenant), formatMoney(-limit, creditCurrency))
				})
			})
		},
	}
	credit.Flags().StringVar(&creditCurrency, "currency", "USD", "currency code")
	acceptAmounts(credit)
	return credit
}

func providerBondCmd() *cobra.Command {
	var bondCurrency, bondKey string
	var bondCreate bool
	bond := &cobra.Command{
		Use:     "bond PROVIDER AMOUNT",
		Short:   "Deposit AMOUNT (major units, e.g. 100.00) into a provider's bond (slashed on SLA breach)",
		Example: `  accord provider bond local 1000.00 --currency USD`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			amount, err := parseMoney(cmd, args[1], &bondCurrency)
			if err != nil {
				return err
			}
			provider := strings.TrimPrefix(args[0], "provider:")
			return withLedger(cmd, false, func(ctx context.Context, l *settlement.Ledger) error {
				if err := knownProvider(ctx, l, provider); err != nil && !bondCreate {
					return cli.WithCode(cli.ExitUsage, err)
				}
				key := bondKey
				if key == "" {
					key = newKey()
				}
				tx, err := l.DepositBond(ctx, settlement.BondRequest{Provider: provider, Currency: bondCurrency, Amount: amount, Key: key})
				if err != nil {
					return err
				}
				return printFunding(ctx, cmd, l, tx, settlement.BondAccount(provider), bondCurrency)
			})
		},
	}
	addLedgerDSNFlag(bond)
	bond.Flags().StringVar(&bondCurrency, "currency", "USD", "currency code")
	bond.Flags().BoolVar(&bondCreate, "create", false, "bond a provider Accord does not know yet (creates its accounts)")
	acceptAmounts(bond)
	bond.Flags().StringVar(&bondKey, "key", "", "idempotency key; a repeat with the same key posts nothing (default: a new random key)")
	return bond
}

// providerCommand returns the "accord provider" group, creating it if no
// other file has.
func providerCommand() *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == "provider" {
			return c
		}
	}
	c := &cobra.Command{Use: "provider", Short: "Manage compute providers", Example: `  accord provider bond local 100000 --currency USD`}
	root.AddCommand(c)
	return c
}

// statementFor accepts tenant:NAME, provider:NAME, or a bare NAME (the
// tenant's statement if it has jobs or balances, else the provider's).
func statementFor(ctx context.Context, l *settlement.Ledger, who string) (*settlement.Statement, error) {
	if strings.Contains(who, ":") {
		return l.Statement(ctx, who)
	}
	st, err := l.Statement(ctx, settlement.TenantAccount(who))
	if err != nil || len(st.Jobs) > 0 || len(st.Balances) > 0 {
		return st, err
	}
	return l.Statement(ctx, settlement.ProviderAccount(who))
}

func printFunding(ctx context.Context, cmd *cobra.Command, l *settlement.Ledger, tx *settlement.Transaction, account, currency string) error {
	bal, err := l.Balance(ctx, account, currency)
	if err != nil {
		return err
	}
	v := struct {
		Account     string                  `json:"account"`
		Currency    string                  `json:"currency"`
		Balance     int64                   `json:"balance_minor"`
		Transaction *settlement.Transaction `json:"transaction"`
	}{account, currency, bal, tx}
	return cli.Print(cmd, v, func(w cli.Writer) {
		verb := "posted"
		if tx.Replayed {
			verb = "already posted"
		}
		w.Printf("%s %s (key %s); %s balance %s\n", tx.Kind, verb, tx.Key, account, formatMoney(bal, currency))
	})
}

func printStatement(w cli.Writer, st *settlement.Statement) {
	w.Printf("statement of %s\n", st.Account)
	for _, b := range st.Balances {
		w.Printf("  balance %s: %s\n", b.Account, formatMoney(b.Balance, b.Currency))
	}
	if len(st.Jobs) == 0 {
		w.Printf("  no jobs\n")
		return
	}
	w.Printf("  %-24s %-9s %9s %9s %9s %9s %9s %9s %9s\n", "JOB", "STATE", "HELD", "PROVIDER", "FEE", "ROYALTY", "REFUND", "SLASHED", "COST")
	for _, j := range st.Jobs {
		n := func(v int64) string { return money.FormatNumber(v, j.Currency) }
		w.Printf("  %-24s %-9s %9s %9s %9s %9s %9s %9s %9s %s\n", j.Job, j.State, n(j.Held), n(j.ProviderPay),
			n(j.PlatformFee), n(j.Royalties), n(j.Refunded), n(j.Slashed), n(j.Cost), j.Currency)
	}
}

// knownProvider accepts a provider that has ledger accounts, is an attached
// pool, or is the local pool.
func knownProvider(ctx context.Context, l *settlement.Ledger, name string) error {
	if name == providers.LocalPoolName {
		return nil
	}
	for _, acct := range []string{settlement.ProviderAccount(name), settlement.BondAccount(name)} {
		if bs, err := l.Balances(ctx, acct); err == nil && len(bs) > 0 {
			return nil
		}
	}
	if st, err := poolStore(); err == nil {
		if _, err := st.Get(name); err == nil {
			return nil
		}
	}
	return fmt.Errorf("unknown provider %q: not an attached pool (accord pool list) and no ledger account; pass --create to bond a new one", name)
}
