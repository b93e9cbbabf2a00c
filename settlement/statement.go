package settlement

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

// Balance is one account's balance in one currency.
type Balance struct {
	Account  string `json:"account"`
	Currency string `json:"currency"`
	Balance  int64  `json:"balance_minor"`
	// Floor is the lowest balance allowed; absent for external:world.
	Floor *int64 `json:"floor_minor,omitempty"`
}

// Balances returns the balances of an account ("tenant:acme") in every
// currency it has been used in; an unused account has none.
func (l *Ledger) Balances(ctx context.Context, account string) ([]Balance, error) {
	if _, _, err := ParseAccount(account); err != nil {
		return nil, err
	}
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT currency, balance, floor FROM ledger_accounts WHERE id = ? ORDER BY currency`), account)
	if err != nil {
		return nil, fmt.Errorf("settlement: balances of %s: %w", account, err)
	}
	defer rows.Close()
	out := []Balance{}
	for rows.Next() {
		b := Balance{Account: account}
		var floor sql.NullInt64
		if err := rows.Scan(&b.Currency, &b.Balance, &floor); err != nil {
			return nil, fmt.Errorf("settlement: balances of %s: %w", account, err)
		}
		if floor.Valid {
			f := floor.Int64
			b.Floor = &f
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("settlement: balances of %s: %w", account, err)
	}
	return out, nil
}

// Balance returns an account's balance in one currency (zero if unused).
func (l *Ledger) Balance(ctx context.Context, account, currency string) (int64, error) {
	if _, _, err := ParseAccount(account); err != nil {
		return 0, err
	}
	if err := checkCurrency(currency); err != nil {
		return 0, err
	}
	return l.balanceTx(ctx, l.db, account, currency, false)
}

// JobCost is one job's cost breakdown in a statement.
type JobCost struct {
	Job      string `json:"job"`
	Tenant   string `json:"tenant"`
	Provider string `json:"provider"`
	Currency string `json:"currency"`
	State    string `json:"state"`
	// Held is everything moved into escrow (all holds of the job).
	Held        int64 `json:"held_minor"`
	ProviderPay int64 `json:"provider_pay_minor"`
	PlatformFee int64 `json:"platform_fee_minor"`
	Royalties   int64 `json:"royalties_minor"`
	// ModelFees is what the job paid model owners for the models it used,
	// usage prices and their royalties up the lineage, and ModelFeeLines
	// the split: one line per owner account and memo ("model-fee
	// acme/clf@1.2.0", "royalty acme/base@2.0.1").
	ModelFees     int64     `json:"model_fees_minor,omitempty"`
	ModelFeeLines []FeeLine `json:"model_fee_lines,omitempty"`
	// Refunded is escrow returned to the tenant (unused, SLA refund, release).
	Refunded int64 `json:"refunded_minor"`
	// Slashed is the provider's bond paid to the tenant for a breach.
	Slashed int64 `json:"slashed_minor"`
	// Cost is the tenant's net outflow: Held - Refunded - Slashed.
	Cost int64 `json:"cost_minor"`
}

// FeeLine is what one model owner account was paid by a job under one
// memo.
type FeeLine struct {
	Account string `json:"account"`
	Memo    string `json:"memo"`
	Amount  int64  `json:"amount_minor"`
}

// Statement is the per-job cost breakdown of a tenant or provider.
type Statement struct {
	Account  string    `json:"account"`
	Balances []Balance `json:"balances"`
	Jobs     []JobCost `json:"jobs"`
	// Totals per currency over the jobs listed.
	Totals map[string]JobCost `json:"totals"`
}

// Statement lists, for "tenant:NAME" or "provider:NAME", the account's
// balances and every job it took part in with that job's breakdown.
func (l *Ledger) Statement(ctx context.Context, account string) (*Statement, error) {
	kind, name, err := ParseAccount(account)
	if err != nil {
		return nil, err
	}
	if kind != KindTenant && kind != KindProvider {
		return nil, fmt.Errorf("%w: statements are for tenant: or provider: accounts, not %s", ErrBadAccount, account)
	}
	st := &Statement{Account: account, Jobs: []JobCost{}, Totals: map[string]JobCost{}}
	if st.Balances, err = l.Balances(ctx, account); err != nil {
		return nil, err
	}
	if kind == KindProvider {
		bonds, err := l.Balances(ctx, BondAccount(name))
		if err != nil {
			return nil, err
		}
		st.Balances = append(st.Balances, bonds...)
	}
	where, args := `j.tenant = ?`, []any{name}
	if kind == KindProvider {
		// A split job's other parts are paid (or slashed) without being
		// the job's provider of record: they are found by their postings.
		where = `j.provider = ? OR j.job IN (SELECT t2.job FROM ledger_postings p2
			JOIN ledger_transactions t2 ON t2.id = p2.tx_id WHERE p2.account IN (?, ?))`
		args = []any{name, ProviderAccount(name), BondAccount(name)}
	}
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT j.job, j.tenant, j.provider, j.currency, j.state, p.account, p.amount, p.memo
		FROM ledger_jobs j
		JOIN ledger_transactions t ON t.job = j.job
		JOIN ledger_postings p ON p.tx_id = t.id
		WHERE `+where+` ORDER BY j.job, t.id, p.seq`), args...)
	if err != nil {
		return nil, fmt.Errorf("settlement: statement %s: %w", account, err)
	}
	defer rows.Close()
	byJob := map[string]*JobCost{}
	lines := map[[3]string]int{} // (job, account, memo) → index in ModelFeeLines
	var order []string
	for rows.Next() {
		var j JobCost
		var acct, memo string
		var amt int64
		if err := rows.Scan(&j.Job, &j.Tenant, &j.Provider, &j.Currency, &j.State, &acct, &amt, &memo); err != nil {
			return nil, fmt.Errorf("settlement: statement %s: %w", account, err)
		}
		c := byJob[j.Job]
		if c == nil {
			c = &j
			byJob[j.Job] = c
			order = append(order, j.Job)
		}
		akind, _, _ := strings.Cut(acct, ":")
		switch {
		case memo == "hold" && akind == KindEscrow:
			c.Held += amt
		case memo == "pay" && akind == KindProvider && (kind == KindTenant || acct == account):
			// A provider's statement shows its own pay, not the
			// other parts' of a split job.
			c.ProviderPay += amt
		case memo == "fee" && akind == KindPlatform:
			c.PlatformFee += amt
		case memo == "royalty" && akind == KindOwner:
			c.Royalties += amt
		case akind == KindOwner && isModelFeeMemo(memo):
			c.ModelFees += amt
			k := [3]string{j.Job, acct, memo}
			if i, ok := lines[k]; ok {
				c.ModelFeeLines[i].Amount += amt
			} else {
				lines[k] = len(c.ModelFeeLines)
				c.ModelFeeLines = append(c.ModelFeeLines, FeeLine{Account: acct, Memo: memo, Amount: amt})
			}
		case memo == "refund" && akind == KindTenant:
			c.Refunded += amt
		case memo == "slash" && akind == KindTenant && kind == KindTenant:
			c.Slashed += amt
		case memo == "slash" && kind == KindProvider && acct == BondAccount(name):
			c.Slashed -= amt // taken from this provider's bond
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("settlement: statement %s: %w", account, err)
	}
	sort.Strings(order)
	for _, job := range order {
		c := byJob[job]
		c.Cost = c.Held - c.Refunded - c.Slashed
		st.Jobs = append(st.Jobs, *c)
		t := st.Totals[c.Currency]
		t.Currency = c.Currency
		t.Held += c.Held
		t.ProviderPay += c.ProviderPay
		t.PlatformFee += c.PlatformFee
		t.Royalties += c.Royalties
		t.ModelFees += c.ModelFees
		t.Refunded += c.Refunded
		t.Slashed += c.Slashed
		t.Cost += c.Cost
		st.Totals[c.Currency] = t
	}
	return st, nil
}

// isModelFeeMemo reports the memos of model-fee postings ("model-fee REF",
// "royalty REF"; a bare "royalty" is a share of the charge).
func isModelFeeMemo(memo string) bool {
	return strings.HasPrefix(memo, MemoModelFee+" ") || strings.HasPrefix(memo, MemoRoyalty+" ")
}
