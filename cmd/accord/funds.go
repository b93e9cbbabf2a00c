package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/money"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// prepareFunds readies the ledger for `accord run`: it tops the spec's
// tenant up to fund (major units of the budget's currency, "" for none) and
// fails, naming the balance, the escrow needed and the command that funds
// it, when the tenant cannot cover the spec's budget.
func prepareFunds(ctx context.Context, dsn, specPath, jobID, fund string) error {
	s, err := specs.Load(specPath)
	if err != nil {
		return cli.WithCode(cli.ExitInvalidSpec, err)
	}
	cur := s.Budget.Currency
	var amount int64
	if fund != "" {
		if amount, err = money.Parse(fund, cur); err != nil {
			return cli.WithCode(cli.ExitUsage, fmt.Errorf("--fund: %w", err))
		}
	}
	l, err := settlement.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer l.Close()
	if amount > 0 {
		if err := fundTenant(ctx, l, s.Tenant, cur, jobID, amount); err != nil {
			return err
		}
	}
	c, err := l.CanCover(ctx, s.Tenant, cur, s.Budget.MaxPrice)
	if err != nil {
		return err
	}
	if !c.OK {
		return cli.WithCode(cli.ExitFunds, insufficientFunds(c))
	}
	return nil
}

// insufficientFunds says what the tenant has, what the escrow needs and
// the command that funds the difference.
func insufficientFunds(c settlement.Cover) error {
	return fmt.Errorf("%w: tenant %s has %s, the escrow needs up to %s (the spec's budget); fund it with: %s",
		settlement.ErrInsufficientFunds, c.Tenant, money.Format(c.Balance-c.Floor, c.Currency),
		money.Format(c.Amount, c.Currency), depositCommand(c.Tenant, c.Shortfall, c.Currency))
}

// depositCommand is the command line that deposits amount for tenant.
func depositCommand(tenant string, amount int64, currency string) string {
	return fmt.Sprintf("accord ledger deposit %s %s --currency %s", tenant, money.FormatNumber(amount, currency), currency)
}

// fundTenant tops tenant up to amount in currency when its balance is
// lower; the deposit is idempotent per job.
func fundTenant(ctx context.Context, l *settlement.Ledger, tenant, currency, jobID string, amount int64) error {
	bal, err := l.Balance(ctx, settlement.TenantAccount(tenant), currency)
	if err != nil {
		return fmt.Errorf("fund tenant %s: %w", tenant, err)
	}
	if bal >= amount {
		return nil
	}
	if _, err := l.Deposit(ctx, settlement.DepositRequest{
		Tenant: tenant, Currency: currency, Amount: amount - bal, Key: "accord-run/" + jobID,
	}); err != nil {
		return fmt.Errorf("fund tenant %s: %w", tenant, err)
	}
	return nil
}

// fundingFailure reports whether a job failed for want of funds: class
// insufficient_funds, or (from workflows that predate it) the ledger's
// error in its message.
func fundingFailure(res workflows.JobResult) bool {
	return res.Class == workflows.ClassFunds ||
		res.Status == workflows.StatusFailed && strings.Contains(res.Error, settlement.ErrInsufficientFunds.Error())
}

// fundingHint is the line printResult adds under a job that failed for want
// of funds.
func fundingHint(res workflows.JobResult) string {
	cur := res.Currency
	if cur == "" {
		cur = "USD"
	}
	return fmt.Sprintf("fund the tenant, then run again: accord ledger deposit %s AMOUNT --currency %s (see accord ledger balance tenant:%s)",
		res.Tenant, cur, res.Tenant)
}
