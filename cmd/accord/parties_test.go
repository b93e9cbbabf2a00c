package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
)

// TestAuditVerifyParties: a receipt signed by one legacy stage key verifies
// without --parties and fails with it (exit 7), naming every stage and the
// party that had to sign it; a receipt whose stages its parties signed
// passes --parties, and one whose execution the operator signed fails,
// naming the stage and the provider. Keys are trusted through
// `accord keys trust --scope`, as an auditor would.
func TestAuditVerifyParties(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	l, err := embedded.Open(ctx, filepath.Join(dir, "tlog"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())

	home := t.TempDir()
	trust := func(name, scope string) *provenance.Key {
		k, err := provenance.GenerateKey("")
		if err != nil {
			t.Fatal(err)
		}
		pub := filepath.Join(dir, name+".pub")
		if err := k.WriteFiles(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		ok(t, home, "keys", "trust", pub, "--scope", scope, "--name", name)
		return k
	}
	worker := trust("worker", "stage")
	operator := trust("operator", "operator")
	provider := trust("provider", "provider:"+tlogtest.JobProvider)
	verifier := trust("verifier", "verifier")
	logPEM, _ := l.PublicKey(ctx)
	logPub := filepath.Join(dir, "log.pub")
	if err := os.WriteFile(logPub, logPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	ok(t, home, "keys", "trust", logPub, "--scope", "log")
	trustFile := filepath.Join(home, "trust.json")

	receipt := func(job string, by func(stage string) *provenance.Key) string {
		store := tlogtest.RecordJobBy(t, l, job, by)
		r, err := provenance.BuildReceipt(ctx, job, store, l)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, job+".json")
		if err := r.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	mesh := func(stage string) *provenance.Key {
		switch stage {
		case provenance.StagePlacement, provenance.StageExecution:
			return provider
		case provenance.StageVerification:
			return verifier
		}
		return operator
	}
	verify := func(path string, extra ...string) result {
		return run(t, "", append([]string{"audit", "verify", path, "--trust", trustFile}, extra...)...)
	}

	legacy := receipt("job-cli-legacy", func(string) *provenance.Key { return worker })
	if res := verify(legacy); res.code != 0 || !strings.Contains(res.stdout, "OK: job job-cli-legacy verified") || !strings.Contains(res.stdout, "(stage)") {
		t.Fatalf("legacy receipt without --parties: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res := verify(legacy, "--parties")
	if res.code != 7 {
		t.Fatalf("legacy receipt with --parties: exit %d, want 7\n%s%s", res.code, res.stdout, res.stderr)
	}
	for _, stage := range provenance.Stages {
		must := "operator"
		switch stage {
		case provenance.StagePlacement, provenance.StageExecution:
			must = "provider:" + tlogtest.JobProvider
		case provenance.StageVerification:
			must = "verifier or operator"
		}
		want := "FAIL stage " + stage + ": signer: must be signed by " + must + ", signed by key " + worker.ID() + " (stage)"
		if !strings.Contains(res.stdout, want) {
			t.Errorf("legacy receipt with --parties: output lacks %q\n%s", want, res.stdout)
		}
	}

	good := receipt("job-cli-mesh", mesh)
	res = verify(good, "--parties", "--json")
	var rep provenance.Report
	if err := json.Unmarshal([]byte(res.lastLine()), &rep); res.code != 0 || err != nil || !rep.OK || !rep.Parties {
		t.Fatalf("mesh receipt with --parties: exit %d (%v)\n%s%s", res.code, err, res.stdout, res.stderr)
	}
	for _, s := range rep.Stages {
		if want := mesh(s.Stage).ID(); s.Signer != want || s.Party == "" || s.Party == provenance.ScopeStage {
			t.Errorf("stage %s: signer %s as %q, want %s as its party", s.Stage, s.Signer, s.Party, want)
		}
	}

	usurped := receipt("job-cli-usurped", func(stage string) *provenance.Key {
		if stage == provenance.StageExecution {
			return operator
		}
		return mesh(stage)
	})
	res = verify(usurped, "--parties", "--json")
	want := `{"stage":"execution","check":"signer","message":"must be signed by provider:` + tlogtest.JobProvider + `, signed by key ` + operator.ID() + ` (operator)"}`
	if res.code != 7 || !strings.Contains(res.stdout, want) {
		t.Fatalf("operator-signed execution: exit %d, want 7 and %s\n%s%s", res.code, want, res.stdout, res.stderr)
	}

	// Scopes are validated where they are typed.
	for _, bad := range []string{"provider:", "provider:GPU-East", "provider:*", "operators"} {
		if res := runIn(t, home, "keys", "trust", filepath.Join(dir, "operator.pub"), "--scope", bad); res.code != 2 {
			t.Errorf("--scope %s: exit %d, want 2 (usage)\n%s", bad, res.code, res.stderr)
		}
	}
}
