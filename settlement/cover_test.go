package settlement

import (
	"context"
	"errors"
	"testing"
)

func TestCanCover(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		c, err := l.CanCover(ctx, "acme", "USD", 500)
		if err != nil || c.OK || c.Balance != 0 || c.Shortfall != 500 || !errors.Is(c.Err(), ErrInsufficientFunds) {
			t.Fatalf("no account: %+v, %v", c, err)
		}
		fund(t, l, "acme", 300)
		if c, err = l.CanCover(ctx, "acme", "USD", 500); err != nil || c.OK || c.Balance != 300 || c.Shortfall != 200 {
			t.Fatalf("300 of 500: %+v, %v", c, err)
		}
		if got := c.Err().Error(); got != "settlement: insufficient funds: tenant acme has 3.00 USD, the escrow needs 5.00 USD (short by 2.00 USD)" {
			t.Fatalf("message: %s", got)
		}
		if err := l.SetFloor(ctx, "acme", "USD", -200); err != nil {
			t.Fatal(err)
		}
		if c, err = l.CanCover(ctx, "acme", "USD", 500); err != nil || !c.OK || c.Shortfall != 0 || c.Err() != nil {
			t.Fatalf("with credit: %+v, %v", c, err)
		}
		if c, _ = l.CanCover(ctx, "acme", "USD", 501); c.OK {
			t.Fatalf("one over credit: %+v", c)
		}
		if got := mustBalance(t, l, "tenant:acme", "USD"); got != 300 {
			t.Fatalf("CanCover moved money: %d", got)
		}
		for _, bad := range []struct{ tenant, cur string }{{"Acme", "USD"}, {"acme", "usd"}} {
			if _, err := l.CanCover(ctx, bad.tenant, bad.cur, 1); err == nil {
				t.Fatalf("%v accepted", bad)
			}
		}
	})
}
