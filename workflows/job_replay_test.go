package workflows

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
)

// TestJobReplay replays every history recorded from real runs on the
// embedded stack (make record-histories), of every layout, against the
// current workflow code: a change to the commands of a released layout
// without a version gate fails here with a nondeterminism error.
func TestJobReplay(t *testing.T) {
	files := recordedHistories(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			Register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

// TestHistoriesKept checks testdata/histories.sha256: every recorded history
// is listed, and every listed one is present and unchanged. Histories are
// evidence of released behaviour: added, never re-recorded or deleted.
func TestHistoriesKept(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "histories.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("histories.sha256: malformed line %q", sc.Text())
		}
		listed[name] = true
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Errorf("recorded history %s is gone: histories are never deleted (%v)", name, err)
			continue
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("recorded history %s changed: histories are never re-recorded; add a new one under a new layout", name)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range recordedHistories(t) {
		if !listed[filepath.Base(p)] {
			t.Errorf("%s is not in testdata/histories.sha256 (make record-histories appends it)", filepath.Base(p))
		}
	}
}

func recordedHistories(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join("testdata", "job_*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/ (make record-histories)")
	}
	return files
}
