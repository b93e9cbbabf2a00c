package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
)

// testCommit is stamped into the test binary, for builds without Go's VCS stamp.
const testCommit = "c0ffee1"

// bin is the accord binary that the CLI tests run, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	cli.Setup(root)
	dir, err := os.MkdirTemp("", "accord-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "accord")
	build := exec.Command("go", "build", "-ldflags", "-X main.commit="+testCommit, "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build accord:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

// lastLine is stdout's last line.
func (r result) lastLine() string {
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	return lines[len(lines)-1]
}

// errorObject decodes the last stdout line as a JSON error.
func (r result) errorObject(t *testing.T) cli.ErrorObject {
	t.Helper()
	var o cli.ErrorObject
	if err := json.Unmarshal([]byte(r.lastLine()), &o); err != nil || o.Error.Message == "" {
		t.Fatalf("last stdout line %q is not an error object (%v); stderr %s", r.lastLine(), err, r.stderr)
	}
	return o
}

// run runs the built binary with args in a fresh home, stdin from stdin.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Env = append(os.Environ(), "ACCORD_HOME="+t.TempDir(), "ACCORD_TEMPORAL_ADDRESS=127.0.0.1:1")
	c.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// commands returns every command below root with its words (path without "accord").
func commands() map[string]*cobra.Command {
	out := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		out[strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), root.Name()), " ")] = c
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return out
}

// TestEveryCommandKeepsTheUsageContract walks the whole command tree: an
// unknown flag is a usage error (2), so is a command that needs arguments
// run without them, and a group given an unknown subcommand; none of these
// prints help on stdout.
func TestEveryCommandKeepsTheUsageContract(t *testing.T) {
	for path, c := range commands() {
		words := strings.Fields(path)
		t.Run(strings.ReplaceAll(path, " ", "_"), func(t *testing.T) {
			r := run(t, "", append(words, "--no-such-flag")...)
			if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "unknown flag") {
				t.Errorf("unknown flag: exit %d, stderr %q", r.code, r.stderr)
			}
			if c.HasSubCommands() && strings.Contains(c.Use, " ") {
				// `accord deploy SPEC` also has subcommands (deploy status,
				// ...): its argument is a spec, so it keeps the argument
				// contract rather than the group's.
				r := run(t, "", words...)
				if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "usage: ") {
					t.Errorf("no arguments: exit %d, stderr %q", r.code, r.stderr)
				}
				return
			}
			if c.HasSubCommands() {
				r := run(t, "", append(words, "bogus")...)
				if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "valid subcommands") || r.stdout != "" {
					t.Errorf("unknown subcommand: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
				}
				r = run(t, "", words...)
				if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "needs a subcommand") {
					t.Errorf("no subcommand: exit %d, stderr %q", r.code, r.stderr)
				}
				return
			}
			if c.Args != nil && c.Args(c, nil) != nil {
				r := run(t, "", words...)
				if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "usage: ") {
					t.Errorf("no arguments: exit %d, stderr %q", r.code, r.stderr)
				}
			}
		})
	}
}

// TestEveryCommandHasExamples checks that every --help page has an Examples
// section.
func TestEveryCommandHasExamples(t *testing.T) {
	for path, c := range commands() {
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example", "accord "+path)
		}
	}
	r := run(t, "", "auction", "solve", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Examples:\n  accord auction solve") {
		t.Fatalf("auction solve --help: exit %d\n%s", r.code, r.stdout)
	}
}

