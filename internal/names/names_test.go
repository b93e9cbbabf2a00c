package names

import (
	"errors"
	"strings"
	"testing"
)

func TestValidators(t *testing.T) {
	id := "sha256:" + strings.Repeat("ab", 32)
	for _, c := range []struct {
		check func(string) error
		in    string
		want  error
	}{
		{Tenant, "demo", nil},
		{Tenant, "acme-1.eu_west", nil},
		{Tenant, "Demo", ErrTenant},
		{Tenant, "", ErrTenant},
		{Tenant, "-x", ErrTenant},
		{Tenant, "a b", ErrTenant},
		{Tenant, strings.Repeat("a", 64), ErrTenant},
		{Currency, "USD", nil},
		{Currency, "USDC", nil},
		{Currency, "usd", ErrCurrency},
		{Currency, "US", ErrCurrency},
		{Currency, "1USD", ErrCurrency},
		{Currency, "ABCDEFGHIJK", ErrCurrency},
		{KeyID, id, nil},
		{KeyID, "deadbeef", ErrKeyID},
		{KeyID, strings.ToUpper(id), ErrKeyID},
		{KeyID, id + "0", ErrKeyID},
		{Provider, "local", nil},
		{Provider, "gpu-east.1_a", nil},
		{Provider, "GPU-east", ErrProvider},
		{Provider, "", ErrProvider},
		{Provider, "*", ErrProvider},
		{Provider, "a:b", ErrProvider},
		{Provider, strings.Repeat("p", 64), ErrProvider},
	} {
		err := c.check(c.in)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%q: got %v, want %v", c.in, err, c.want)
		}
	}
}
