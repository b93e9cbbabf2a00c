package policies

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokenExpiry(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := s.PutTenant(ctx, Tenant{Name: "ml", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return t0 }
	tok, err := s.CreateToken(ctx, Principal{Tenant: "ml", Role: RoleTenant}, WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return t0.Add(59 * time.Minute) }
	if _, err := s.Authenticate(ctx, tok); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	s.now = func() time.Time { return t0.Add(time.Hour) }
	if _, err := s.Authenticate(ctx, tok); !errors.Is(err, ErrTokenExpired) || !errors.Is(err, ErrBadToken) {
		t.Fatalf("at expiry: %v, want ErrTokenExpired wrapping ErrBadToken", err)
	}
	for _, ttl := range []time.Duration{0, -time.Hour, MaxTokenTTL + time.Hour} {
		if _, err := s.CreateToken(ctx, Principal{Tenant: "ml", Role: RoleTenant}, WithTTL(ttl)); err == nil {
			t.Errorf("TTL %s accepted", ttl)
		}
	}
	s.now = func() time.Time { return t0.Add(time.Second) }
	if _, err := s.CreateToken(ctx, Principal{Tenant: "ml", Role: RoleTenant}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Tokens(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("tokens: %+v %v", all, err)
	}
	if got := all[1].Expires.Sub(all[1].Created); got != DefaultTokenTTL {
		t.Errorf("default TTL %s, want %s", got, DefaultTokenTTL)
	}
}

func TestTokenListRevokeIdentity(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := s.PutTenant(ctx, Tenant{Name: "ml", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	named, err := s.CreateToken(ctx, Principal{Tenant: "ml", Role: RoleTenant, Name: "alice@acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := s.CreateToken(ctx, Principal{Tenant: "ml", Role: RoleTenant})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, named)
	if err != nil || p.Identity() != "alice@acme.example" || p.ID != TokenID(named) {
		t.Fatalf("named token: %+v %v", p, err)
	}
	q, err := s.Authenticate(ctx, anon)
	if err != nil || q.Identity() != "ml/"+TokenID(anon) {
		t.Fatalf("unnamed token identity %q, want ml/%s (%v)", q.Identity(), TokenID(anon), err)
	}
	all, err := s.Tokens(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("tokens: %+v %v", all, err)
	}
	for _, ti := range all {
		if ti.LastUsed.IsZero() {
			t.Errorf("%s: last use not recorded", ti.ID)
		}
		if strings.Contains(ti.ID, named[4:]) || strings.Contains(ti.ID, anon[4:]) {
			t.Errorf("listing shows a secret: %+v", ti)
		}
	}
	if err := s.RevokeToken(ctx, TokenID(named)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, named); !errors.Is(err, ErrBadToken) {
		t.Fatalf("revoked token: %v, want ErrBadToken", err)
	}
	if _, err := s.Authenticate(ctx, anon); err != nil {
		t.Fatalf("revoking one token revoked another: %v", err)
	}
	if err := s.RevokeToken(ctx, TokenID(named)); !errors.Is(err, ErrNoSuchToken) {
		t.Fatalf("revoke twice: %v, want ErrNoSuchToken", err)
	}
	for _, bad := range []string{"has space", "tab\there", strings.Repeat("x", 129)} {
		if _, err := s.CreateToken(ctx, Principal{Tenant: "ml", Role: RoleTenant, Name: bad}); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

// TestTokenMigration opens a store made before tokens had IDs and
// expiry: its tokens keep working, get an ID, and expire DefaultTokenTTL
// after they were made.
func TestTokenMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	for _, q := range []string{
		`CREATE TABLE tokens (hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL, created TEXT NOT NULL)`,
		`INSERT INTO tokens VALUES ('` + tokenHash("acc_old") + `', 'ml', 'tenant', 'ci', '` + created.Format(time.RFC3339) + `')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Authenticate(ctx, "acc_old")
	if err != nil || p.ID != TokenID("acc_old") || p.Name != "ci" {
		t.Fatalf("old token: %+v %v", p, err)
	}
	ti, err := s.Token(ctx, TokenID("acc_old"))
	if err != nil || !ti.Expires.Equal(created.Add(DefaultTokenTTL)) {
		t.Fatalf("old token expires %s, want %s (%v)", ti.Expires, created.Add(DefaultTokenTTL), err)
	}
}
