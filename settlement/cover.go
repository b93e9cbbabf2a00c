package settlement

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/accordmesh/accord/settlement/money"
)

// Cover is what [Ledger.CanCover] found: whether a tenant could fund a hold
// of Amount now, and why not.
type Cover struct {
	Tenant   string `json:"tenant"`
	Currency string `json:"currency"`
	// Amount is the escrow asked about, in minor units.
	Amount int64 `json:"amount_minor"`
	// Balance is the tenant's balance, Floor the lowest it may go (0, or
	// minus a credit line), both in minor units.
	Balance int64 `json:"balance_minor"`
	Floor   int64 `json:"floor_minor"`
	// Shortfall is how much a deposit must add before the hold can succeed;
	// 0 when OK.
	Shortfall int64 `json:"shortfall_minor"`
	OK        bool  `json:"ok"`
}

// CanCover reports, without posting or locking anything, whether tenant's
// account could fund a hold of amount minor units of currency now: whether
// balance - amount would stay at or above the account's floor. A tenant
// without an account has balance and floor 0. Admission calls it to fail
// early, before negotiating; Hold still enforces the floor atomically.
func (l *Ledger) CanCover(ctx context.Context, tenant, currency string, amount int64) (Cover, error) {
	c := Cover{Tenant: tenant, Currency: currency, Amount: amount}
	if err := checkTenant(tenant); err != nil {
		return c, err
	}
	if err := checkCurrency(currency); err != nil {
		return c, err
	}
	if err := checkAmount("amount", amount); err != nil {
		return c, err
	}
	var floor sql.NullInt64
	err := l.db.QueryRowContext(ctx, l.q(`SELECT balance, floor FROM ledger_accounts WHERE id = ? AND currency = ?`),
		TenantAccount(tenant), currency).Scan(&c.Balance, &floor)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("settlement: can cover %s: %w", TenantAccount(tenant), err)
	}
	c.Floor = floor.Int64
	c.Shortfall = max(0, amount-(c.Balance-c.Floor))
	c.OK = c.Shortfall == 0
	return c, nil
}

// Err returns nil when c is OK, else an error wrapping
// [ErrInsufficientFunds] that names the balance and the shortfall.
func (c Cover) Err() error {
	if c.OK {
		return nil
	}
	return fmt.Errorf("%w: tenant %s has %s, the escrow needs %s (short by %s)", ErrInsufficientFunds, c.Tenant,
		money.Format(c.Balance-c.Floor, c.Currency), money.Format(c.Amount, c.Currency), money.Format(c.Shortfall, c.Currency))
}
