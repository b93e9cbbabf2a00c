package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestStreamLog: a saved log is copied through, not read whole; a fifo or
// a missing file is not a log.
func TestStreamLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "job-1.train.1.log")
	body := strings.Repeat("line\n", 100_000)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if !streamLog(&out, "job-1.train.1", p) || out.String() != "==> job-1.train.1 <==\n"+body {
		t.Fatalf("streamed %d bytes", out.Len())
	}
	fifo := filepath.Join(dir, "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{fifo, filepath.Join(dir, "missing.log")} {
		if streamLog(&out, "x", bad) {
			t.Errorf("%s streamed as a log", filepath.Base(bad))
		}
	}
}
