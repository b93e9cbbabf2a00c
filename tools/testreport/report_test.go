package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// follow runs Follow on a canned `go test -json` file (produced by go test
// on a small module: passes, a failure, a build failure, skips, a subtest
// skip, a package without tests).
func follow(t *testing.T, file string) (*Summary, string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	s, err := Follow(f, &out)
	if err != nil {
		t.Fatal(err)
	}
	return s, out.String()
}

func TestFollowProgressAndFailures(t *testing.T) {
	s, progress := follow(t, "testdata/gotest.json")
	for _, want := range []string{
		"ok  \texample.com/fake/a\t0.015s\n",
		"    b_test.go:7: got 3, want 4\n--- FAIL: TestBroken (0.00s)\nFAIL\texample.com/fake/b\t0.016s\n",
		"c/c.go:3:23: cannot use \"x\"",
		"FAIL\texample.com/fake/c [build failed]\n",
		"?   \texample.com/fake/d\t[no test files]\n",
	} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress lacks %q:\n%s", want, progress)
		}
	}
	for _, noise := range []string{"=== RUN", "TestFine", "PASS\n"} {
		if strings.Contains(progress, noise) {
			t.Errorf("progress has %q:\n%s", noise, progress)
		}
	}
	var rep bytes.Buffer
	if code := s.Report(&rep, nil, false); code != 1 {
		t.Errorf("exit %d with failed tests, want 1", code)
	}
	if !strings.HasSuffix(rep.String(), "FAIL\texample.com/fake/b\t0.016s\nFAIL\texample.com/fake/c [build failed]\nFAIL\n") {
		t.Errorf("report does not close with go test's FAIL lines:\n%s", rep.String())
	}
}

func TestReportSkips(t *testing.T) {
	s, _ := follow(t, "testdata/skips.json")
	want := []Skip{
		{"example.com/fake/a", "TestNeedsNomad", "NOMAD_ADDR is not set: no real Nomad agent"},
		{"example.com/fake/a", "TestNeedsPostgres", "looking for PostgreSQL ACCORD_TEST_PG is not set: start PostgreSQL"},
		{"example.com/fake/a", "TestTable/gpu", "no GPU"},
	}
	var rep bytes.Buffer
	if code := s.Report(&rep, nil, false); code != 0 {
		t.Fatalf("exit %d outside CI, want 0:\n%s", code, rep.String())
	}
	if len(s.Skips) != len(want) {
		t.Fatalf("skips %+v, want %+v", s.Skips, want)
	}
	for i := range want {
		if s.Skips[i] != want[i] {
			t.Errorf("skip %d: %+v, want %+v", i, s.Skips[i], want[i])
		}
		line := "  SKIP " + want[i].Package + " " + want[i].Test + ": " + want[i].Reason + "\n"
		if !strings.Contains(rep.String(), line) {
			t.Errorf("report lacks %q:\n%s", line, rep.String())
		}
	}
	if !strings.HasSuffix(rep.String(), "ok\t1 packages, 3 skipped tests\n") {
		t.Errorf("report does not close with ok:\n%s", rep.String())
	}

	// In CI a skip must be on the allow list.
	allow, err := ParseAllowList(strings.NewReader(`# package test reason
a TestNeedsNomad  needs a real Nomad agent, which CI cannot install
example.com/fake/a TestTable/*  needs a GPU
`))
	if err != nil {
		t.Fatal(err)
	}
	rep.Reset()
	if code := s.Report(&rep, allow, true); code != 1 {
		t.Fatalf("exit %d in CI with an unlisted skip, want 1:\n%s", code, rep.String())
	}
	if !strings.Contains(rep.String(), "TestNeedsPostgres: looking for PostgreSQL ACCORD_TEST_PG is not set: start PostgreSQL  [not allowed in CI]") ||
		strings.Contains(rep.String(), "no real Nomad agent  [not allowed") || strings.Contains(rep.String(), "no GPU  [not allowed") ||
		!strings.HasSuffix(rep.String(), "FAIL (skips)\n") {
		t.Errorf("CI report:\n%s", rep.String())
	}
	allow = append(allow, Allowed{Package: "a", Test: "TestNeedsPostgres", Reason: "test only"})
	rep.Reset()
	if code := s.Report(&rep, allow, true); code != 0 {
		t.Errorf("exit %d in CI with every skip allowed, want 0:\n%s", code, rep.String())
	}
}

func TestAllowListNeedsReasons(t *testing.T) {
	for _, bad := range []string{"a TestX", "a [ reason"} {
		if _, err := ParseAllowList(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestRepositoryAllowList checks that the allow list scripts/test.sh uses parses.
func TestRepositoryAllowList(t *testing.T) {
	f, err := os.Open("../../scripts/test-skips-allowed.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	allow, err := ParseAllowList(f)
	if err != nil || len(allow) == 0 {
		t.Fatalf("%d entries, %v", len(allow), err)
	}
}

// A test binary that crashes fails its package without a fail event for
// the test that was running: that test's output is printed anyway.
func TestFollowCrashedBinary(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"example.com/fake/e","Test":"TestCrash"}`,
		`{"Action":"output","Package":"example.com/fake/e","Test":"TestCrash","Output":"=== RUN   TestCrash\n"}`,
		`{"Action":"output","Package":"example.com/fake/e","Test":"TestCrash","Output":"panic: boom in a goroutine\n"}`,
		`{"Action":"output","Package":"example.com/fake/e","Output":"FAIL\texample.com/fake/e\t0.02s\n"}`,
		`{"Action":"fail","Package":"example.com/fake/e","Elapsed":0.02}`,
	}, "\n") + "\n"
	var out bytes.Buffer
	s, err := Follow(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "--- unfinished: example.com/fake/e TestCrash\n") || !strings.Contains(out.String(), "panic: boom in a goroutine\n") {
		t.Errorf("the crashed test's output is missing:\n%s", out.String())
	}
	if len(s.Failed) != 1 {
		t.Errorf("failed packages %v", s.Failed)
	}
}
