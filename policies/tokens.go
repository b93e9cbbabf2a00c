package policies

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/accordmesh/accord/internal/names"
)

// ErrTokenRequest reports a token that cannot be made as asked: an
// unknown role, a bad name or TTL.
var ErrTokenRequest = errors.New("policies: invalid token request")

// DefaultTokenTTL is how long a token lives when its creator names no TTL.
const DefaultTokenTTL = 90 * 24 * time.Hour

// MaxTokenTTL bounds a token's life: a token that never expires is a
// credential nobody remembers to revoke.
const MaxTokenTTL = 5 * 365 * 24 * time.Hour

// lastUsedEvery is how stale a token's last_used may get before an
// authentication writes it again: one write a minute per token at most.
const lastUsedEvery = time.Minute

// maxTokenName bounds a token holder's name.
const maxTokenName = 128

// TokenInfo is what may be shown of a token: never its secret.
type TokenInfo struct {
	ID       string    `json:"id"`
	Tenant   string    `json:"tenant"`
	Role     Role      `json:"role"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// TokenOption changes how CreateToken makes a token.
type TokenOption func(*tokenOptions)

type tokenOptions struct{ ttl time.Duration }

// WithTTL sets how long the token is valid (default DefaultTokenTTL).
func WithTTL(d time.Duration) TokenOption { return func(o *tokenOptions) { o.ttl = d } }

// migrateTokens adds the columns later versions keep for each token: its
// public ID, expiry and last use. Tokens from before expiry existed expire
// DefaultTokenTTL after they were created.
func (s *Store) migrateTokens(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM pragma_table_info('tokens')`)
	if err != nil {
		return fmt.Errorf("policies: migrate tokens: %w", err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("policies: migrate tokens: %w", err)
		}
		have[n] = true
	}
	rows.Close()
	for _, col := range []string{"id", "expires", "last_used"} {
		if have[col] {
			continue
		}
		if _, err := s.db.ExecContext(ctx, `ALTER TABLE tokens ADD COLUMN `+col+` TEXT NOT NULL DEFAULT ''`); err != nil {
			return fmt.Errorf("policies: migrate tokens: %w", err)
		}
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET id = 'tok_' || substr(hash, 1, 12) WHERE id = ''`); err != nil {
		return fmt.Errorf("policies: migrate tokens: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET expires = strftime('%Y-%m-%dT%H:%M:%SZ', created, ?) WHERE expires = ''`,
		fmt.Sprintf("+%d days", int(DefaultTokenTTL/(24*time.Hour)))); err != nil {
		return fmt.Errorf("policies: migrate tokens: %w", err)
	}
	return nil
}

