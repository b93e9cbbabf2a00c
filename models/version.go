package models

import "github.com/accordmesh/accord/models/modelref"

// The reference syntax lives in package modelref, which the spec language
// imports too; these aliases keep it part of the models API.
type (
	// Version is a semantic version MAJOR.MINOR.PATCH.
	Version = modelref.Version
	// Bump is the largest part that increased from one version to the next.
	Bump = modelref.Bump
	// Constraint selects versions for a spec's models: entry.
	Constraint = modelref.Constraint
)

// Bumps, in increasing size.
const (
	BumpNone  = modelref.BumpNone
	BumpPatch = modelref.BumpPatch
	BumpMinor = modelref.BumpMinor
	BumpMajor = modelref.BumpMajor
)

// ParseVersion parses "MAJOR.MINOR.PATCH" (see modelref.ParseVersion).
func ParseVersion(s string) (Version, error) { return modelref.ParseVersion(s) }

// ParseConstraint parses an exact, caret or tilde constraint (see
// modelref.ParseConstraint).
func ParseConstraint(s string) (Constraint, error) { return modelref.ParseConstraint(s) }

// CheckName checks a model name (see modelref.CheckName).
func CheckName(name string) error { return modelref.CheckName(name) }

// ParseRef splits "name@MAJOR.MINOR.PATCH" and checks both parts.
func ParseRef(ref string) (string, Version, error) { return modelref.ParseRef(ref) }

// clip shortens hostile strings echoed in errors.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
