package runtimes_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/accordmesh/accord/runtimes"
)

func TestSaveOutput(t *testing.T) {
	dir := t.TempDir()
	local, err := runtimes.OutputPath(dir, "model/weights.bin")
	if err != nil {
		t.Fatal(err)
	}
	data := strings.Repeat("w", 1000)
	o, err := runtimes.SaveOutput(local, "model/weights.bin", strings.NewReader(data), 1000)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(data))
	want := runtimes.Output{Path: "model/weights.bin", Size: 1000, SHA256: hex.EncodeToString(sum[:]), Local: filepath.Join(dir, "model", "weights.bin")}
	if o != want {
		t.Fatalf("got %+v, want %+v", o, want)
	}
	if b, err := os.ReadFile(o.Local); err != nil || string(b) != data {
		t.Fatalf("collected copy: %d bytes, err %v", len(b), err)
	}
}

func TestSaveOutputSizeBound(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "out.txt")
	// An existing copy from an earlier collection stays whole.
	if err := os.WriteFile(local, []byte("earlier"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runtimes.SaveOutput(local, "out.txt", strings.NewReader(strings.Repeat("x", 1001)), 1000)
	if !errors.Is(err, runtimes.ErrOutput) || !strings.Contains(err.Error(), "larger than 1000 bytes") {
		t.Fatalf("err %v, want ErrOutput for an output over the bound", err)
	}
	if b, _ := os.ReadFile(local); string(b) != "earlier" {
		t.Fatalf("destination holds %q after a refused copy, want the earlier copy", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the earlier copy (no temporary file)", len(ents))
	}
}

func TestSaveOutputReadError(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("connection reset")
	_, err := runtimes.SaveOutput(filepath.Join(dir, "f"), "f", iotest.ErrReader(boom), 1000)
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want the reader's error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a failed copy left %d entries", len(ents))
	}
}

func TestOutputPathRefusesEscapes(t *testing.T) {
	dir := t.TempDir()
	for _, rel := range []string{"../x", "a/../../x", "..", "."} {
		if _, err := runtimes.OutputPath(dir, rel); !errors.Is(err, runtimes.ErrInvalid) {
			t.Errorf("OutputPath(%q): %v, want ErrInvalid", rel, err)
		}
	}
	if p, err := runtimes.OutputPath(dir, "a/b"); err != nil || p != filepath.Join(dir, "a", "b") {
		t.Errorf("OutputPath(a/b) = %q, %v", p, err)
	}
}
