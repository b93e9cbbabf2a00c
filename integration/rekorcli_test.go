package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/rekorapi"
	"github.com/accordmesh/accord/provenance/tlog/rekorv1"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
)

// rekorCLI is the stock rekor-cli (v1.5.4) that scripts/rekor-tools.sh
// builds; scripts/services/rekor.sh exports its path.
func rekorCLI(t *testing.T) string {
	t.Helper()
	p := os.Getenv("ACCORD_TEST_REKOR_CLI")
	if p == "" {
		t.Skip("ACCORD_TEST_REKOR_CLI not set: build it with scripts/rekor-tools.sh and start scripts/services/rekor.sh (make test does)")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("ACCORD_TEST_REKOR_CLI: %v", err)
	}
	return p
}

// TestRekorCLIAgainstEmbeddedLog serves the embedded log with rekorapi and
// drives it with the stock rekor-cli: loginfo (twice, so the second proves
// consistency with the state the first stored), get by UUID and by index,
// search by digest and by key, verify, and upload.
func TestRekorCLIAgainstEmbeddedLog(t *testing.T) {
	cli := rekorCLI(t)
	ctx := context.Background()
	l, err := embedded.Open(ctx, t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	srv := httptest.NewServer(rekorapi.NewHandler(l))
	t.Cleanup(srv.Close)
	cliScenario(t, cli, srv.URL, l, false)
}

// TestRekorCLIAgainstRekorServer runs the same scenario against the real
// rekor-server, with Accord's rekorv1 backend writing: what Accord logs
// there verifies with stock tooling.
func TestRekorCLIAgainstRekorServer(t *testing.T) {
	cli := rekorCLI(t)
	url := rekorURL(t)
	l, err := rekorv1.New(url, rekorv1.WithInsecure()) // loopback, plain HTTP
	if err != nil {
		t.Fatal(err)
	}
	cliScenario(t, cli, url, l, true)
}

// TestRekorCLIThroughProxy serves the rekorv1 backend with rekorapi: the
// handler over a real Rekor, i.e. rekor-cli → rekorapi → rekorv1 →
// rekor-server, which checks that rekorapi passes real entries through
// untouched.
func TestRekorCLIThroughProxy(t *testing.T) {
	cli := rekorCLI(t)
	l, err := rekorv1.New(rekorURL(t), rekorv1.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rekorapi.NewHandler(l))
	t.Cleanup(srv.Close)
	cliScenario(t, cli, srv.URL, l, false)
}

// cliScenario drives the log at url with rekor-cli; l writes to the same log.
// rekor-server itself cannot find intoto entries by `search --public-key`
// (it looks the key up without the "sha256:" prefix it indexed it under), so
// against it the key is searched as `--sha <rekorv1.KeyIndexHash>`.
func cliScenario(t *testing.T, cli, url string, l tlog.Log, rekorServer bool) {
	ctx := context.Background()
	home := t.TempDir() // rekor-cli keeps its tree state in $HOME/.rekor
	run := func(args ...string) (string, error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, cli, append(args, "--rekor_server", url, "--timeout", "60s")...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("rekor-cli %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String(), err
	}
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// search runs a rekor-cli search until its output names uuid's leaf:
	// rekor-server writes its index after it answers the upload.
	search := func(uuid string, args ...string) bool {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			out, err := run(args...)
			if err == nil && strings.Contains(out, uuid[len(uuid)-64:]) {
				return true
			}
			if time.Now().After(deadline) {
				t.Logf("last rekor-cli %s: %s %v", strings.Join(args, " "), out, err)
				return false
			}
		}
	}
	jsonOf := func(s string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(lastLine(s)), &m); err != nil {
			t.Fatalf("rekor-cli output is not JSON: %v\n%s", err, s)
		}
		return m
	}

	key, err := provenance.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	f := tlogtest.NewFixture(t, key)
	e, err := l.Upload(ctx, f.Envelope, key.PublicPEM())
	if err != nil {
		t.Fatal(err)
	}

	// loginfo: the checkpoint verifies with the log's key; the state is
	// stored for the next call.
	info := jsonOf(mustRun("loginfo", "--format", "json"))
	li, err := l.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info["TreeID"] != li.TreeID || int64(info["ActiveTreeSize"].(float64)) < *e.LogIndex+1 {
		t.Errorf("loginfo %v, log info %+v", info, li)
	}
	if _, err := l.Upload(ctx, tlogtest.NewFixture(t, key).Envelope, key.PublicPEM()); err != nil {
		t.Fatal(err)
	}
	// Second loginfo proves consistency from the stored tree head.
	out := mustRun("loginfo", "--format", "json")
	if n := int64(jsonOf(out)["ActiveTreeSize"].(float64)); n <= int64(info["ActiveTreeSize"].(float64)) {
		t.Errorf("tree did not grow: %s", out)
	}

	// get by UUID and by index (rekor-cli verifies the inclusion proof,
	// checkpoint and SET itself).
	g := jsonOf(mustRun("get", "--uuid", e.UUID, "--format", "json"))
	if g["UUID"] != e.UUID || int64(g["LogIndex"].(float64)) != *e.LogIndex {
		t.Errorf("get --uuid: %v", g)
	}
	if att, _ := g["Attestation"].(string); !strings.Contains(att, f.JobID) {
		t.Errorf("get --uuid: attestation lacks the statement: %q", att)
	}
	g = jsonOf(mustRun("get", "--log-index", strconv.FormatInt(*e.LogIndex, 10), "--format", "json"))
	if g["UUID"] != e.UUID {
		t.Errorf("get --log-index: %v", g)
	}

	// search by artifact digest, by job digest (bare hex), by key.
	keyFile := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(keyFile, key.PublicPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	keySearch := []string{"search", "--public-key", keyFile, "--pki-format", "x509"}
	if rekorServer {
		h, err := rekorv1.KeyIndexHash(key.PublicPEM())
		if err != nil {
			t.Fatal(err)
		}
		keySearch = []string{"search", "--sha", h}
	}
	for _, args := range [][]string{
		{"search", "--sha", f.Artifact},
		{"search", "--sha", strings.TrimPrefix(provenance.JobDigest(f.JobID), "sha256:")},
		keySearch,
	} {
		if !search(e.UUID, args...) {
			t.Errorf("rekor-cli %v did not find %s", args, e.UUID)
		}
	}

	// verify by UUID and by index.
	v := jsonOf(mustRun("verify", "--uuid", e.UUID, "--format", "json"))
	if v["EntryUUID"] != e.UUID || int64(v["Index"].(float64)) != *e.LogIndex {
		t.Errorf("verify --uuid: %v", v)
	}
	mustRun("verify", "--log-index", strconv.FormatInt(*e.LogIndex, 10), "--format", "json")

	// verify against a key that is not the log's must fail.
	stranger, _ := provenance.GenerateKey("")
	strangerFile := filepath.Join(t.TempDir(), "stranger.pub")
	if err := os.WriteFile(strangerFile, stranger.PublicPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("verify", "--uuid", e.UUID, "--rekor_server_public_key", strangerFile); err == nil {
		t.Errorf("verify with a stranger's log key succeeded: %s", out)
	}

	// upload an envelope with rekor-cli; it is then searchable and verifies.
	up := tlogtest.NewFixture(t, key)
	envFile := filepath.Join(t.TempDir(), "env.json")
	if err := os.WriteFile(envFile, up.Envelope, 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustRun("upload", "--type", "intoto:0.0.2", "--artifact", envFile, "--public-key", keyFile, "--pki-format", "x509", "--format", "json")
	u := jsonOf(out)
	uuid, _ := u["Location"].(string)
	uuid = uuid[strings.LastIndex(uuid, "/")+1:]
	if len(uuid) < 64 {
		t.Fatalf("upload: no entry location in %s", out)
	}
	if !search(uuid, "search", "--sha", up.Artifact) {
		t.Errorf("search after rekor-cli upload did not find %s", uuid)
	}
	mustRun("verify", "--uuid", uuid)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