// CreateToken makes a new API token for a principal and returns it; only
// its sha256 is stored (TokenID names it; Token shows it). A principal
// without a name gets tenant/ID (role/ID for organisation-wide tokens) as
// identity.
func (s *Store) CreateToken(ctx context.Context, p Principal, opts ...TokenOption) (string, error) {
	o := tokenOptions{ttl: DefaultTokenTTL}
	for _, f := range opts {
		f(&o)
	}
	if o.ttl <= 0 || o.ttl > MaxTokenTTL {
		return "", fmt.Errorf("%w: TTL %s: want more than 0 and at most %s", ErrTokenRequest, o.ttl, MaxTokenTTL)
	}
	if err := s.checkPrincipal(ctx, &p); err != nil {
		return "", err
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("policies: token: %w", err)
	}
	tok := "acc_" + hex.EncodeToString(buf)
	hash := tokenHash(tok)
	now := s.now().UTC().Truncate(time.Second)
	info := TokenInfo{ID: TokenID(tok), Tenant: p.Tenant, Role: p.Role, Name: p.Name, Created: now, Expires: now.Add(o.ttl)}
	if info.Name == "" {
		owner := p.Tenant
		if owner == "*" {
			owner = string(p.Role)
		}
		info.Name = owner + "/" + info.ID
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO tokens (hash, tenant, role, name, created, id, expires, last_used) VALUES (?,?,?,?,?,?,?,'')`,
		hash, info.Tenant, string(info.Role), info.Name, stamp(info.Created), info.ID, stamp(info.Expires))
	if err != nil {
		return "", fmt.Errorf("policies: store token: %w", err)
	}
	return tok, nil
}

// TokenID is the public name of a token: tok_ and the first 12 hex digits
// of its sha256.
func TokenID(token string) string { return "tok_" + tokenHash(token)[:12] }

// Token returns what may be shown of the token with the given ID.
func (s *Store) Token(ctx context.Context, id string) (TokenInfo, error) {
	all, err := s.Tokens(ctx)
	if err != nil {
		return TokenInfo{}, err
	}
	for _, t := range all {
		if t.ID == id {
			return t, nil
		}
	}
	return TokenInfo{}, fmt.Errorf("%w: %s", ErrNoSuchToken, id)
}

// checkPrincipal validates the role, tenant and name a token is made for.
func (s *Store) checkPrincipal(ctx context.Context, p *Principal) error {
	switch p.Role {
	case RoleTenant, RoleAuditor:
		if p.Tenant != "*" {
			if _, err := s.Tenant(ctx, p.Tenant); err != nil {
				return err
			}
		}
	case RoleAdmin:
		p.Tenant = "*"
	case RoleProvider:
		if p.Tenant != "" {
			return fmt.Errorf("%w: a provider token acts for no tenant", ErrTokenRequest)
		}
		if err := names.Provider(p.Name); err != nil {
			return fmt.Errorf("%w: a provider token needs --name PROVIDER: %v", ErrTokenRequest, err)
		}
	default:
		return fmt.Errorf("%w: unknown role %q", ErrTokenRequest, p.Role)
	}
	if p.Role == RoleTenant && p.Tenant == "*" {
		return fmt.Errorf("%w: a tenant token needs one tenant", ErrTokenRequest)
	}
	if len(p.Name) > maxTokenName || strings.ContainsFunc(p.Name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return fmt.Errorf("%w: name must be at most %d printable characters without spaces", ErrTokenRequest, maxTokenName)
	}
	return nil
}

// Authenticate returns the principal a token belongs to. Unknown and
// revoked tokens are ErrBadToken; expired ones ErrTokenExpired (which
// wraps ErrBadToken). It records the token's last use, at most once a
// minute.
func (s *Store) Authenticate(ctx context.Context, token string) (Principal, error) {
	var p Principal
	var role, expires, lastUsed string
	hash := tokenHash(token)
	err := s.db.QueryRowContext(ctx, `SELECT tenant, role, name, id, expires, last_used FROM tokens WHERE hash = ?`, hash).
		Scan(&p.Tenant, &role, &p.Name, &p.ID, &expires, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, ErrBadToken
	}
	if err != nil {
		return Principal{}, fmt.Errorf("policies: authenticate: %w", err)
	}
	now := s.now().UTC()
	exp, err := time.Parse(time.RFC3339, expires)
	if err != nil || !now.Before(exp) {
		return Principal{}, fmt.Errorf("%w: %w: %s expired at %s", ErrBadToken, ErrTokenExpired, p.ID, expires)
	}
	if last, err := time.Parse(time.RFC3339, lastUsed); err != nil || now.Sub(last) >= lastUsedEvery {
		if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET last_used = ? WHERE hash = ?`, stamp(now), hash); err != nil {
			return Principal{}, fmt.Errorf("policies: authenticate: %w", err)
		}
	}
	p.Role = Role(role)
	return p, nil
}

// Tokens lists every token, oldest first, without secrets.
func (s *Store) Tokens(ctx context.Context) ([]TokenInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, tenant, role, name, created, expires, last_used FROM tokens ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("policies: list tokens: %w", err)
	}
	defer rows.Close()
	var out []TokenInfo
	for rows.Next() {
		var t TokenInfo
		var role, created, expires, lastUsed string
		if err := rows.Scan(&t.ID, &t.Tenant, &role, &t.Name, &created, &expires, &lastUsed); err != nil {
			return nil, fmt.Errorf("policies: list tokens: %w", err)
		}
		t.Role = Role(role)
		t.Created, _ = time.Parse(time.RFC3339, created)
		t.Expires, _ = time.Parse(time.RFC3339, expires)
		t.LastUsed, _ = time.Parse(time.RFC3339, lastUsed)
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken deletes the token with the given ID; it stops working at
// once. An unknown ID is ErrNoSuchToken.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("policies: revoke %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s", ErrNoSuchToken, id)
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}
