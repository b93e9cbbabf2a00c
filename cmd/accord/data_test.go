package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/cli"
)

func TestDataPushJSON(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "weights.bin")
	os.WriteFile(file, []byte("0123456789"), 0o644)
	out := ok(t, home, "--json", "data", "push", file, "--tenant", "acme")
	var keys map[string]any
	lastJSON(t, out, &keys)
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			yield(k)
		}
	}); strings.Join(got, ",") != "digest,kind,size,tenant" {
		t.Fatalf("JSON keys %v, want digest, kind, size, tenant", got)
	}
	var res pushResult
	lastJSON(t, out, &res)
	want := pushResult{Digest: artifacts.Digest([]byte("0123456789")), Size: 10, Kind: "file", Tenant: "acme"}
	if res != want {
		t.Fatalf("push: %+v, want %+v", res, want)
	}
	store := artifacts.Local{Dir: artifacts.DefaultDir(home)}
	if owns, err := store.Owns("acme", res.Digest); !owns || err != nil {
		t.Fatalf("not granted: %v %v", owns, err)
	}

	tree := filepath.Join(dir, "set")
	os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
	os.WriteFile(filepath.Join(tree, "a.txt"), []byte("alpha"), 0o644)
	os.WriteFile(filepath.Join(tree, "sub", "b.txt"), []byte("beta"), 0o644)
	lastJSON(t, ok(t, home, "--json", "data", "push", tree), &res)
	if res.Kind != "tree" || res.Size != 9 || res.Tenant != defaultDataTenant {
		t.Fatalf("push dir: %+v", res)
	}
	human := ok(t, home, "data", "push", tree)
	contains(t, human, res.Digest+"\n")
	contains(t, human, "tree, 9 B, granted to tenant demo")
	contains(t, human, "inputs: [{name: x, artifact: "+res.Digest+"}]")

	var ls struct {
		Tenant    string
		Artifacts []pushResult
	}
	lastJSON(t, ok(t, home, "--json", "data", "ls"), &ls)
	if len(ls.Artifacts) != 3 { // the tree and its two files
		t.Fatalf("ls: %+v", ls)
	}
}

func TestDataPushRefuses(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dir, "big"), make([]byte, 2048), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	for _, args := range [][]string{
		{"data", "push", dir}, // a symbolic link inside
		{"data", "push", filepath.Join(dir, "big"), "--max-size", "1KiB"},
		{"data", "push", filepath.Join(dir, "big"), "--tenant", "../x"},
		{"data", "push", filepath.Join(dir, "big"), "--max-size", "1XB"},
		{"data", "push", "/dev/null"},
	} {
		r := runIn(t, home, append([]string{"--json"}, args...)...)
		if r.code != cli.ExitUsage {
			t.Errorf("%v: exit %d %s%s, want %d", args, r.code, r.stdout, r.stderr, cli.ExitUsage)
			continue
		}
		r.errorObject(t)
	}
	if r := runIn(t, home, "data", "push", filepath.Join(dir, "nosuch")); r.code != cli.ExitError {
		t.Errorf("missing file: exit %d", r.code)
	}
	var ls struct{ Artifacts []pushResult }
	lastJSON(t, ok(t, home, "--json", "data", "ls"), &ls)
	if len(ls.Artifacts) != 0 {
		t.Fatalf("refused pushes granted %+v", ls.Artifacts)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "500MiB": 500 << 20, "2GiB": 2 << 30, "3 KiB": 3 << 10, "7B": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "1GB", "1.5GiB", "99999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
