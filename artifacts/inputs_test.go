package artifacts

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// blobFiles lists the blobs and temporary files in a store.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"sha256", "tmp"} {
		filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

func TestPutReaderLimitKeepsNothing(t *testing.T) {
	ctx := context.Background()
	s := Local{Dir: t.TempDir()}
	_, _, err := s.PutReader(ctx, strings.NewReader("0123456789"), 9)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("10 bytes at limit 9: %v, want ErrTooLarge", err)
	}
	if left := blobFiles(t, s.Dir); len(left) != 0 {
		t.Fatalf("files kept after an over-limit put: %v", left)
	}
	d, n, err := s.PutReader(ctx, strings.NewReader("0123456789"), 10)
	if err != nil || n != 10 || d != Digest([]byte("0123456789")) {
		t.Fatalf("put at the limit: %s %d %v", d, n, err)
	}
	again, _, err := s.PutReader(ctx, strings.NewReader("0123456789"), 10)
	if err != nil || again != d || len(blobFiles(t, s.Dir)) != 1 {
		t.Fatalf("second put: %s %v, files %v", again, err, blobFiles(t, s.Dir))
	}
	if b, err := s.Get(ctx, d, 10); err != nil || string(b) != "0123456789" {
		t.Fatalf("get: %q %v", b, err)
	}
}

// writeTree makes a directory with files, an executable, a nested and an
// empty directory.
func writeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range map[string]string{"a.txt": "alpha", "sub/b.txt": "beta", "sub/deeper/c.bin": "gamma"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	return dir
}

func TestPutTreeAndMaterialize(t *testing.T) {
	ctx := context.Background()
	s := Local{Dir: t.TempDir()}
	d, err := s.PutTree(ctx, writeTree(t), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := s.Kind(ctx, d); err != nil || k != KindTree {
		t.Fatalf("kind: %s %v", k, err)
	}
	tr, err := s.ReadTree(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tr.Dirs, ","); got != "empty,sub,sub/deeper" {
		t.Fatalf("dirs %s", got)
	}
	if len(tr.Entries) != 4 || tr.Entries[1].Path != "run.sh" || tr.Entries[1].Mode != "0755" || tr.Size() != 5+4+5+10 {
		t.Fatalf("entries %+v", tr.Entries)
	}
	again, err := s.PutTree(ctx, writeTree(t), 1<<20)
	if err != nil || again != d {
		t.Fatalf("same tree, another digest: %s %v", again, err)
	}
	dst := t.TempDir()
	p, err := s.Materialize(ctx, d, dst)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dst, "sha256", d[7:]) {
		t.Fatalf("path %s", p)
	}
	if b, err := os.ReadFile(filepath.Join(p, "sub/deeper/c.bin")); err != nil || string(b) != "gamma" {
		t.Fatalf("c.bin: %q %v", b, err)
	}
	for rel, want := range map[string]fs.FileMode{".": 0o555, "empty": 0o555, "a.txt": 0o444, "run.sh": 0o555} {
		fi, err := os.Stat(filepath.Join(p, rel))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v %v, want %v", rel, fi.Mode().Perm(), err, want)
		}
	}
	if p2, err := s.Materialize(ctx, d, dst); err != nil || p2 != p {
		t.Fatalf("second materialize: %s %v", p2, err)
	}
	fd, _, _ := s.PutReader(ctx, strings.NewReader("plain"), 10)
	fp, err := s.Materialize(ctx, fd, dst)
	if b, _ := os.ReadFile(fp); err != nil || string(b) != "plain" {
		t.Fatalf("file: %q %v", b, err)
	}
	if fi, _ := os.Stat(fp); fi.Mode().Perm() != 0o444 {
		t.Fatalf("file mode %v", fi.Mode())
	}
}

func TestPutTreeRefuses(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("key"), 0o600)
	cases := map[string]func(dir string){
		"symlink out": func(dir string) { os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "k")) },
		"symlink in":  func(dir string) { os.Symlink("a.txt", filepath.Join(dir, "k")) },
		"dir link":    func(dir string) { os.Symlink(outside, filepath.Join(dir, "sub", "up")) },
		"fifo":        func(dir string) { syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644) },
		"newline":     func(dir string) { os.WriteFile(filepath.Join(dir, "a\nb"), nil, 0o644) },
		"backslash":   func(dir string) { os.WriteFile(filepath.Join(dir, `a\b`), nil, 0o644) },
		"bad utf-8":   func(dir string) { os.WriteFile(filepath.Join(dir, "a\xffb"), nil, 0o644) },
		"over limit":  func(dir string) { os.WriteFile(filepath.Join(dir, "big"), make([]byte, 200), 0o644) },
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			s := Local{Dir: t.TempDir()}
			dir := writeTree(t)
			mk(dir)
			d, err := s.PutTree(ctx, dir, 100)
			if err == nil {
				t.Fatalf("stored as %s", d)
			}
			for _, p := range blobFiles(t, s.Dir) {
				if b, _ := os.ReadFile(p); bytes.Equal(b, []byte("key")) {
					t.Fatalf("read a file outside the tree: %s", p)
				}
			}
		})
	}
	t.Run("too many entries", func(t *testing.T) {
		defer func(n int) { maxEntries = n }(maxEntries)
		maxEntries = 5
		if _, err := (Local{Dir: t.TempDir()}).PutTree(ctx, writeTree(t), 1<<20); !errors.Is(err, ErrRefused) {
			t.Fatalf("7 entries at a limit of 5: %v", err)
		}
	})
}

