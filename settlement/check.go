package settlement

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
)

// Report is the result of [Ledger.Check].
type Report struct {
	OK           bool             `json:"ok"`
	Accounts     int              `json:"accounts"`
	Transactions int              `json:"transactions"`
	Jobs         int              `json:"jobs"`
	Totals       map[string]int64 `json:"totals"` // sum of all balances per currency; zero when OK
	Problems     []string         `json:"problems,omitempty"`
}

// maxProblems bounds the report on a badly broken ledger.
const maxProblems = 100

// Check verifies the ledger's invariants in one read-only snapshot: every
// transaction balances per currency; each account's balance equals the sum
// of its postings; all balances sum to zero per currency; no account is
// below its floor; the escrow of every settled or released job is zero and
// that of every held job equals the amount held. Violations are listed in
// Report.Problems; the error is only for failing to read.
func (l *Ledger) Check(ctx context.Context) (*Report, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if l.dialect == dialectPostgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := l.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("settlement: check: %w", err)
	}
	defer tx.Rollback()
	r := &Report{Totals: map[string]int64{}}
	problem := func(format string, a ...any) {
		if len(r.Problems) < maxProblems {
			r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
		}
	}
	fail := func(err error) (*Report, error) { return nil, fmt.Errorf("settlement: check: %w", err) }

	// Unbalanced transactions.
	rows, err := tx.QueryContext(ctx, `SELECT tx_id, currency, CAST(SUM(amount) AS BIGINT) FROM ledger_postings
		GROUP BY tx_id, currency HAVING SUM(amount) <> 0`)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var id, sum int64
		var cur string
		if err := rows.Scan(&id, &cur, &sum); err != nil {
			rows.Close()
			return fail(err)
		}
		problem("transaction %d: postings in %s sum to %d", id, cur, sum)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}

	// Balances against postings, floors, totals.
	rows, err = tx.QueryContext(ctx, `SELECT a.id, a.currency, a.balance, a.floor, COALESCE(p.total, 0)
		FROM ledger_accounts a LEFT JOIN
		(SELECT account, currency, CAST(SUM(amount) AS BIGINT) AS total FROM ledger_postings GROUP BY account, currency) p
		ON p.account = a.id AND p.currency = a.currency`)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var id, cur string
		var bal, total int64
		var floor sql.NullInt64
		if err := rows.Scan(&id, &cur, &bal, &floor, &total); err != nil {
			rows.Close()
			return fail(err)
		}
		r.Accounts++
		r.Totals[cur] += bal
		if bal != total {
			problem("account %s %s: balance %d but postings sum to %d", id, cur, bal, total)
		}
		if floor.Valid && bal < floor.Int64 {
			problem("account %s %s: balance %d below floor %d", id, cur, bal, floor.Int64)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	var orphans int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT DISTINCT account, currency FROM ledger_postings) p
		WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = p.account AND a.currency = p.currency)`).Scan(&orphans); err != nil {
		return fail(err)
	}
	if orphans > 0 {
		problem("%d posted accounts missing from the accounts table", orphans)
	}
	curs := make([]string, 0, len(r.Totals))
	for c := range r.Totals {
		curs = append(curs, c)
	}
	sort.Strings(curs)
	for _, c := range curs {
		if r.Totals[c] != 0 {
			problem("balances in %s sum to %d, not zero", c, r.Totals[c])
		}
	}

	// Escrow of each job.
	rows, err = tx.QueryContext(ctx, `SELECT j.job, j.state, j.held, COALESCE(a.balance, 0)
		FROM ledger_jobs j LEFT JOIN ledger_accounts a
		ON a.id = 'escrow:' || j.job AND a.currency = j.currency`)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var job, state string
		var held, bal int64
		if err := rows.Scan(&job, &state, &held, &bal); err != nil {
			rows.Close()
			return fail(err)
		}
		r.Jobs++
		switch state {
		case JobHeld:
			if bal != held {
				problem("job %s: held %d but escrow is %d", job, held, bal)
			}
		case JobSettled, JobReleased:
			if bal != 0 {
				problem("job %s is %s but its escrow is %d", job, state, bal)
			}
		default:
			problem("job %s: unknown state %q", job, state)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ledger_transactions`).Scan(&r.Transactions); err != nil {
		return fail(err)
	}
	r.OK = len(r.Problems) == 0
	return r, nil
}
