package settlement

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// pgEnv names the PostgreSQL server the tests use; scripts/services/postgres.sh
// (run by make test) starts one and sets it.
const pgEnv = "ACCORD_TEST_PG_DSN"

// backend is a fresh, empty ledger database for one test.
type backend struct {
	name string
	dsn  func(t testing.TB) string
}

var backendList = []backend{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "ledger.db") }},
	{"postgres", freshPostgres},
}

// freshPostgres returns a DSN for a new schema on the test server, dropped
// when the test ends. It skips the test when no server is configured.
func freshPostgres(t testing.TB) string {
	base := os.Getenv(pgEnv)
	if base == "" {
		t.Skipf("%s is not set: start PostgreSQL with `scripts/services/postgres.sh start ENVFILE` and export it (make test does this)", pgEnv)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", pgEnv, err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema on %s: %v", pgEnv, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", pgEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// eachBackend runs fn as a subtest against SQLite and PostgreSQL.
func eachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, b := range backendList {
		t.Run(b.name, func(t *testing.T) { fn(t, b.dsn(t)) })
	}
}

func openLedger(t testing.TB, dsn string) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// mustCheck fails the test if any invariant is broken.
func mustCheck(t testing.TB, l *Ledger) *Report {
	t.Helper()
	r, err := l.Check(context.Background())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !r.OK {
		t.Fatalf("invariants broken: %v", r.Problems)
	}
	return r
}

func mustBalance(t testing.TB, l *Ledger, account, cur string) int64 {
	t.Helper()
	b, err := l.Balance(context.Background(), account, cur)
	if err != nil {
		t.Fatalf("Balance(%s): %v", account, err)
	}
	return b
}

// snapshot returns every account's balance.
func snapshot(t testing.TB, l *Ledger) map[string]int64 {
	t.Helper()
	rows, err := l.db.Query(`SELECT id, currency, balance FROM ledger_accounts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int64{}
	for rows.Next() {
		var id, cur string
		var b int64
		if err := rows.Scan(&id, &cur, &b); err != nil {
			t.Fatal(err)
		}
		m[id+"/"+cur] = b
	}
	return m
}