const digA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func manifest(entries []TreeEntry, dirs []string) []byte {
	b, _ := Tree{Entries: entries, Dirs: dirs}.Encode()
	return b
}

func TestParseTreeHostile(t *testing.T) {
	e := func(p string) TreeEntry { return TreeEntry{Path: p, Digest: digA, Size: 1, Mode: "0644"} }
	good := manifest([]TreeEntry{e("a"), e("d/b")}, []string{"d"})
	if _, err := ParseTree(good); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	many := make([]string, MaxTreeEntries+1)
	for i := range many {
		many[i] = strings.Repeat("x", 1+i/26/26/26) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26))
	}
	bad := map[string][]byte{
		"dotdot":          manifest([]TreeEntry{e("../x")}, nil),
		"inner dotdot":    manifest([]TreeEntry{e("d/../../x")}, []string{"d"}),
		"absolute":        manifest([]TreeEntry{e("/etc/passwd")}, nil),
		"absolute dir":    manifest(nil, []string{"/tmp"}),
		"dot":             manifest([]TreeEntry{e("./a")}, nil),
		"empty name":      manifest([]TreeEntry{e("d//a")}, []string{"d"}),
		"empty path":      manifest([]TreeEntry{e("")}, nil),
		"duplicate":       manifest([]TreeEntry{e("a"), e("a")}, nil),
		"unsorted":        manifest([]TreeEntry{e("b"), e("a")}, nil),
		"file and dir":    manifest([]TreeEntry{e("d")}, []string{"d"}),
		"under a file":    manifest([]TreeEntry{e("a"), e("a/b")}, nil),
		"missing parent":  manifest([]TreeEntry{e("d/a")}, nil),
		"newline":         manifest([]TreeEntry{e("a\nb")}, nil),
		"setuid mode":     manifest([]TreeEntry{{Path: "a", Digest: digA, Mode: "4755"}}, nil),
		"negative size":   manifest([]TreeEntry{{Path: "a", Digest: digA, Size: -1, Mode: "0644"}}, nil),
		"huge sizes":      manifest([]TreeEntry{{Path: "a", Digest: digA, Size: MaxTreeBytes, Mode: "0644"}, {Path: "b", Digest: digA, Size: 1, Mode: "0644"}}, nil),
		"bad digest":      manifest([]TreeEntry{{Path: "a", Digest: "sha256:../../x", Mode: "0644"}}, nil),
		"too many":        manifest(nil, many),
		"not canonical":   append(bytes.Clone(good), ' '),
		"indented":        bytes.Replace(good, []byte(`"entries":`), []byte(`"entries": `), 1),
		"cased key":       bytes.Replace(good, []byte(`"dirs":["d"]`), []byte(`"Dirs":["d"]`), 1),
		"duplicate key":   bytes.Replace(good, []byte(`"dirs":["d"]`), []byte(`"dirs":["d"],"dirs":["d"]`), 1),
		"unknown field":   bytes.Replace(good, []byte(`"dirs":["d"]`), []byte(`"dirs":["d"],"x":1`), 1),
		"empty":           {},
		"other mediatype": bytes.Replace(good, []byte("tree.v1"), []byte("tree.v2"), 1),
	}
	for name, b := range bad {
		if _, err := ParseTree(b); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: %v, want ErrManifest", name, err)
		}
	}
}

func TestMaterializeHostileManifestWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := Local{Dir: t.TempDir()}
	fd, _, _ := s.PutReader(ctx, strings.NewReader("x"), 1)
	evil := manifest([]TreeEntry{{Path: "../escaped", Digest: fd, Size: 1, Mode: "0644"}}, nil)
	d, _, err := s.PutReader(ctx, bytes.NewReader(evil), MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "inputs")
	if _, err := s.Materialize(ctx, d, dst); !errors.Is(err, ErrManifest) {
		t.Fatalf("materialize ../ manifest: %v, want ErrManifest", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "escaped")); err == nil {
		t.Fatal("a file was written outside dst")
	}
	if ents, _ := os.ReadDir(filepath.Join(dst, "sha256")); len(ents) != 0 {
		t.Fatalf("left in dst: %v", ents)
	}
}

