package settlement

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	sqlite "modernc.org/sqlite"
)

// Sentinel errors; every error the package returns for these conditions
// wraps one of them (check with errors.Is).
var (
	ErrInsufficientFunds = errors.New("settlement: insufficient funds")
	ErrBadAccount        = errors.New("settlement: bad account")
	ErrBadCurrency       = errors.New("settlement: bad currency")
	ErrBadAmount         = errors.New("settlement: bad amount")
	ErrBadRequest        = errors.New("settlement: bad request")
	ErrCurrencyMismatch  = errors.New("settlement: currency mismatch")
	ErrKeyReused         = errors.New("settlement: idempotency key reused with a different request")
	ErrOverBudget        = errors.New("settlement: price exceeds budget cap")
	ErrUnknownJob        = errors.New("settlement: unknown job")
	ErrJobState          = errors.New("settlement: job not in the right state")
	ErrNotFound          = errors.New("settlement: not found")
)

// Job states.
const (
	JobHeld     = "held"     // escrow holds the tenant's money
	JobSettled  = "settled"  // paid out; escrow zero
	JobReleased = "released" // refunded; escrow zero
)

// Transaction kinds.
const (
	TxDeposit = "deposit"
	TxBond    = "bond"
	TxHold    = "hold"
	TxSettle  = "settle"
	TxRelease = "release"
)

// Posting is one leg of a transaction: a signed amount added to an account's
// balance. The postings of a transaction sum to zero per currency.
type Posting struct {
	Account  string `json:"account"`
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
	// Memo says why the money moved: hold, pay, fee, royalty, refund,
	// slash, deposit, bond; "model-fee REF" and "royalty REF" for model
	// fees (see [ModelFee]).
	Memo string `json:"memo"`
}

// Transaction is a committed, balanced set of postings.
type Transaction struct {
	ID       int64     `json:"id"`
	Key      string    `json:"key"`
	Kind     string    `json:"kind"`
	Job      string    `json:"job,omitempty"`
	Time     time.Time `json:"time"`
	Postings []Posting `json:"postings"`
	// Replayed is true when this call posted nothing because the key had
	// already been used by an identical request; the transaction is the
	// original one.
	Replayed bool `json:"replayed,omitempty"`

	detail json.RawMessage
}

// Ledger is a handle on a ledger database. It is safe for concurrent use.
type Ledger struct {
	db      *sql.DB
	dialect dialect
	now     func() time.Time
}

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// maxRetries bounds how often a write is retried after the database asked
// for it (SQLite busy, PostgreSQL serialisation failure or deadlock).
const maxRetries = 20

// DSNEnv names the environment variable that selects the ledger when no
// DSN is given explicitly.
const DSNEnv = "ACCORD_LEDGER_DSN"

// DefaultDSN is the embedded ledger under Accord's home directory.
func DefaultDSN(home string) string { return filepath.Join(home, "ledger.db") }

// ResolveDSN picks the ledger every Accord process should use: dsn if set,
// else $ACCORD_LEDGER_DSN, else the SQLite file under home.
func ResolveDSN(dsn, home string) string {
	if dsn != "" {
		return dsn
	}
	if env := os.Getenv(DSNEnv); env != "" {
		return env
	}
	return DefaultDSN(home)
}

// SQLitePath returns the file of an SQLite DSN ("sqlite:PATH", "file:PATH"
// without its query, or a plain path, whole), and false for a PostgreSQL
// DSN.
func SQLitePath(dsn string) (string, bool) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return "", false
	}
	for _, scheme := range []string{"sqlite:", "file:"} {
		if rest, ok := strings.CutPrefix(dsn, scheme); ok {
			// A URI: its query, if any, is not part of the path.
			path, _, _ := strings.Cut(rest, "?")
			return path, true
		}
	}
	return dsn, true // a plain path: '?' and '#' are file name characters
}

