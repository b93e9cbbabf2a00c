package market

import "errors"

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalid marks malformed input: a plan, a provider profile, options.
	ErrInvalid = errors.New("market: invalid input")
	// ErrNoOffers means no provider could bid; Result.Diagnostics says
	// which constraint excluded which provider.
	ErrNoOffers = errors.New("market: no offers")
	// ErrNoAgreement means offers existed but no trade cleared: every bid
	// was above the budget, or bargaining hit its deadline.
	ErrNoAgreement = errors.New("market: no agreement")
)
