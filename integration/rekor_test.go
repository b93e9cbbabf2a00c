package integration

import (
	"bufio"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigstore/rekor/pkg/verify"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/rekorv1"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
)

// rekorURL is the rekor-server scripts/services/rekor.sh started for the run.
func rekorURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("ACCORD_TEST_REKOR_URL")
	if u == "" {
		t.Skip("ACCORD_TEST_REKOR_URL not set: start the Rekor stack with scripts/services/rekor.sh start ENVFILE (make test does)")
	}
	return u
}

// TestRekorStackRestart brings up a second, private Rekor stack (fresh
// MariaDB datadir), logs an attestation, stops the stack, starts it again
// and checks the entry, the log key and the tree survived, the new tree is
// consistent with the old one, and stop left no process behind.
func TestRekorStackRestart(t *testing.T) {
	rekorCLI(t) // the stack's binaries are built
	if testing.Short() {
		t.Skip("starts a whole Rekor stack twice")
	}
	ctx := context.Background()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	script := filepath.Join(root, "scripts", "services", "rekor.sh")
	svc := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.Env = append(os.Environ(), "ACCORD_REKOR_STATE="+state)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rekor.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("rekor.sh %s:\n%s", strings.Join(args, " "), out)
	}
	start := func() tlog.Log {
		t.Helper()
		envf := filepath.Join(t.TempDir(), "env")
		begin := time.Now()
		svc("start", envf)
		t.Logf("stack up in %v", time.Since(begin).Round(time.Millisecond))
		l, err := rekorv1.New(readEnv(t, envf)["ACCORD_TEST_REKOR_URL"], rekorv1.WithInsecure()) // loopback, plain HTTP
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	t.Cleanup(func() {
		cmd := exec.Command(script, "stop")
		cmd.Env = append(os.Environ(), "ACCORD_REKOR_STATE="+state) // never the main stack
		_ = cmd.Run()
	})

	l := start()
	f := tlogtest.NewFixture(t, nil)
	e, err := l.Upload(ctx, f.Envelope, f.Key.PublicPEM())
	if err != nil {
		t.Fatal(err)
	}
	info1, err := l.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key1, err := l.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}

	pids := stackPIDs(t, filepath.Join(state, "run"))
	svc("stop")
	for name, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still running after stop", name, pid)
		}
	}

	l = start()
	key2, err := l.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(key1) != string(key2) {
		t.Fatal("log key changed across restart")
	}
	g, err := l.Get(ctx, e.UUID)
	if err != nil {
		t.Fatalf("entry lost across restart: %v", err)
	}
	tlogtest.VerifyEntry(t, ctx, l, g, f.Envelope)
	if _, err := l.Upload(ctx, tlogtest.NewFixture(t, f.Key).Envelope, f.Key.PublicPEM()); err != nil {
		t.Fatal(err)
	}
	info2, err := l.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info2.TreeID != info1.TreeID || info2.TreeSize <= info1.TreeSize {
		t.Fatalf("tree %s/%d after restart, was %s/%d", info2.TreeID, info2.TreeSize, info1.TreeID, info1.TreeSize)
	}
	hashes, err := l.ConsistencyProof(ctx, info1.TreeSize, info2.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	var hs [][]byte
	for _, h := range hashes {
		b, _ := hex.DecodeString(h)
		hs = append(hs, b)
	}
	r1, _ := hex.DecodeString(info1.RootHash)
	r2, _ := hex.DecodeString(info2.RootHash)
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(info1.TreeSize), uint64(info2.TreeSize), hs, r1, r2); err != nil {
		t.Fatalf("tree after restart is not consistent with the tree before: %v", err)
	}
	// The entry from before the restart verifies offline with the key.
	pub, _ := provenance.ParsePublicKeyPEM(key2)
	v, _ := provenance.LoadVerifier(pub)
	if err := verify.VerifyLogEntry(ctx, &e.LogEntryAnon, v); err != nil {
		t.Fatalf("pre-restart entry no longer verifies: %v", err)
	}
	svc("stop")
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

func stackPIDs(t *testing.T, run string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, name := range []string{"mariadb", "trillian_log_server", "trillian_log_signer", "rekor-server"} {
		b, err := os.ReadFile(filepath.Join(run, name+".pid"))
		if err != nil {
			t.Fatalf("%s pid: %v", name, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		m[name] = pid
	}
	return m
}
