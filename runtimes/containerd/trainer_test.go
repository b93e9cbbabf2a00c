package containerd

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/accordmesh/accord/examples/images"
	"github.com/accordmesh/accord/runtimes"
)

// TestTrainerImage builds the example trainer image from source, trains in
// it, and runs the acceptance check against the collected metrics as a
// second task with the metrics mounted read-only.
func TestTrainerImage(t *testing.T) {
	need(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("building the trainer image needs the go command")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	archive, _, err := images.BuildTrainer(ctx, images.Options{
		RepoDir: "../..", Out: filepath.Join(t.TempDir(), "trainer.tar"), Go: goBin,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := newRuntime(t)
	image := ArchivePrefix + archive
	train := runtimes.TaskSpec{
		ID:        "job-t.train.1",
		Image:     image,
		Command:   []string{"trainer", "train", "--samples", "400", "--epochs", "100", "--seed", "7"},
		Outputs:   []string{"metrics.json", "model.json"},
		Resources: runtimes.Resources{MilliCPU: 1000, MemoryBytes: 256 << 20, MaxDuration: 2 * time.Minute},
	}
	if st := runToEnd(t, r, train); st.State != runtimes.StateExited || st.ExitCode != 0 {
		t.Fatalf("train: %+v", st)
	}
	collected := t.TempDir()
	outs, err := r.Collect(ctx, train.ID, collected)
	if err != nil {
		t.Fatal(err)
	}
	var metrics struct {
		Accuracy float64 `json:"accuracy"`
		Samples  int     `json:"samples"`
		Epochs   int     `json:"epochs"`
	}
	b, err := os.ReadFile(outs[0].Local)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &metrics); err != nil {
		t.Fatal(err)
	}
	if metrics.Accuracy < 0.8 || metrics.Samples != 400 || metrics.Epochs != 100 {
		t.Fatalf("metrics %s", b)
	}
	for _, tc := range []struct {
		id, min string
		exit    int
	}{{"job-t.check.1", "0.8", 0}, {"job-t.check-strict.1", "1.01", 1}} {
		check := runtimes.TaskSpec{
			ID:      tc.id,
			Image:   image,
			Command: []string{"trainer", "check", "--file", "/in/train/metrics.json", "--metric", "accuracy", "--min", tc.min},
			Inputs:  []runtimes.Mount{{Source: collected, Target: "/in/train"}},
		}
		if st := runToEnd(t, r, check); st.State != runtimes.StateExited || st.ExitCode != tc.exit {
			t.Fatalf("check --min %s: %+v", tc.min, st)
		}
		if err := r.Cleanup(ctx, tc.id); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Cleanup(ctx, train.ID); err != nil {
		t.Fatal(err)
	}
	assertClean(t, r)
}
