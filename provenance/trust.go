package provenance

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/accordmesh/accord/internal/names"
)

// Trust scopes: what a trusted key may sign.
const (
	// ScopeStage: stage attestations (workers, the workflow).
	ScopeStage = "stage"
	// ScopeLog: transparency log checkpoints and signed entry timestamps.
	ScopeLog = "log"
	// ScopeSpecPrefix + tenant: specs of that tenant; "spec:*" any tenant.
	ScopeSpecPrefix = "spec:"
	// ScopeProviderPrefix + provider: that provider agent's own stages
	// (its execution attestations).
	ScopeProviderPrefix = "provider:"
)

// TrustFile is the trust store's file name under Accord's home directory.
const TrustFile = "trust.json"

// TrustedKey is one verifier key and what it may sign.
type TrustedKey struct {
	ID        string   `json:"id"`
	Name      string   `json:"name,omitempty"`
	PublicKey string   `json:"publicKey"`
	Scopes    []string `json:"scopes"`

	pub crypto.PublicKey
}

// Public returns the parsed public key.
func (k *TrustedKey) Public() crypto.PublicKey { return k.pub }

// TrustStore says which keys may sign what. The zero value is empty; the
// methods are safe for concurrent use.
type TrustStore struct {
	mu   sync.RWMutex
	keys map[string]*TrustedKey
}

type trustFile struct {
	Keys []*TrustedKey `json:"keys"`
}

// NewTrustStore returns an empty trust store.
func NewTrustStore() *TrustStore { return &TrustStore{keys: map[string]*TrustedKey{}} }

// LoadTrustStore reads a trust store file; a missing file is an empty store.
func LoadTrustStore(path string) (*TrustStore, error) {
	ts := NewTrustStore()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ts, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provenance: read trust store: %w", err)
	}
	var f trustFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("provenance: trust store %s: %w", path, err)
	}
	for _, k := range f.Keys {
		id, err := ts.Add([]byte(k.PublicKey), k.Name, k.Scopes...)
		if err != nil {
			return nil, fmt.Errorf("provenance: trust store %s: key %s: %w", path, k.ID, err)
		}
		if k.ID != "" && id != k.ID {
			return nil, fmt.Errorf("provenance: trust store %s: key id %s does not match its public key (%s)", path, k.ID, id)
		}
	}
	return ts, nil
}

// DefaultTrustPath is home/trust.json.
func DefaultTrustPath(home string) string { return filepath.Join(home, TrustFile) }

// Save writes the store atomically.
func (ts *TrustStore) Save(path string) error {
	ts.mu.RLock()
	f := trustFile{Keys: ts.listLocked()}
	ts.mu.RUnlock()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("provenance: encode trust store: %w", err)
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}

// Add trusts a public key (PEM) for scopes, merging with scopes it already
// has. Idempotent. Returns the key's ID.
func (ts *TrustStore) Add(publicKeyPEM []byte, name string, scopes ...string) (string, error) {
	pub, err := ParsePublicKeyPEM(publicKeyPEM)
	if err != nil {
		return "", err
	}
	for _, s := range scopes {
		if err := validScope(s); err != nil {
			return "", err
		}
	}
	id, err := Fingerprint(pub)
	if err != nil {
		return "", err
	}
	canon, err := MarshalPublicKeyPEM(pub)
	if err != nil {
		return "", err
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.keys == nil {
		ts.keys = map[string]*TrustedKey{}
	}
	k := ts.keys[id]
	if k == nil {
		k = &TrustedKey{ID: id, PublicKey: string(canon), pub: pub}
		ts.keys[id] = k
	}
	if name != "" {
		k.Name = name
	}
	for _, s := range scopes {
		if !slices.Contains(k.Scopes, s) {
			k.Scopes = append(k.Scopes, s)
		}
	}
	sort.Strings(k.Scopes)
	return id, nil
}

// Remove forgets a key. Idempotent.
func (ts *TrustStore) Remove(id string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.keys, id)
}

func validScope(s string) error {
	switch {
	case s == ScopeStage, s == ScopeLog:
		return nil
	case s == ScopeSpecPrefix+"*":
		return nil
	case strings.HasPrefix(s, ScopeSpecPrefix):
		if err := names.Tenant(strings.TrimPrefix(s, ScopeSpecPrefix)); err != nil {
			return fmt.Errorf("provenance: trust scope %q: %w", s, err)
		}
		return nil
	case strings.HasPrefix(s, ScopeProviderPrefix):
		if err := names.Provider(strings.TrimPrefix(s, ScopeProviderPrefix)); err != nil {
			return fmt.Errorf("provenance: trust scope %q: %w", s, err)
		}
		return nil
	}
	return fmt.Errorf("provenance: unknown trust scope %q (want stage, log, spec:<tenant>, spec:* or provider:<name>)", s)
}

// Lookup returns a trusted key by ID.
func (ts *TrustStore) Lookup(id string) (*TrustedKey, bool) {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	k, ok := ts.keys[id]
	return k, ok
}

// Allowed reports whether key id may sign for scope. A "spec:*" grant
// covers every "spec:<tenant>".
func (ts *TrustStore) Allowed(id, scope string) bool {
	k, ok := ts.Lookup(id)
	if !ok {
		return false
	}
	for _, s := range k.Scopes {
		if s == scope || (s == ScopeSpecPrefix+"*" && strings.HasPrefix(scope, ScopeSpecPrefix)) {
			return true
		}
	}
	return false
}

// KeysFor returns the public keys allowed to sign for scope.
func (ts *TrustStore) KeysFor(scope string) []crypto.PublicKey {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	var out []crypto.PublicKey
	for _, k := range ts.listLocked() {
		for _, s := range k.Scopes {
			if s == scope || (s == ScopeSpecPrefix+"*" && strings.HasPrefix(scope, ScopeSpecPrefix)) {
				out = append(out, k.pub)
				break
			}
		}
	}
	return out
}

// Keys lists the trusted keys sorted by ID.
func (ts *TrustStore) Keys() []TrustedKey {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	var out []TrustedKey
	for _, k := range ts.listLocked() {
		out = append(out, *k)
	}
	return out
}

func (ts *TrustStore) listLocked() []*TrustedKey {
	out := make([]*TrustedKey, 0, len(ts.keys))
	for _, k := range ts.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