// Open opens (and creates, if needed) the ledger at dsn:
//
//   - "postgres://..." or "postgresql://...": PostgreSQL via pgx. Tables are
//     created in the connection's current schema (set search_path in the
//     DSN to use another one).
//   - "sqlite:PATH", "file:PATH" or a plain file path: an SQLite file,
//     created with its directory if missing.
func Open(ctx context.Context, dsn string) (*Ledger, error) {
	if dsn == "" {
		return nil, fmt.Errorf("settlement: open: empty DSN")
	}
	l := &Ledger{now: time.Now}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		l.dialect = dialectPostgres
		l.db, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("settlement: open postgres: %w", err)
		}
		l.db.SetMaxOpenConns(16)
		l.db.SetMaxIdleConns(16)
	default:
		l.dialect = dialectSQLite
		path, _ := SQLitePath(dsn)
		if path == "" {
			return nil, fmt.Errorf("settlement: open: empty SQLite path in %q", dsn)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("settlement: open sqlite: %w", err)
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "foreign_keys(ON)")
		q.Set("_txlock", "immediate")
		l.db, err = sql.Open("sqlite", "file:"+uriPath(path)+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("settlement: open sqlite: %w", err)
		}
		l.db.SetMaxOpenConns(8)
		l.db.SetMaxIdleConns(8)
	}
	if err := l.migrate(ctx); err != nil {
		l.db.Close()
		return nil, err
	}
	return l, nil
}

// uriPath escapes a file path for a SQLite URI filename: '%', '?' and '#'
// would otherwise end the path or be decoded.
func uriPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// Close closes the database.
func (l *Ledger) Close() error { return l.db.Close() }

// Backend names the storage: "sqlite" or "postgres".
func (l *Ledger) Backend() string {
	if l.dialect == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

func (l *Ledger) migrate(ctx context.Context) error {
	id := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if l.dialect == dialectPostgres {
		id = "BIGSERIAL PRIMARY KEY"
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ledger_accounts (
			id TEXT NOT NULL,
			currency TEXT NOT NULL,
			kind TEXT NOT NULL,
			floor BIGINT,
			balance BIGINT NOT NULL DEFAULT 0,
			created BIGINT NOT NULL,
			PRIMARY KEY (id, currency))`,
		`CREATE TABLE IF NOT EXISTS ledger_transactions (
			id ` + id + `,
			idem_key TEXT NOT NULL UNIQUE,
			kind TEXT NOT NULL,
			job TEXT NOT NULL DEFAULT '',
			fingerprint TEXT NOT NULL,
			detail TEXT NOT NULL DEFAULT '',
			created BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ledger_transactions_job ON ledger_transactions (job)`,
		`CREATE TABLE IF NOT EXISTS ledger_postings (
			tx_id BIGINT NOT NULL REFERENCES ledger_transactions (id),
			seq INTEGER NOT NULL,
			account TEXT NOT NULL,
			currency TEXT NOT NULL,
			amount BIGINT NOT NULL,
			memo TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (tx_id, seq))`,
		`CREATE INDEX IF NOT EXISTS ledger_postings_account ON ledger_postings (account, currency)`,
		`CREATE TABLE IF NOT EXISTS ledger_jobs (
			job TEXT PRIMARY KEY,
			tenant TEXT NOT NULL,
			provider TEXT NOT NULL,
			currency TEXT NOT NULL,
			state TEXT NOT NULL,
			attempt INTEGER NOT NULL,
			held BIGINT NOT NULL,
			updated BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ledger_jobs_tenant ON ledger_jobs (tenant)`,
		`CREATE INDEX IF NOT EXISTS ledger_jobs_provider ON ledger_jobs (provider)`,
		`CREATE INDEX IF NOT EXISTS ledger_jobs_state ON ledger_jobs (state, updated)`,
		`CREATE TABLE IF NOT EXISTS ledger_sweeps (
			job TEXT PRIMARY KEY,
			kind TEXT NOT NULL,
			reason TEXT NOT NULL,
			request TEXT NOT NULL,
			created BIGINT NOT NULL,
			attested TEXT NOT NULL DEFAULT '')`,
	}
	return l.retry(ctx, func() error {
		tx, err := l.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if l.dialect == dialectPostgres {
			// Concurrent first opens would race on CREATE TABLE IF NOT EXISTS.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7240917)`); err != nil {
				return fmt.Errorf("settlement: migrate: %w", err)
			}
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("settlement: migrate: %w", err)
			}
		}
		return tx.Commit()
	})
}

// q rewrites ? placeholders to $n for PostgreSQL. No query in this package
// has a question mark inside a literal.
func (l *Ledger) q(query string) string {
	if l.dialect != dialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// forUpdate is the row-lock suffix for reads that precede a write. SQLite
// needs none: BEGIN IMMEDIATE already serialises writers.
func (l *Ledger) forUpdate() string {
	if l.dialect == dialectPostgres {
		return " FOR UPDATE"
	}
	return ""
}

// retryable reports whether the database asked the caller to try again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 23505: two transactions created the same job row at once; the
		// retry sees the winner's row and answers accordingly.
		return pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == 5 || c == 6 // SQLITE_BUSY, SQLITE_LOCKED
	}
	return false
}

