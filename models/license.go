package models

import (
	"fmt"
	"regexp"
	"strings"
)

// maxLicenseLen bounds an SPDX expression.
const maxLicenseLen = 256

// spdxIDRE is an SPDX short identifier (Apache-2.0, GPL-2.0-or-later, a
// trailing + for "or later") or a LicenseRef-/DocumentRef- reference.
var spdxIDRE = regexp.MustCompile(`^(((DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+)|[A-Za-z0-9][A-Za-z0-9.-]*\+?)$`)

// CheckLicense checks the syntax of an SPDX licence expression: ids joined
// by AND / OR, an optional "WITH exception" after an id, and parentheses.
// It checks syntax only, not that the id is on the SPDX list, so a new
// licence does not need a new Accord.
func CheckLicense(expr string) error {
	if expr == "" || len(expr) > maxLicenseLen {
		return fmt.Errorf("licence must be an SPDX expression of 1-%d bytes", maxLicenseLen)
	}
	p := &spdxParser{toks: tokenizeSPDX(expr)}
	if err := p.expr(0); err != nil {
		return fmt.Errorf("%q is not an SPDX expression: %v", clip(expr), err)
	}
	if p.i != len(p.toks) {
		return fmt.Errorf("%q is not an SPDX expression: unexpected %q", clip(expr), p.toks[p.i])
	}
	return nil
}

func tokenizeSPDX(s string) []string {
	s = strings.NewReplacer("(", " ( ", ")", " ) ").Replace(s)
	return strings.Fields(s)
}

type spdxParser struct {
	toks []string
	i    int
}

// maxSPDXDepth bounds parenthesis nesting.
const maxSPDXDepth = 8

func (p *spdxParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

// expr := term (("AND" | "OR") term)*
func (p *spdxParser) expr(depth int) error {
	if depth > maxSPDXDepth {
		return fmt.Errorf("nested deeper than %d", maxSPDXDepth)
	}
	if err := p.term(depth); err != nil {
		return err
	}
	for p.peek() == "AND" || p.peek() == "OR" {
		p.i++
		if err := p.term(depth); err != nil {
			return err
		}
	}
	return nil
}

// term := "(" expr ")" | id ["WITH" id]
func (p *spdxParser) term(depth int) error {
	t := p.peek()
	switch {
	case t == "":
		return fmt.Errorf("expression ends early")
	case t == "(":
		p.i++
		if err := p.expr(depth + 1); err != nil {
			return err
		}
		if p.peek() != ")" {
			return fmt.Errorf("missing )")
		}
		p.i++
		return nil
	case !isSPDXID(t):
		return fmt.Errorf("%q is not a licence id", clip(t))
	}
	p.i++
	if p.peek() == "WITH" {
		p.i++
		if !isSPDXID(p.peek()) {
			return fmt.Errorf("WITH needs an exception id")
		}
		p.i++
	}
	return nil
}

func isSPDXID(t string) bool {
	switch t {
	case "AND", "OR", "WITH", "(", ")", "":
		return false
	}
	if strings.HasSuffix(t, "Ref-") {
		return false // LicenseRef- or DocumentRef- without its name
	}
	return spdxIDRE.MatchString(t)
}
