// Command testreport turns `go test -json` into readable progress and a
// report of the tests that were skipped, with their reasons.
//
//	go test -json ./... | go run ./tools/testreport -allow scripts/test-skips-allowed.txt
//
// It prints each package's ok/FAIL line as it finishes and the output of
// every failed test, then the skipped tests, then go test's closing lines
// again (the failed packages and a final ok or FAIL) so that a reader of
// the last lines sees the verdict. It exits 1 when a test failed, or when
// -ci is set (default: $CI is "true") and a test was skipped that the allow
// list does not name: a skip in CI must be one CI cannot avoid.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	allowPath := flag.String("allow", "", "allow list: lines of PACKAGE TEST REASON (# comments)")
	ci := flag.Bool("ci", os.Getenv("CI") == "true", "fail when a test not on the allow list was skipped")
	flag.Parse()
	var allow []Allowed
	if *allowPath != "" {
		f, err := os.Open(*allowPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
		allow, err = ParseAllowList(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testreport: %s: %v\n", *allowPath, err)
			os.Exit(2)
		}
	}
	sum, err := Follow(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	os.Exit(sum.Report(os.Stdout, allow, *ci))
}
