package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// Skip is one skipped test and the reason it logged.
type Skip struct {
	Package, Test, Reason string
}

// Summary is what Follow gathered from a run.
type Summary struct {
	Skips        []Skip
	Failed       []string // closing lines of failed packages ("FAIL\tpkg\t0.1s")
	Packages     int      // packages with a verdict
	TestsFailed  int
	sawFailLine  bool
	packageFails map[string]bool
}

// maxLine bounds one line of go test output; longer lines are an error.
const maxLine = 16 << 20

// Follow reads `go test -json` from r, writes progress to w (each package's
// ok/FAIL line, the output of failed tests, lines that are not JSON as they
// are) and returns the summary.
func Follow(r io.Reader, w io.Writer) (*Summary, error) {
	s := &Summary{packageFails: map[string]bool{}}
	out := map[string][]string{} // test key -> its output lines
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := e.Package + " " + e.Test
		switch {
		case e.Action == "output" && e.Test != "":
			out[key] = append(out[key], e.Output)
		case e.Action == "output" || e.Action == "build-output":
			s.packageLine(w, e)
		case e.Action == "fail" && e.Test != "":
			s.TestsFailed++
			for _, o := range out[key] {
				if !isFrame(o) || strings.HasPrefix(strings.TrimSpace(o), "--- FAIL") {
					fmt.Fprint(w, o)
				}
			}
		case e.Action == "skip" && e.Test != "":
			s.Skips = append(s.Skips, Skip{Package: e.Package, Test: e.Test, Reason: reason(out[key])})
		case e.Action == "fail":
			s.packageFails[e.Package] = true
			unfinished(w, out, e.Package)
		}
		if e.Test != "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip") {
			delete(out, key)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("testreport: read go test output: %w", err)
	}
	return s, nil
}

// unfinished prints the output of pkg's tests that never ended: a test
// binary that crashed (a panic in a goroutine, os.Exit, a timeout) fails
// its package without failing the test that was running.
func unfinished(w io.Writer, out map[string][]string, pkg string) {
	var keys []string
	for k := range out {
		if strings.HasPrefix(k, pkg+" ") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "--- unfinished: %s\n", k)
		for _, o := range out[k] {
			fmt.Fprint(w, o)
		}
		delete(out, k)
	}
}

// packageLine prints a package-level line: its ok/FAIL verdict, a panic,
// build errors; "PASS" and "FAIL" alone are go test's per-binary noise.
func (s *Summary) packageLine(w io.Writer, e event) {
	o := e.Output
	switch strings.TrimSpace(o) {
	case "PASS", "":
		return
	case "FAIL":
		s.sawFailLine = true
		return
	}
	fmt.Fprint(w, o)
	switch {
	case strings.HasPrefix(o, "ok"), strings.HasPrefix(o, "?"):
		s.Packages++
	case strings.HasPrefix(o, "FAIL\t"):
		s.Packages++
		s.Failed = append(s.Failed, strings.TrimRight(o, "\n"))
	}
}

// isFrame reports whether o is one of go test's own framing lines.
func isFrame(o string) bool {
	t := strings.TrimSpace(o)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// reason joins what a skipped test logged, without go test's framing and
// the file:line prefix of t.Skip.
func reason(lines []string) string {
	var parts []string
	for _, o := range lines {
		if isFrame(o) {
			continue
		}
		t := strings.TrimSpace(o)
		if i := strings.Index(t, ": "); i > 0 && strings.Contains(t[:i], ".go:") && !strings.Contains(t[:i], " ") {
			t = t[i+2:]
		}
		if t != "" {
			parts = append(parts, t)
		}
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}

// Allowed is one allow-list entry: a test CI may skip, and why.
type Allowed struct {
	Package, Test, Reason string
}

// ParseAllowList reads lines of "PACKAGE TEST REASON..."; PACKAGE is an
// import path or its suffix after the module path, TEST a test name or a
// path.Match pattern (Parent/*). Every entry must give a reason.
func ParseAllowList(r io.Reader) ([]Allowed, error) {
	var out []Allowed
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d: want PACKAGE TEST REASON, got %q", n, line)
		}
		if _, err := path.Match(f[1], ""); err != nil {
			return nil, fmt.Errorf("line %d: test pattern %q: %w", n, f[1], err)
		}
		out = append(out, Allowed{Package: f[0], Test: f[1], Reason: strings.Join(f[2:], " ")})
	}
	return out, sc.Err()
}

// allows reports whether a lets CI skip s.
func (a Allowed) allows(s Skip) bool {
	if s.Package != a.Package && !strings.HasSuffix(s.Package, "/"+a.Package) {
		return false
	}
	ok, _ := path.Match(a.Test, s.Test)
	return ok
}

// Report prints the skipped tests, with those the allow list does not name
// marked when ci is set, then the closing lines, and returns the exit code.
func (s *Summary) Report(w io.Writer, allow []Allowed, ci bool) int {
	sort.Slice(s.Skips, func(i, j int) bool {
		a, b := s.Skips[i], s.Skips[j]
		return a.Package < b.Package || a.Package == b.Package && a.Test < b.Test
	})
	var unexpected []Skip
	if len(s.Skips) > 0 {
		fmt.Fprintf(w, "\nskipped tests (%d):\n", len(s.Skips))
	}
	for _, sk := range s.Skips {
		mark := ""
		if ci && !allowed(allow, sk) {
			mark = "  [not allowed in CI]"
			unexpected = append(unexpected, sk)
		}
		fmt.Fprintf(w, "  SKIP %s %s: %s%s\n", sk.Package, sk.Test, sk.Reason, mark)
	}
	code := 0
	if len(unexpected) > 0 {
		fmt.Fprintf(w, "\n%d test(s) skipped in CI that CI can run; fix their prerequisites, or list them with a reason CI cannot satisfy in the allow list\n", len(unexpected))
		code = 1
	}
	fmt.Fprintln(w)
	for _, f := range s.Failed {
		fmt.Fprintln(w, f)
	}
	switch {
	case len(s.Failed) > 0 || s.TestsFailed > 0 || len(s.packageFails) > 0 || s.sawFailLine:
		fmt.Fprintln(w, "FAIL")
		return 1
	case code != 0:
		fmt.Fprintln(w, "FAIL (skips)")
		return code
	}
	fmt.Fprintf(w, "ok\t%d packages, %d skipped tests\n", s.Packages, len(s.Skips))
	return 0
}

func allowed(allow []Allowed, s Skip) bool {
	for _, a := range allow {
		if a.allows(s) {
			return true
		}
	}
	return false
}
