package atomicfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/accordmesh/accord/internal/atomicfile"
)

// noLeftovers fails when a write left a temporary file in dir.
func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// holds fails unless p holds want with permissions perm.
func holds(t *testing.T, p, want string, perm os.FileMode) {
	t.Helper()
	if got := readFile(t, p); got != want {
		t.Fatalf("%s holds %.20q, want %.20q", p, got, want)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Fatalf("%s has mode %v, want %v (the umask must not apply)", p, fi.Mode().Perm(), perm)
	}
}

func TestWriteFileCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := atomicfile.WriteFile(p, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	holds(t, p, "one", 0o640)
	if err := atomicfile.WriteFile(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	holds(t, p, "two", 0o600)
	noLeftovers(t, dir)
}

func TestWriteStreams(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	src := bytes.Repeat([]byte("0123456789"), 100_000)
	err := atomicfile.Write(p, 0o600, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(src))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p); got != string(src) {
		t.Fatalf("streamed %d bytes, read back %d", len(src), len(got))
	}
}

func TestWriteFailingFillKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := atomicfile.Write(p, 0o600, func(w io.Writer) error {
		fmt.Fprint(w, "half of the new")
		return boom
	})
	if err != boom {
		t.Fatalf("err %v, want fill's error unchanged", err)
	}
	if got := readFile(t, p); got != "old" {
		t.Fatalf("content %q after a failed write, want old", got)
	}
	noLeftovers(t, dir)
}

func TestWriteFailingRenameLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "taken")
	// A non-empty directory cannot be replaced by a file: the rename fails
	// after the temporary file was written in full.
	if err := os.MkdirAll(filepath.Join(p, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(p, []byte("data"), 0o600); err == nil || !strings.HasPrefix(err.Error(), "atomicfile: ") {
		t.Fatalf("err %v, want an atomicfile rename error", err)
	}
	noLeftovers(t, dir)
}

func TestWriteMissingDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "such", "f")
	if err := atomicfile.WriteFile(p, []byte("x"), 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v, want ErrNotExist", err)
	}
	if _, err := atomicfile.WriteNew(p, []byte("x"), 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WriteNew err %v, want ErrNotExist", err)
	}
}

func TestWriteNewFirstWins(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "status.json")
	created, err := atomicfile.WriteNew(p, []byte("first"), 0o644)
	if err != nil || !created {
		t.Fatalf("first WriteNew: created %v, err %v", created, err)
	}
	created, err = atomicfile.WriteNew(p, []byte("second"), 0o644)
	if err != nil || created {
		t.Fatalf("second WriteNew: created %v, err %v; want false, nil", created, err)
	}
	holds(t, p, "first", 0o644)
	noLeftovers(t, dir)
}

func TestWriteNewRace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "once")
	const writers = 8
	var wg sync.WaitGroup
	won := make(chan string, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := strings.Repeat(fmt.Sprint(i), 4096)
			created, err := atomicfile.WriteNew(p, []byte(data), 0o600)
			if err != nil {
				t.Error(err)
			}
			if created {
				won <- data
			}
		}()
	}
	wg.Wait()
	close(won)
	var winners []string
	for w := range won {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("%d writers created the file, want exactly 1", len(winners))
	}
	if got := readFile(t, p); got != winners[0] {
		t.Fatalf("file holds %.8q..., not the winner's whole content", got)
	}
	noLeftovers(t, dir)
}
