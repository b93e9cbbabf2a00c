// Package names holds the one validator for each kind of name that more
// than one part of Accord accepts: tenant names, currency codes, signing
// key IDs and provider names. The spec checker, the ledger, the tenancy
// store, the trust store and the CLI all call these, so that a value one
// accepts the others accept.
package names

import (
	"errors"
	"fmt"
	"regexp"
)

// Errors returned by the validators; each wraps one of them.
var (
	ErrTenant   = errors.New("invalid tenant name")
	ErrCurrency = errors.New("invalid currency code")
	ErrKeyID    = errors.New("invalid key ID")
	ErrProvider = errors.New("invalid provider name")
)

var (
	// TenantPattern matches a tenant name: 1-63 lower-case letters, digits,
	// '.', '_' or '-', starting with a letter or digit.
	TenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	// CurrencyPattern matches a currency: an upper-case ISO 4217 code such
	// as USD, or a token symbol of up to 10 upper-case letters and digits
	// starting with a letter.
	CurrencyPattern = regexp.MustCompile(`^[A-Z][A-Z0-9]{2,9}$`)
	// KeyIDPattern matches a key ID: "sha256:" and the lower-case hex
	// SHA-256 of the DER public key (provenance.Fingerprint).
	KeyIDPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// ProviderPattern matches a provider name: the market's providers are
	// its pools ("local", or a pool attached with accord pool attach), so
	// this is the pool name rule: 1-63 lower-case letters, digits, '.',
	// '_' or '-', starting with a letter or digit.
	ProviderPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

// Tenant checks a tenant name.
func Tenant(s string) error {
	if !TenantPattern.MatchString(s) {
		return fmt.Errorf("%w: %q must be lower-case letters, digits, . _ or - (at most 63, starting with a letter or digit)", ErrTenant, s)
	}
	return nil
}

// Currency checks a currency code.
func Currency(s string) error {
	if !CurrencyPattern.MatchString(s) {
		return fmt.Errorf("%w: %q must be an upper-case code such as USD, EUR or a token symbol", ErrCurrency, s)
	}
	return nil
}

// KeyID checks a signing key ID.
func KeyID(s string) error {
	if !KeyIDPattern.MatchString(s) {
		return fmt.Errorf("%w: %q must be sha256:<64 lower-case hex digits> (see accord keys list)", ErrKeyID, s)
	}
	return nil
}

// Provider checks a provider name (a pool's, or a provider agent's, whose
// task queue and trust scope are named after it).
func Provider(s string) error {
	if !ProviderPattern.MatchString(s) {
		return fmt.Errorf("%w: %q must be lower-case letters, digits, . _ or - (at most 63, starting with a letter or digit)", ErrProvider, s)
	}
	return nil
}
