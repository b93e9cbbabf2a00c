package wdp

import "errors"

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalid marks a malformed instance.
	ErrInvalid = errors.New("wdp: invalid instance")
	// ErrLP marks an LP relaxation the solver could not use; the solver
	// recovers from it with a weaker bound, so callers see it only in logs.
	ErrLP = errors.New("wdp: LP relaxation failed")
)
