package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accordmesh/accord/runtimes/containerd"
)

// accordBin is the binary TestMain built.
func accordBin(*testing.T) string { return bin }

// runIn runs the binary with ACCORD_HOME=home and returns what it printed.
func runIn(t *testing.T, home string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, accordBin(t), args...)
	cmd.Env = append(os.Environ(), "ACCORD_HOME="+home, "ACCORD_LEDGER_DSN=", "ACCORD_TEMPORAL_ADDRESS=127.0.0.1:1")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("accord %v: %v", args, err)
	}
	return r
}

// ok runs the binary and fails the test unless it exits 0.
func ok(t *testing.T, home string, args ...string) string {
	t.Helper()
	r := runIn(t, home, args...)
	if r.code != 0 {
		t.Fatalf("accord %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs the binary and fails the test unless it exits non-zero with
// stderr containing want.
func fails(t *testing.T, home, want string, args ...string) result {
	t.Helper()
	r := runIn(t, home, args...)
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("accord %s: exit %d, stderr %q; want a failure mentioning %q", strings.Join(args, " "), r.code, r.stderr, want)
	}
	return r
}

func lastJSON(t *testing.T, out string, v any) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
}

func contains(t *testing.T, out, want string) {
	t.Helper()
	if !strings.Contains(out, want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
}

// TestMoneyInMajorUnits: people read and type major units with the
// currency's decimals; JSON carries minor units under *_minor names.
func TestMoneyInMajorUnits(t *testing.T) {
	home := t.TempDir()
	contains(t, ok(t, home, "spec", "compile", "../../examples/quickstart.md"), "max cost 5.00 USD")
	contains(t, ok(t, home, "ledger", "deposit", "demo", "500"), "tenant:demo balance 500.00 USD")
	contains(t, ok(t, home, "ledger", "deposit", "demo", "0.25"), "balance 500.25 USD")
	contains(t, ok(t, home, "ledger", "deposit", "demo", "1 USD"), "balance 501.25 USD")
	contains(t, ok(t, home, "ledger", "deposit", "demo", "500", "--currency", "JPY"), "balance 500 JPY")
	contains(t, ok(t, home, "ledger", "balance", "tenant:demo"), "tenant:demo\t501.25 USD")
	var bal struct {
		Balances []struct {
			Currency     string `json:"currency"`
			BalanceMinor int64  `json:"balance_minor"`
		} `json:"balances"`
	}
	lastJSON(t, ok(t, home, "--json", "ledger", "balance", "tenant:demo", "--currency", "USD"), &bal)
	if len(bal.Balances) != 1 || bal.Balances[0].BalanceMinor != 50125 {
		t.Fatalf("--json balance: %+v", bal)
	}
	contains(t, ok(t, home, "ledger", "statement", "demo"), "balance tenant:demo: 501.25 USD")
	ok(t, home, "tenant", "put", "demo", "--spend-quota", "500")
	contains(t, ok(t, home, "tenant", "list"), "spend 0.00/500.00 USD")
	contains(t, ok(t, home, "provider", "bond", "local", "100.00"), "bond:local balance 100.00 USD")
	for _, bad := range []struct{ amount, want string }{
		{"5.001", "USD has 2 decimals"}, {"NaN", "want a number"}, {"1e3", "want a number"},
		{"99999999999999999999", "too large"}, {"5 EUR", "is in EUR"},
	} {
		if r := fails(t, home, bad.want, "ledger", "deposit", "demo", bad.amount, "--currency", "USD"); r.code != 2 {
			t.Fatalf("deposit %s: exit %d, want 2 (usage)", bad.amount, r.code)
		}
	}
	fails(t, home, "amount must be positive", "ledger", "deposit", "demo", "-5")
	fails(t, home, "amount must be positive", "ledger", "deposit", "demo", "--", "-5")
	fails(t, home, "amount must be positive", "provider", "bond", "local", "-5.00")
}

// TestRunWithoutFunds: the first accord run on a new home fails before
// anything starts, saying the balance, the escrow needed and the command
// that funds it; that command then makes the check pass.
func TestRunWithoutFunds(t *testing.T) {
	home := t.TempDir()
	start := time.Now()
	r := fails(t, home, "insufficient funds", "run", "../../examples/quickstart.md")
	contains(t, r.stderr, "tenant demo has 0.00 USD")
	contains(t, r.stderr, "the escrow needs up to 5.00 USD")
	contains(t, r.stderr, "accord ledger deposit demo 5.00 --currency USD")
	if strings.Contains(r.stdout, "starting the local stack") || time.Since(start) > 30*time.Second {
		t.Fatalf("the stack started before the funds check:\n%s", r.stdout)
	}
	ok(t, home, "ledger", "deposit", "demo", "3.00")
	contains(t, fails(t, home, "insufficient funds", "run", "../../examples/quickstart.md").stderr,
		"accord ledger deposit demo 2.00 --currency USD")
}

// TestTenantPutKeepsWhatItIsNotTold: an update changes only the flags given.
func TestTenantPutKeepsWhatItIsNotTold(t *testing.T) {
	home := t.TempDir()
	var key struct {
		ID string `json:"id"`
	}
	lastJSON(t, ok(t, home, "--json", "keys", "generate", "-o", filepath.Join(t.TempDir(), "k")), &key)
	ok(t, home, "tenant", "put", "demo", "--spend-quota", "500", "--require-signed", "--signer", key.ID)
	ok(t, home, "tenant", "put", "demo", "--gpu-hours-quota", "5")
	var list struct {
		Tenants []tenantView `json:"tenants"`
	}
	lastJSON(t, ok(t, home, "--json", "tenant", "list"), &list)
	if len(list.Tenants) != 1 {
		t.Fatalf("tenants: %+v", list)
	}
	got := list.Tenants[0]
	if !got.RequireSigned || len(got.Signers) != 1 || got.Signers[0] != key.ID || got.SpendQuotaMinor != 50000 ||
		got.GPUHoursQuota != 5 || got.Currency != "USD" || got.Period != "month" {
		t.Fatalf("after --gpu-hours-quota 5: %+v", got)
	}
	ok(t, home, "tenant", "put", "demo", "--require-signed=false")
	lastJSON(t, ok(t, home, "--json", "tenant", "list"), &list)
	if got := list.Tenants[0]; got.RequireSigned || got.SpendQuotaMinor != 50000 || got.GPUHoursQuota != 5 {
		t.Fatalf("after --require-signed=false: %+v", got)
	}
}

// TestOneValidatorPerName: what the spec checker rejects is rejected
// everywhere else too.
func TestOneValidatorPerName(t *testing.T) {
	home := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "k")
	ok(t, home, "keys", "generate", "-o", keyFile)
	for _, c := range []struct {
		want string
		args []string
	}{
		{"invalid tenant name", []string{"tenant", "put", "Demo"}},
		{"invalid tenant name", []string{"ledger", "deposit", "Demo", "5"}},
		{"invalid currency code", []string{"ledger", "deposit", "demo", "5", "--currency", "usd"}},
		{"invalid currency code", []string{"tenant", "put", "demo", "--currency", "usd"}},
		{"invalid key ID", []string{"tenant", "put", "demo", "--signer", "deadbeef"}},
		{"has no signer", []string{"tenant", "put", "demo", "--require-signed"}},
		{"invalid tenant name", []string{"keys", "trust", keyFile + ".pub", "--scope", "spec:Demo"}},
	} {
		if r := fails(t, home, c.want, c.args...); r.code != 2 {
			t.Errorf("accord %s: exit %d, want 2", strings.Join(c.args, " "), r.code)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "trust.json")); err == nil {
		t.Fatal("a rejected scope was saved to the trust store")
	}
	// A key trusted for the tenant's specs satisfies --require-signed.
	ok(t, home, "keys", "trust", keyFile+".pub", "--scope", "spec:demo")
	ok(t, home, "tenant", "put", "demo", "--require-signed")
}

// TestReadOnlyCommandsWriteNothing: on an empty home, read-only commands
// fail cleanly or report nothing, and create no file.
func TestReadOnlyCommandsWriteNothing(t *testing.T) {
	home := t.TempDir()
	out := filepath.Join(t.TempDir(), "receipt.json")
	policy := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(policy, []byte("policy: p\nversion: 1\nrules:\n  - name: r\n    on: admission\n    expr: \"true\"\n    message: never\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := map[string]string{"keys list": "no trusted keys", "tenant list": "no tenants", "pool list": "no pools"}
	for _, args := range [][]string{
		{"receipt", "export", "job-nope", "-o", out},
		{"audit", "verify", "job-nope"},
		{"audit", "search", "--job", "job-nope"},
		{"ledger", "balance", "tenant:demo"},
		{"ledger", "statement", "demo"},
		{"ledger", "check"},
		{"keys", "list"},
		{"tenant", "list"},
		{"pool", "list"},
		{"policy", "test", policy, "--input", "../../examples/quickstart.md"},
		{"spec", "lint", "../../examples/quickstart.md"},
		{"spec", "compile", "../../examples/quickstart.md"},
		{"status", "job-nope"},
		{"list"},
		{"logs", "job-nope"},
		{"runtime", "stop"},
	} {
		r := runIn(t, home, args...)
		name := strings.Join(args, " ")
		if want, ok := empty[name]; ok && (r.code != 0 || !strings.Contains(r.stdout, want)) {
			t.Errorf("accord %s: exit %d, %q; want %q", name, r.code, r.stdout, want)
		}
		if strings.Contains(r.stderr, "panic") {
			t.Errorf("accord %s panicked:\n%s", name, r.stderr)
		}
		var made []string
		filepath.WalkDir(home, func(p string, _ fs.DirEntry, _ error) error {
			if p != home {
				made = append(made, p)
			}
			return nil
		})
		if len(made) > 0 {
			t.Fatalf("accord %s (exit %d) wrote %v", name, r.code, made)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("receipt export wrote a receipt for a job that does not exist")
	}
}

// TestBondNeedsKnownProvider: provider bond does not invent accounts.
func TestBondNeedsKnownProvider(t *testing.T) {
	home := t.TempDir()
	fails(t, home, `unknown provider "nosuchprov"`, "provider", "bond", "nosuchprov", "100")
	var bal struct {
		Balances []any `json:"balances"`
	}
	lastJSON(t, ok(t, home, "--json", "ledger", "balance", "bond:nosuchprov"), &bal)
	if len(bal.Balances) != 0 {
		t.Fatalf("a refused bond created an account: %+v", bal)
	}
	contains(t, ok(t, home, "provider", "bond", "nosuchprov", "100", "--create"), "bond:nosuchprov balance 100.00 USD")
	contains(t, ok(t, home, "provider", "bond", "nosuchprov", "1"), "balance 101.00 USD")
}

// TestLintWarnings: implausible specs lint with warnings, exit 0.
func TestLintWarnings(t *testing.T) {
	out := ok(t, t.TempDir(), "spec", "lint", "../../specs/testdata/warnings/implausible.md")
	for _, want := range []string{"warning: task train asks for 1024 GPUs", "warning: max_price 0.01 USD", "no-such-image.tar does not exist", "implausible.md: ok"} {
		contains(t, out, want)
	}
}

// TestRuntimeStop: accord runtime stop ends the private containerd daemon
// left running under the home.
func TestRuntimeStop(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Skip("needs the containerd binary")
	}
	home := t.TempDir()
	dir := containerd.DaemonDir(filepath.Join(home, "containerd"))
	d, err := containerd.StartDaemon(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { containerd.StopDaemon(dir, time.Second) })
	contains(t, ok(t, home, "runtime", "stop"), "stopped containerd")
	if _, running := containerd.RunningDaemon(dir); running {
		t.Fatalf("daemon %d still running", d.PID)
	}
	if err := syscall.Kill(d.PID, 0); err == nil {
		t.Fatalf("pid %d still exists", d.PID)
	}
	contains(t, ok(t, home, "runtime", "stop"), "no containerd daemon running")
}

// TestRunStopsTheDaemonItStarted: accord run stops the private containerd
// it started once its job is done, and leaves one it found running.
func TestRunStopsTheDaemonItStarted(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Skip("needs the containerd binary")
	}
	spec := filepath.Join(t.TempDir(), "missing-image.md")
	doc := "---\naccord: v1\nname: missing-image\nversion: 1.0.0\ntenant: demo\n---\n\n## Tasks\n\n```yaml\n" +
		"train:\n  image: oci-archive:missing.tar\n  command: [\"/bin/true\"]\n  resources: {cpu: 1, memory: 64MiB, max_duration: 1m}\n  retry: {attempts: 1}\n```\n\n" +
		"## Budget\n\n```yaml\nmax_price: 100\ncurrency: USD\n```\n"
	if err := os.WriteFile(spec, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	dir := containerd.DaemonDir(filepath.Join(home, "containerd"))
	t.Cleanup(func() { containerd.StopDaemon(dir, time.Second) })
	r := runIn(t, home, "run", spec, "--fund", "1.00")
	if !strings.Contains(r.stdout, "job ") {
		t.Fatalf("accord run did not run the job (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if pid, running := containerd.RunningDaemon(dir); running {
		t.Fatalf("accord run left its containerd (pid %d) running", pid)
	}
	d, err := containerd.StartDaemon(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	runIn(t, home, "run", spec)
	if pid, running := containerd.RunningDaemon(dir); !running || pid != d.PID {
		t.Fatalf("accord run stopped a containerd it did not start (pid %d, running %v)", d.PID, running)
	}
}

// TestDevStopsTheDaemonOnSignal: accord dev stops the containerd it started
// on SIGTERM (as on Ctrl-C), and keeps it with --keep-containerd.
func TestDevStopsTheDaemonOnSignal(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Skip("needs the containerd binary")
	}
	for _, keep := range []bool{false, true} {
		home := t.TempDir()
		dir := containerd.DaemonDir(filepath.Join(home, "containerd"))
		t.Cleanup(func() { containerd.StopDaemon(dir, time.Second) })
		args := []string{"dev", "--port", "0", "--ui-port", "0", "--metrics-addr", "127.0.0.1:0", "--rekor-listen", ""}
		if keep {
			args = append(args, "--keep-containerd")
		}
		cmd := exec.Command(accordBin(t), args...)
		cmd.Env = append(os.Environ(), "ACCORD_HOME="+home)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan bool, 1)
		go func() {
			b := make([]byte, 4096)
			var seen strings.Builder
			for {
				n, err := out.Read(b)
				seen.Write(b[:n])
				if strings.Contains(seen.String(), "Ctrl-C stops") {
					ready <- true
					io.Copy(io.Discard, out)
					return
				}
				if err != nil {
					ready <- false
					return
				}
			}
		}()
		select {
		case ok := <-ready:
			if !ok {
				cmd.Wait()
				t.Fatal("accord dev exited before it was up")
			}
		case <-time.After(90 * time.Second):
			cmd.Process.Kill()
			t.Fatal("accord dev did not come up in 90s")
		}
		pid, running := containerd.RunningDaemon(dir)
		if !running {
			t.Fatal("accord dev runs no containerd")
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("accord dev after SIGTERM: %v", err)
		}
		if _, still := containerd.RunningDaemon(dir); still != keep {
			t.Fatalf("--keep-containerd=%v: containerd %d running after dev stopped: %v", keep, pid, still)
		}
	}
}
