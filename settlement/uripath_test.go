package settlement

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A ledger path with characters that mean something in a URI ('?', '#',
// '%') opens the file at exactly that path, and reopens it.
func TestOpenOddPath(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a?b#c%41d")
	path := filepath.Join(dir, "ledger.db")
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Deposit(ctx, DepositRequest{Tenant: "acme", Currency: "USD", Amount: 500, Key: "d1"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the ledger is not at %s: %v", path, err)
	}
	l, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if b, err := l.Balance(ctx, TenantAccount("acme"), "USD"); err != nil || b != 500 {
		t.Errorf("balance after reopening: %d %v, want 500", b, err)
	}
}
