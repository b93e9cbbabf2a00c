package workflows

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
)

// TestDeploymentReplay replays every deployment history recorded from a
// real run (make record-deployment-histories: TestDeploymentOnContainerd on
// real containerd and an embedded Temporal) against the current workflow
// code: a change to a released deployment layout's commands without a
// version gate fails here with a nondeterminism error. Each history must
// be listed in histories.sha256 (TestHistoriesKept checks the sums).
func TestDeploymentReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "deployment_*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded deployment histories in testdata/ (make record-deployment-histories)")
	}
	listed := listedHistories(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if !listed[filepath.Base(f)] {
				t.Errorf("%s is not in testdata/histories.sha256", filepath.Base(f))
			}
			r := worker.NewWorkflowReplayer()
			RegisterDeployment(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

// listedHistories reads the names in testdata/histories.sha256.
func listedHistories(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "histories.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if _, name, ok := strings.Cut(sc.Text(), "  "); ok {
			listed[name] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return listed
}
