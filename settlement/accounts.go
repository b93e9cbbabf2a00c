package settlement

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/accordmesh/accord/internal/names"
)

// Account kinds. An account name is "<kind>:<name>".
const (
	KindTenant   = "tenant"   // pays for jobs
	KindProvider = "provider" // paid for jobs
	KindEscrow   = "escrow"   // one per job, holds the tenant's money while it runs
	KindBond     = "bond"     // a provider's bond, slashed on SLA breach
	KindPlatform = "platform" // the platform's fee income
	KindOwner    = "owner"    // a model owner's royalties
	KindExternal = "external" // money entering or leaving the ledger
)

// Well-known accounts.
const (
	// PlatformFeeAccount receives the platform fee of every settled job.
	PlatformFeeAccount = "platform:fee"
	// ExternalAccount is the counterpart of deposits; it has no floor and its
	// balance is minus everything ever deposited.
	ExternalAccount = "external:world"
)

// MaxAmount bounds every single amount the ledger accepts (10^15 minor
// units), so that sums of many amounts stay far inside int64.
const MaxAmount int64 = 1_000_000_000_000_000

// TenantAccount names a tenant's account.
func TenantAccount(name string) string { return KindTenant + ":" + name }

// ProviderAccount names a provider's account.
func ProviderAccount(name string) string { return KindProvider + ":" + name }

// EscrowAccount names the escrow account of a job.
func EscrowAccount(job string) string { return KindEscrow + ":" + job }

// BondAccount names a provider's bond account.
func BondAccount(provider string) string { return KindBond + ":" + provider }

// OwnerAccount names a model owner's royalty account. A name that already
// has the "owner:" prefix is returned unchanged.
func OwnerAccount(name string) string {
	if strings.HasPrefix(name, KindOwner+":") {
		return name
	}
	return KindOwner + ":" + name
}

// Key builds the idempotency key of a job flow: job, stage and attempt.
func Key(job, stage string, attempt int) string {
	return job + "/" + stage + "/" + strconv.Itoa(attempt)
}

// ParseAccount splits an account name into kind and name and checks both.
func ParseAccount(account string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(account, ":")
	if !ok {
		return "", "", fmt.Errorf("%w: %q has no kind (want e.g. tenant:acme)", ErrBadAccount, account)
	}
	switch kind {
	case KindTenant, KindProvider, KindEscrow, KindBond, KindPlatform, KindOwner, KindExternal:
	default:
		return "", "", fmt.Errorf("%w: unknown kind %q in %q", ErrBadAccount, kind, account)
	}
	if err := checkName(name); err != nil {
		return "", "", fmt.Errorf("%w: %q: %v", ErrBadAccount, account, err)
	}
	return kind, name, nil
}

// checkName accepts printable names without spaces, up to 200 bytes.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	if len(name) > 200 {
		return fmt.Errorf("name longer than 200 bytes")
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("name contains space or control character")
		}
	}
	return nil
}

// checkCurrency accepts the currency codes names.Currency does (the
// spec's rule): ISO 4217 codes and token symbols.
func checkCurrency(c string) error {
	if err := names.Currency(c); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCurrency, err)
	}
	return nil
}

// checkTenant accepts tenant names names.Tenant does (the spec's rule).
func checkTenant(t string) error {
	if err := names.Tenant(t); err != nil {
		return fmt.Errorf("%w: %v", ErrBadAccount, err)
	}
	return nil
}

func checkAmount(what string, a int64) error {
	if a < 0 || a > MaxAmount {
		return fmt.Errorf("%w: %s %d outside [0, %d]", ErrBadAmount, what, a, MaxAmount)
	}
	return nil
}

// defaultFloor is the floor an account gets when it is created; nil means
// no floor.
func defaultFloor(kind string) *int64 {
	if kind == KindExternal {
		return nil
	}
	var zero int64
	return &zero
}
