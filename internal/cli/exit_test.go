package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

var errGone = errors.New("test: no such widget")

func TestClassOf(t *testing.T) {
	RegisterNotFound(errGone)
	for _, c := range []struct {
		err   error
		code  int
		class string
	}{
		{errors.New("boom"), ExitError, ClassError},
		{fmt.Errorf("open x: %w", fs.ErrNotExist), ExitError, ClassNotFound},
		{fmt.Errorf("widget 7: %w", errGone), ExitError, ClassNotFound},
		{Usagef("bad flag"), ExitUsage, ClassUsage},
		{Usage(fmt.Errorf("input: %w", fs.ErrNotExist)), ExitUsage, ClassUsage}, // an explicit class wins
		{fmt.Errorf("run: %w", WithCode(ExitVerification, errors.New("audit"))), ExitVerification, ClassVerification},
		{NotFound(errors.New("job x")), ExitError, ClassNotFound},
	} {
		if code, class := ExitCode(c.err), ClassOf(c.err); code != c.code || class != c.class {
			t.Errorf("%v: exit %d class %s, want %d %s", c.err, code, class, c.code, c.class)
		}
	}
	seen := map[int]bool{}
	for _, c := range ExitCodes {
		if seen[c.Code] || c.Class == "" || c.Meaning == "" {
			t.Errorf("exit-code table row %+v repeats a code or lacks a class or meaning", c)
		}
		seen[c.Code] = true
	}
}

func TestJSONRequested(t *testing.T) {
	for args, want := range map[string]bool{
		"--bogus --json version": true,
		"--json=true x":          true,
		"x -- --json":            false,
		"--json=false x":         false,
		"x":                      false,
	} {
		if got := jsonRequested(strings.Fields(args)); got != want {
			t.Errorf("%q: %v, want %v", args, got, want)
		}
	}
}
