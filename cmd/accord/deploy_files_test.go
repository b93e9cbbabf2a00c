package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The systemd units and Nomad job files under deploy/ run accord with
// commands and flags that exist: a renamed flag breaks a test, not a
// deployment.
func TestDeployFilesUseRealFlags(t *testing.T) {
	files, err := filepath.Glob("../../deploy/*/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy files: %v %v", files, err)
	}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range accordInvocations(string(b)) {
			checked++
			c, rest, err := root.Find(args)
			if err != nil || c == root {
				t.Errorf("%s: accord %s: no such command", filepath.Base(f), strings.Join(args, " "))
				continue
			}
			for _, a := range rest {
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if !strings.HasPrefix(a, "--") {
					continue
				}
				if c.Flags().Lookup(name) == nil && c.InheritedFlags().Lookup(name) == nil {
					t.Errorf("%s: accord %s has no flag --%s", filepath.Base(f), c.CommandPath(), name)
				}
			}
		}
	}
	if checked < 8 {
		t.Fatalf("found %d accord invocations in deploy/, want every unit and job file's", checked)
	}
}

var (
	execStart = regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/accord ((?:[^\n]*\\\n)*[^\n]*)`)
	nomadArgs = regexp.MustCompile(`(?s)command = "local/accord"\s*args = \[(.*?)\]`)
	quoted    = regexp.MustCompile(`"([^"]*)"`)
)

// accordInvocations finds the accord command lines of a systemd unit
// (ExecStart, with continuations) or a Nomad job (the quoted args; HCL
// variables are skipped, as are ${...} values).
func accordInvocations(s string) [][]string {
	var out [][]string
	for _, m := range execStart.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.Fields(strings.ReplaceAll(m[1], "\\\n", " ")))
	}
	for _, m := range nomadArgs.FindAllStringSubmatch(s, -1) {
		var args []string
		for _, q := range quoted.FindAllStringSubmatch(m[1], -1) {
			args = append(args, q[1])
		}
		out = append(out, args)
	}
	return out
}