func (l *Ledger) retry(ctx context.Context, fn func() error) error {
	var err error
	for i := 0; i < maxRetries; i++ {
		err = fn()
		if err == nil || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(i+1) * 5 * time.Millisecond):
		}
	}
	return err
}

// errNoop makes apply roll back and post nothing (a release with nothing to
// release).
var errNoop = errors.New("settlement: nothing to do")

// body computes a transaction's postings inside the database transaction
// that claimed its key. detail is stored with it and returned on replay.
type body func(ctx context.Context, tx *sql.Tx) (postings []Posting, detail any, err error)

// apply runs one idempotent write: claim key, compute postings, apply them
// to balances with floor checks, commit. A replayed key returns the original
// transaction.
func (l *Ledger) apply(ctx context.Context, key, kind, job string, req any, fn body) (*Transaction, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: empty idempotency key", ErrBadRequest)
	}
	if len(key) > 500 {
		return nil, fmt.Errorf("%w: idempotency key longer than 500 bytes", ErrBadRequest)
	}
	fp, err := fingerprint(kind, req)
	if err != nil {
		return nil, err
	}
	var out *Transaction
	err = l.retry(ctx, func() error {
		t, err := l.applyOnce(ctx, key, kind, job, fp, fn)
		out = t
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (l *Ledger) applyOnce(ctx context.Context, key, kind, job, fp string, fn body) (*Transaction, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("settlement: begin: %w", err)
	}
	defer tx.Rollback()
	now := l.now().UTC()
	var id int64
	err = tx.QueryRowContext(ctx, l.q(`INSERT INTO ledger_transactions (idem_key, kind, job, fingerprint, created)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (idem_key) DO NOTHING RETURNING id`),
		key, kind, job, fp, now.UnixNano()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// Someone else holds the key: read their committed transaction.
		tx.Rollback()
		orig, err := l.transactionByKey(ctx, l.db, key)
		if err != nil {
			return nil, fmt.Errorf("settlement: replay %s: %w", key, err)
		}
		var origFP string
		if err := l.db.QueryRowContext(ctx, l.q(`SELECT fingerprint FROM ledger_transactions WHERE idem_key = ?`), key).Scan(&origFP); err != nil {
			return nil, fmt.Errorf("settlement: replay %s: %w", key, err)
		}
		if origFP != fp {
			return nil, fmt.Errorf("%w: %s (first used for a %s)", ErrKeyReused, key, orig.Kind)
		}
		orig.Replayed = true
		return orig, nil
	}
	if err != nil {
		return nil, fmt.Errorf("settlement: claim key %s: %w", key, err)
	}
	postings, detail, err := fn(ctx, tx)
	if err != nil {
		return nil, err
	}
	postings = nonZero(postings)
	if err := checkBalanced(postings); err != nil {
		return nil, err
	}
	var raw []byte
	if detail != nil {
		raw, err = json.Marshal(detail)
		if err != nil {
			return nil, fmt.Errorf("settlement: encode detail: %w", err)
		}
		if _, err := tx.ExecContext(ctx, l.q(`UPDATE ledger_transactions SET detail = ? WHERE id = ?`), string(raw), id); err != nil {
			return nil, fmt.Errorf("settlement: store detail: %w", err)
		}
	}
	if err := l.post(ctx, tx, id, postings); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("settlement: commit %s: %w", key, err)
	}
	return &Transaction{ID: id, Key: key, Kind: kind, Job: job, Time: time.Unix(0, now.UnixNano()).UTC(), Postings: postings, detail: raw}, nil
}

func nonZero(ps []Posting) []Posting {
	out := ps[:0:0]
	for _, p := range ps {
		if p.Amount != 0 {
			out = append(out, p)
		}
	}
	return out
}

