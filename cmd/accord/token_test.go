package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

type tokenJSON struct {
	ID, Tenant, Role, Name, Created, Expires, Token string
	LastUsed                                        string `json:"last_used"`
	Expired                                         bool
}

// TestTokenLifecycle: create shows the secret once; list shows IDs,
// names and expiry, never secrets; revoke removes a token by ID.
func TestTokenLifecycle(t *testing.T) {
	home := t.TempDir()
	if out := ok(t, home, "token", "list"); !strings.Contains(out, "no tokens") {
		t.Fatalf("empty list: %q", out)
	}
	if entries, _ := os.ReadDir(home); len(entries) > 0 {
		t.Fatalf("token list wrote %v", entries)
	}
	ok(t, home, "tenant", "put", "demo")
	var a, b tokenJSON
	lastJSON(t, ok(t, home, "--json", "token", "create", "--tenant", "demo", "--name", "alice@example.com", "--ttl", "720h"), &a)
	lastJSON(t, ok(t, home, "--json", "token", "create", "--tenant", "demo"), &b)
	if !strings.HasPrefix(a.Token, "acc_") || !strings.HasPrefix(a.ID, "tok_") || a.Name != "alice@example.com" {
		t.Fatalf("created: %+v", a)
	}
	if b.Name != "demo/"+b.ID {
		t.Errorf("unnamed token's identity %q, want demo/%s", b.Name, b.ID)
	}
	for tok, want := range map[tokenJSON]time.Duration{a: 720 * time.Hour, b: 90 * 24 * time.Hour} {
		c, _ := time.Parse(time.RFC3339, tok.Created)
		e, _ := time.Parse(time.RFC3339, tok.Expires)
		if e.Sub(c) != want {
			t.Errorf("%s lives %s, want %s", tok.ID, e.Sub(c), want)
		}
	}
	text := ok(t, home, "token", "list")
	js := ok(t, home, "--json", "token", "list")
	for _, out := range []string{text, js} {
		contains(t, out, a.ID)
		contains(t, out, "alice@example.com")
		if strings.Contains(out, a.Token[4:]) || strings.Contains(out, b.Token[4:]) {
			t.Fatalf("token list shows a secret:\n%s", out)
		}
	}
	var list struct{ Tokens []tokenJSON }
	lastJSON(t, js, &list)
	if len(list.Tokens) != 2 || list.Tokens[0].Expires == "" {
		t.Fatalf("listed %+v", list.Tokens)
	}

	ok(t, home, "token", "revoke", a.ID)
	if out := ok(t, home, "token", "list"); strings.Contains(out, a.ID) || !strings.Contains(out, b.ID) {
		t.Fatalf("after revoking %s:\n%s", a.ID, out)
	}
	r := runIn(t, home, "--json", "token", "revoke", a.ID)
	if o := r.errorObject(t); r.code != 1 || o.Error.Class != "not_found" {
		t.Fatalf("revoke twice: exit %d %+v", r.code, o)
	}
	for _, args := range [][]string{
		{"token", "create", "--tenant", "demo", "--ttl", "0s"},
		{"token", "create", "--tenant", "demo", "--name", "two words"},
		{"token", "create", "--tenant", "demo", "--role", "root"},
	} {
		if r := runIn(t, home, args...); r.code != 2 {
			t.Errorf("accord %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// TestTokenExpiryListed: a token past its TTL is listed as expired.
func TestTokenExpiryListed(t *testing.T) {
	home := t.TempDir()
	ok(t, home, "tenant", "put", "demo")
	var tok tokenJSON
	lastJSON(t, ok(t, home, "--json", "token", "create", "--tenant", "demo", "--ttl", "1s"), &tok)
	time.Sleep(2 * time.Second)
	var list struct{ Tokens []tokenJSON }
	lastJSON(t, ok(t, home, "--json", "token", "list"), &list)
	if len(list.Tokens) != 1 || !list.Tokens[0].Expired {
		t.Fatalf("listed %+v, want one expired token", list.Tokens)
	}
	contains(t, ok(t, home, "token", "list"), "EXPIRED")
}

// TestServeRejectsBadLimits: serve checks its limits before it dials
// anything.
func TestServeRejectsBadLimits(t *testing.T) {
	home := t.TempDir()
	for _, args := range [][]string{
		{"serve", "--rate-limit", "-1"},
		{"serve", "--rate-burst", "0"},
		{"serve", "--max-upload", "10"},
		{"serve", "--max-data", "0"},
		{"serve", "--upload-retention", "-1h"},
	} {
		if r := runIn(t, home, args...); r.code != 2 {
			t.Errorf("accord %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
