// Package modelref is the syntax of model references: names, semantic
// versions and version constraints. It imports nothing of Accord, so that the
// spec language can check a task's models: entries with the same rules the
// model exchange (package models) applies.
package modelref

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrVersion is a malformed version or version constraint.
var ErrVersion = errors.New("models: invalid version")

// MaxNameLen bounds a model name.
const MaxNameLen = 128

const maxNameSegs = 4

var nameSegRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckName checks a model name: 1-4 DNS labels (lowercase letters,
// digits, inner hyphens, each at most 63) joined by "/", at most
// MaxNameLen bytes in all.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("name must be 1-%d bytes", MaxNameLen)
	}
	segs := strings.Split(name, "/")
	if len(segs) > maxNameSegs {
		return fmt.Errorf("%q has more than %d /-separated parts", clip(name), maxNameSegs)
	}
	for _, s := range segs {
		if !nameSegRE.MatchString(s) {
			return fmt.Errorf("%q: part %q is not a lowercase DNS label", clip(name), clip(s))
		}
	}
	return nil
}

// ParseRef splits "name@MAJOR.MINOR.PATCH" and checks both parts.
func ParseRef(ref string) (name string, v Version, err error) {
	name, ver, ok := strings.Cut(ref, "@")
	if !ok {
		return "", Version{}, fmt.Errorf("%q is not name@MAJOR.MINOR.PATCH", clip(ref))
	}
	if err := CheckName(name); err != nil {
		return "", Version{}, err
	}
	v, err = ParseVersion(ver)
	if err != nil {
		return "", Version{}, err
	}
	return name, v, nil
}

// Version is a semantic version MAJOR.MINOR.PATCH. Pre-release and build
// suffixes are not accepted: a published model version is a release.
type Version struct {
	Major, Minor, Patch uint64
}

// maxVersionPart bounds each number so that a hostile "1.99999…" is refused
// rather than silently wrapped.
const maxVersionPart = 1<<31 - 1

// ParseVersion parses "MAJOR.MINOR.PATCH": decimal numbers without leading
// zeros (semver 2.0.0 §2), each at most 2^31-1.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("%w: %q is not MAJOR.MINOR.PATCH", ErrVersion, clip(s))
	}
	var n [3]uint64
	for i, p := range parts {
		v, err := parseVersionPart(p)
		if err != nil {
			return Version{}, fmt.Errorf("%w: %q: %v", ErrVersion, clip(s), err)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

func parseVersionPart(p string) (uint64, error) {
	if p == "" {
		return 0, fmt.Errorf("empty number")
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("leading zero in %q", p)
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", p)
		}
	}
	v, err := strconv.ParseUint(p, 10, 64)
	if err != nil || v > maxVersionPart {
		return 0, fmt.Errorf("%q is larger than %d", p, maxVersionPart)
	}
	return v, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare returns -1, 0 or +1 as v is lower than, equal to or higher than w.
func (v Version) Compare(w Version) int {
	for _, d := range [3][2]uint64{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		switch {
		case d[0] < d[1]:
			return -1
		case d[0] > d[1]:
			return 1
		}
	}
	return 0
}

// Bump is the largest part that increased from one version to the next.
type Bump int

// Bumps, in increasing size.
const (
	BumpNone Bump = iota
	BumpPatch
	BumpMinor
	BumpMajor
)

func (b Bump) String() string {
	return [...]string{"none", "patch", "minor", "major"}[b]
}

// BumpFrom says which part of v increased over prev; BumpNone when v is
// not higher than prev.
func (v Version) BumpFrom(prev Version) Bump {
	switch {
	case v.Compare(prev) <= 0:
		return BumpNone
	case v.Major > prev.Major:
		return BumpMajor
	case v.Minor > prev.Minor:
		return BumpMinor
	default:
		return BumpPatch
	}
}

// Constraint selects versions for a spec's `models:` entry.
//
//	1.2.3   exactly 1.2.3
//	^1.2.3  >=1.2.3 <2.0.0; ^0.2.3 is >=0.2.3 <0.3.0; ^0.0.3 is exactly 0.0.3
//	^1.2    same as ^1.2.0
//	~1.2.3  >=1.2.3 <1.3.0
//	~1.2    same as ~1.2.0
//
// The zero-major rules are npm's: below 1.0.0 the leftmost non-zero part is
// treated as the breaking one.
type Constraint struct {
	op  byte // '=', '^' or '~'
	min Version
	raw string
}

// maxConstraintLen bounds a constraint string from a spec.
const maxConstraintLen = 64

// ParseConstraint parses an exact, caret or tilde constraint.
func ParseConstraint(s string) (Constraint, error) {
	if len(s) > maxConstraintLen {
		return Constraint{}, fmt.Errorf("%w: constraint longer than %d bytes", ErrVersion, maxConstraintLen)
	}
	c := Constraint{op: '=', raw: s}
	body := s
	if body != "" && (body[0] == '^' || body[0] == '~') {
		c.op, body = body[0], body[1:]
		if strings.Count(body, ".") == 1 {
			body += ".0"
		}
	}
	v, err := ParseVersion(body)
	if err != nil {
		return Constraint{}, fmt.Errorf("%w: constraint %q: want 1.2.3, ^1.2, ^1.2.3, ~1.2 or ~1.2.3", ErrVersion, clip(s))
	}
	c.min = v
	return c, nil
}

func (c Constraint) String() string { return c.raw }

// Match reports whether v satisfies the constraint.
func (c Constraint) Match(v Version) bool {
	if v.Compare(c.min) < 0 {
		return false
	}
	m := c.min
	switch c.op {
	case '^':
		switch {
		case m.Major > 0:
			return v.Major == m.Major
		case m.Minor > 0:
			return v.Major == 0 && v.Minor == m.Minor
		default:
			return v == m
		}
	case '~':
		return v.Major == m.Major && v.Minor == m.Minor
	default:
		return v == m
	}
}

// Best returns the highest version in vs that satisfies c, or false.
func (c Constraint) Best(vs []Version) (Version, bool) {
	var best Version
	found := false
	for _, v := range vs {
		if c.Match(v) && (!found || v.Compare(best) > 0) {
			best, found = v, true
		}
	}
	return best, found
}

// Min is the lowest version the constraint accepts.
func (c Constraint) Min() Version { return c.min }

// clip shortens hostile strings echoed in errors.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