func fingerprint(kind string, req any) (string, error) {
	b, err := json.Marshal(struct {
		Kind string `json:"kind"`
		Req  any    `json:"req"`
	}{kind, req})
	if err != nil {
		return "", fmt.Errorf("settlement: fingerprint: %w", err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

func checkBalanced(ps []Posting) error {
	sum := map[string]int64{}
	for _, p := range ps {
		if p.Amount < -MaxAmount || p.Amount > MaxAmount {
			return fmt.Errorf("%w: posting of %d to %s", ErrBadAmount, p.Amount, p.Account)
		}
		sum[p.Currency] += p.Amount
	}
	for c, s := range sum {
		if s != 0 {
			// A bug in this package, never the caller's input.
			return fmt.Errorf("settlement: internal error: postings in %s sum to %d", c, s)
		}
	}
	return nil
}

// post writes postings and applies them to balances, creating accounts on
// first use. Balances are updated last (they are the rows every job
// contends for) and in a fixed order (account, currency), so that
// concurrent PostgreSQL transactions hold them briefly and never deadlock.
func (l *Ledger) post(ctx context.Context, tx *sql.Tx, txID int64, ps []Posting) error {
	if len(ps) == 0 {
		return nil
	}
	type acct struct{ id, cur string }
	delta := map[acct]int64{}
	for start := 0; start < len(ps); start += postingsPerInsert {
		if err := l.insertPostings(ctx, tx, txID, start, ps[start:min(start+postingsPerInsert, len(ps))]); err != nil {
			return err
		}
	}
	for _, p := range ps {
		delta[acct{p.Account, p.Currency}] += p.Amount
	}
	keys := make([]acct, 0, len(delta))
	for k := range delta {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].id != keys[j].id {
			return keys[i].id < keys[j].id
		}
		return keys[i].cur < keys[j].cur
	})
	now := l.now().UnixNano()
	for _, k := range keys {
		d := delta[k]
		if d == 0 {
			continue
		}
		kind, _, err := ParseAccount(k.id)
		if err != nil {
			return err
		}
		var bal int64
		var floor sql.NullInt64
		if err := tx.QueryRowContext(ctx, l.q(`INSERT INTO ledger_accounts (id, currency, kind, floor, balance, created)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (id, currency) DO UPDATE SET balance = ledger_accounts.balance + excluded.balance
			RETURNING balance, floor`),
			k.id, k.cur, kind, nullable(defaultFloor(kind)), d, now).Scan(&bal, &floor); err != nil {
			return fmt.Errorf("settlement: update balance of %s: %w", k.id, err)
		}
		if floor.Valid && bal < floor.Int64 {
			return fmt.Errorf("%w: %s would fall to %d %s, below its floor %d", ErrInsufficientFunds, k.id, bal, k.cur, floor.Int64)
		}
	}
	return nil
}

// postingsPerInsert bounds the rows of one INSERT: 6 parameters a row stays
// far below SQLite's 32766 and PostgreSQL's 65535 parameters a statement
// (a settlement with many model fees has thousands of postings).
const postingsPerInsert = 500

// insertPostings inserts ps as rows seq0, seq0+1, … of transaction txID.
func (l *Ledger) insertPostings(ctx context.Context, tx *sql.Tx, txID int64, seq0 int, ps []Posting) error {
	var b strings.Builder
	args := make([]any, 0, 6*len(ps))
	b.WriteString(`INSERT INTO ledger_postings (tx_id, seq, account, currency, amount, memo) VALUES `)
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?)")
		args = append(args, txID, seq0+i, p.Account, p.Currency, p.Amount, p.Memo)
	}
	if _, err := tx.ExecContext(ctx, l.q(b.String()), args...); err != nil {
		return fmt.Errorf("settlement: insert postings: %w", err)
	}
	return nil
}

func nullable(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (l *Ledger) transactionByKey(ctx context.Context, q queryer, key string) (*Transaction, error) {
	t := &Transaction{Key: key}
	var created int64
	var detail string
	err := q.QueryRowContext(ctx, l.q(`SELECT id, kind, job, detail, created FROM ledger_transactions WHERE idem_key = ?`), key).
		Scan(&t.ID, &t.Kind, &t.Job, &detail, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: transaction %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	t.Time = time.Unix(0, created).UTC()
	if detail != "" {
		t.detail = json.RawMessage(detail)
	}
	rows, err := q.QueryContext(ctx, l.q(`SELECT account, currency, amount, memo FROM ledger_postings WHERE tx_id = ? ORDER BY seq`), t.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var p Posting
		if err := rows.Scan(&p.Account, &p.Currency, &p.Amount, &p.Memo); err != nil {
			return nil, err
		}
		t.Postings = append(t.Postings, p)
	}
	return t, rows.Err()
}

// Transaction returns the committed transaction with the given key.
func (l *Ledger) Transaction(ctx context.Context, key string) (*Transaction, error) {
	t, err := l.transactionByKey(ctx, l.db, key)
	if err != nil {
		return nil, fmt.Errorf("settlement: transaction %s: %w", key, err)
	}
	return t, nil
}