// TestUsageErrors checks usage errors that the tree walk does not reach:
// a missing required flag, extra arguments, a bare "accord".
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"policy", "test", "p.yaml"},             // --input is required
		{"auction", "solve", "a.json", "b.json"}, // one file
		{},                                       // no command
		{"--json", "auction", "bogus"},
		{"help", "auction", "bogus"}, // no such help topic
	} {
		r := run(t, "", args...)
		if r.code != cli.ExitUsage {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

// TestExitCodesDocumented checks that README's exit-code table is the one
// in internal/cli.
func TestExitCodesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, c := range cli.ExitCodes {
		row := fmt.Sprintf("| %d | `%s` | %s |", c.Code, c.Class, c.Meaning)
		if !strings.Contains(readme, row) {
			t.Errorf("README lacks the exit-code row %s", row)
		}
	}
}

// TestJSONErrors checks that with --json the last line of stdout is one
// JSON object when a command fails, with the class and the exit code.
func TestJSONErrors(t *testing.T) {
	dir := t.TempDir()
	malformed := filepath.Join(dir, "malformed.json")
	huge := filepath.Join(dir, "huge.json")
	os.WriteFile(malformed, []byte("{\"goods\": 2,\n  \"bids\": [}\n"), 0o644)
	os.WriteFile(huge, []byte(`{"goods": 2, "bids": [{"bidder": "a", "goods": [0], "price": 1e308},
		{"bidder": "b", "goods": [1], "price": 1e308}]}`), 0o644)
	for _, c := range []struct {
		args  []string
		code  int
		class string
		msg   string
	}{
		{[]string{"--json", "auction", "solve", malformed}, cli.ExitUsage, cli.ClassUsage, "2:12: invalid character"},
		{[]string{"--json", "auction", "solve", huge}, cli.ExitUsage, cli.ClassUsage, "price 1e+308 is above the most a bid may offer"},
		{[]string{"--json", "pool", "detach", "nosuch"}, cli.ExitError, cli.ClassNotFound, "no such pool"},
		{[]string{"--json", "receipt", "export", "job-nope", "-o", filepath.Join(dir, "r.json")}, cli.ExitError, cli.ClassNotFound, "not found"},
		{[]string{"--json", "auction", "solve", filepath.Join(dir, "nosuch.json")}, cli.ExitError, cli.ClassNotFound, "no such file"},
		{[]string{"--json", "spec", "sign", filepath.Join(dir, "nosuch.md"), "--key", "k"}, cli.ExitError, cli.ClassNotFound, "no such file"},
		{[]string{"--json", "token", "create", "--tenant", "nosuch"}, cli.ExitError, cli.ClassNotFound, "unknown tenant"},
		{[]string{"--bogus", "--json", "version"}, cli.ExitUsage, cli.ClassUsage, "unknown flag: --bogus"},
		{[]string{"status", "job-x", "--json"}, cli.ExitError, cli.ClassError, "accord dev"},
	} {
		r := run(t, "", c.args...)
		o := r.errorObject(t)
		if r.code != c.code || o.Error.ExitCode != c.code || o.Error.Class != c.class || !strings.Contains(o.Error.Message, c.msg) {
			t.Errorf("%v: exit %d, %+v; want exit %d class %s message ~%q", c.args, r.code, o, c.code, c.class, c.msg)
		}
		if strings.Contains(r.stdout, "+Inf") {
			t.Errorf("%v: stdout %q", c.args, r.stdout)
		}
	}
	// A command that printed its result leaves it as the last line.
	spec := filepath.Join(dir, "bad.md")
	os.WriteFile(spec, []byte("---\naccord: v1\n---\n"), 0o644)
	r := run(t, "", "--json", "spec", "lint", spec)
	var lint struct{ OK *bool }
	if r.code != cli.ExitInvalidSpec || json.Unmarshal([]byte(r.lastLine()), &lint) != nil || lint.OK == nil || *lint.OK {
		t.Fatalf("spec lint --json: exit %d, last line %q", r.code, r.lastLine())
	}
}

// TestVersionPrintsCommit checks that `accord version` names the commit it
// was built from (Go's VCS stamp, else the one the build passes with -X).
func TestVersionPrintsCommit(t *testing.T) {
	r := run(t, "", "version", "--json")
	var v versionInfo
	if r.code != 0 || json.Unmarshal([]byte(r.lastLine()), &v) != nil || v.Commit == "" {
		t.Fatalf("version --json: exit %d, %q", r.code, r.stdout)
	}
	r = run(t, "", "version")
	if !strings.Contains(r.stdout, "commit "+v.Commit) {
		t.Fatalf("version: %q lacks commit %s", r.stdout, v.Commit)
	}
}

// TestEnvironmentSetsFlagDefaults checks that the variables in
// deploy/config/accord.env reach the flags: a TLS CA that does not exist
// fails the dial as configuration, before any connection.
func TestEnvironmentSetsFlagDefaults(t *testing.T) {
	c := exec.Command(bin, "status", "job-x")
	c.Env = append(os.Environ(), "ACCORD_HOME="+t.TempDir(), "ACCORD_TLS_CA="+filepath.Join(t.TempDir(), "no-ca.pem"))
	out, err := c.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "tls ca") || !strings.Contains(string(out), "no-ca.pem") {
		t.Fatalf("ACCORD_TLS_CA ignored: %v\n%s", err, out)
	}
	c = exec.Command(bin, "worker", "--help")
	c.Env = append(os.Environ(), "ACCORD_QUEUES=accord-execution", "ACCORD_METRICS_ADDR=127.0.0.1:19464")
	out, _ = c.CombinedOutput()
	if !strings.Contains(string(out), `[accord-execution]`) || !strings.Contains(string(out), `"127.0.0.1:19464"`) {
		t.Fatalf("ACCORD_QUEUES / ACCORD_METRICS_ADDR ignored:\n%s", out)
	}
}
