package containerd

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/accordmesh/accord/runtimes"
)

// cdiSpec describes two fake NVIDIA GPUs the way `nvidia-ctk cdi generate` does.
const cdiSpec = `cdiVersion: "0.6.0"
kind: nvidia.com/gpu
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - {path: /dev/nvidia0, type: c, major: 195, minor: 0}
  - name: "1"
    containerEdits:
      deviceNodes:
        - {path: /dev/nvidia1, type: c, major: 195, minor: 1}
containerEdits:
  env: [NVIDIA_VISIBLE_DEVICES=void]
  deviceNodes:
    - {path: /dev/nvidiactl, type: c, major: 195, minor: 255}
`

// TestGPUSpecHasCDIDevices checks the OCI spec a GPU task would run with;
// no GPU is needed.
func TestGPUSpecHasCDIDevices(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nvidia.yaml"), []byte(cdiSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := configureCDI([]string{dir}); err != nil {
		t.Fatal(err)
	}
	r := &Runtime{opts: Options{Pids: DefaultPids, UserNSBase: DefaultUserNSBase}}
	for _, tc := range []struct {
		name  string
		res   runtimes.Resources
		nodes []string
	}{
		{"count", runtimes.Resources{GPUs: 1}, []string{"/dev/nvidia0", "/dev/nvidiactl"}},
		{"granted", runtimes.Resources{GPUs: 1, GPUDevices: []string{"1"}}, []string{"/dev/nvidia1", "/dev/nvidiactl"}},
		{"none", runtimes.Resources{MemoryBytes: 1 << 30, MilliCPU: 1500}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := runtimes.TaskSpec{ID: "gpu", Image: "x", Command: []string{"nvidia-smi"}, Resources: tc.res}
			spec := generateSpec(t, r, task, "/tmp/task")
			var nodes []string
			for _, d := range spec.Linux.Devices {
				nodes = append(nodes, d.Path)
			}
			slices.Sort(nodes)
			if !slices.Equal(nodes, tc.nodes) {
				t.Fatalf("device nodes %v, want %v", nodes, tc.nodes)
			}
			hasEnv := slices.Contains(spec.Process.Env, "NVIDIA_VISIBLE_DEVICES=void")
			if hasEnv != (tc.nodes != nil) {
				t.Fatalf("CDI env in %v", spec.Process.Env)
			}
			if tc.res.MemoryBytes > 0 && *spec.Linux.Resources.Memory.Limit != tc.res.MemoryBytes {
				t.Fatalf("memory limit %d", *spec.Linux.Resources.Memory.Limit)
			}
			if tc.res.MilliCPU > 0 && *spec.Linux.Resources.CPU.Quota != 150_000 {
				t.Fatalf("cpu quota %d", *spec.Linux.Resources.CPU.Quota)
			}
			if *spec.Linux.Resources.Pids.Limit != DefaultPids {
				t.Fatalf("pids %d", *spec.Linux.Resources.Pids.Limit)
			}
		})
	}
	task := runtimes.TaskSpec{ID: "gpu", Image: "x", Resources: runtimes.Resources{GPUs: 1, GPUDevices: []string{"7"}}}
	opts, _ := r.specOpts(nil, task, "/tmp/task")
	if _, err := oci.GenerateSpec(context.Background(), nil, &containers.Container{ID: "gpu"}, opts...); err == nil {
		t.Fatal("an unknown CDI device was accepted")
	}
}

// The kernel refuses a CFS quota under 1 ms per period ("cpu.cfs_quota_us:
// invalid argument"): small requests are raised to it.
func TestCFSQuotaFloor(t *testing.T) {
	for milli, want := range map[int64]int64{1: 1_000, 9: 1_000, 10: 1_000, 250: 25_000, 1500: 150_000} {
		if got := cfsQuota(milli); got != want {
			t.Errorf("cfsQuota(%dm) = %d, want %d", milli, got, want)
		}
	}
}