func TestMaterializeVerifies(t *testing.T) {
	ctx := context.Background()
	s := Local{Dir: t.TempDir()}
	d, err := s.PutTree(ctx, writeTree(t), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := s.ReadTree(ctx, d)
	fd := tr.Entries[0].Digest
	corrupt := func(digest, with string) {
		h := digest[7:]
		if err := os.WriteFile(s.path(h), []byte(with), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, with := range []string{"alphx", "alpha and more", "alp"} { // same size, longer, shorter
		corrupt(fd, with)
		dst := t.TempDir()
		for _, digest := range []string{d, fd} {
			if _, err := s.Materialize(ctx, digest, dst); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("materialize %s with a corrupt blob %q: %v, want ErrCorrupt", digest, with, err)
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(dst, "sha256")); len(ents) != 0 {
			t.Fatalf("visible after a failed materialize: %v", ents)
		}
	}
	corrupt(fd, "alpha")
	if _, err := s.Materialize(ctx, d, t.TempDir()); err != nil {
		t.Fatalf("after repair: %v", err)
	}
}

func TestMaterializeConcurrent(t *testing.T) {
	ctx := context.Background()
	s := Local{Dir: t.TempDir()}
	d, err := s.PutTree(ctx, writeTree(t), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	fd, _, _ := s.PutReader(ctx, strings.NewReader("plain"), 10)
	dst := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 16 {
		wg.Go(func() {
			digest := d
			if i%2 == 1 {
				digest = fd
			}
			_, err := s.Materialize(ctx, digest, dst)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dst, "sha256"))
	if len(ents) != 2 {
		t.Fatalf("want the tree and the file, no temporaries: %v", ents)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "sha256", d[7:], "sub", "b.txt")); err != nil || string(b) != "beta" {
		t.Fatalf("b.txt: %q %v", b, err)
	}
}

func TestGrants(t *testing.T) {
	ctx := context.Background()
	s := Local{Dir: t.TempDir()}
	tree, err := s.PutTree(ctx, writeTree(t), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Grant("alice", tree); err != nil {
		t.Fatal(err)
	}
	tr, _ := s.ReadTree(ctx, tree)
	for _, d := range []string{tree, tr.Entries[0].Digest, tr.Entries[3].Digest} {
		if ok, err := s.Owns("alice", d); !ok || err != nil {
			t.Errorf("alice owns %s: %v %v", d, ok, err)
		}
		if ok, err := s.Owns("mallory", d); ok || err != nil {
			t.Errorf("mallory owns %s: %v %v", d, ok, err)
		}
	}
	// Mallory knows alice's digests (they are public) and names them in a
	// tree of her own, uploaded as a tree or as a plain file.
	steal := manifest([]TreeEntry{{Path: "loot", Digest: tr.Entries[0].Digest, Size: tr.Entries[0].Size, Mode: "0644"}}, nil)
	sd, _, _ := s.PutReader(ctx, bytes.NewReader(steal), MaxManifestSize)
	if _, err := s.Claim(ctx, "mallory", sd); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("claim a tree of alice's blobs: %v, want ErrNotOwned", err)
	}
	if ok, _ := s.Owns("mallory", sd); ok {
		t.Fatal("a refused claim was granted")
	}
	if kind, err := s.Claim(ctx, "alice", sd); err != nil || kind != KindTree {
		t.Fatalf("alice claims a tree of her own blobs: %s %v", kind, err)
	}
	fd, _, _ := s.PutReader(ctx, strings.NewReader("mine"), 10)
	if kind, err := s.Claim(ctx, "mallory", fd); err != nil || kind != KindFile {
		t.Fatalf("claim an uploaded file: %s %v", kind, err)
	}
	if got, err := s.Granted("mallory"); err != nil || len(got) != 1 || got[0] != fd {
		t.Fatalf("granted to mallory: %v %v", got, err)
	}
	for _, bad := range []string{"../alice", "", "Alice", "a/b"} {
		if err := s.Grant(bad, fd); err == nil {
			t.Errorf("grant to tenant %q accepted", bad)
		}
		if _, err := s.Owns(bad, fd); err == nil {
			t.Errorf("owns for tenant %q accepted", bad)
		}
	}
	if err := s.Grant("alice", Digest([]byte("never stored"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("grant of a missing blob: %v", err)
	}
}
