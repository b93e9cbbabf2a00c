package containerd

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cdi"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	cdireg "tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/accordmesh/accord/runtimes"
)

// cfsPeriod is the CFS period the CPU quota is expressed in (100 ms, the kernel default).
const cfsPeriod = 100_000

// minCFSQuota is the smallest CFS quota the kernel accepts (1 ms per
// period): a request under 10m CPU runs at 10m rather than failing to start.
const minCFSQuota = 1_000

// cfsQuota is the CFS quota, in µs per cfsPeriod, of a CPU request.
func cfsQuota(milliCPU int64) int64 { return max(milliCPU*cfsPeriod/1000, minCFSQuota) }

// defaultGPUVendor prefixes GPU device names given without a CDI kind.
const defaultGPUVendor = "nvidia.com/gpu"

// specOpts turns a task into OCI spec options: the sandbox, image config
// (when img is not nil), command, env, limits, the output bind mount,
// read-only inputs and CDI devices. Under taskDir, out is the host
// directory mounted at the output dir and in/N the view of input N (see
// mountOutput and mountInputs).
func (r *Runtime) specOpts(img containerd.Image, spec runtimes.TaskSpec, taskDir string) ([]oci.SpecOpts, error) {
	opts := r.sandboxOpts()
	if img != nil {
		if len(spec.Command) > 0 {
			opts = append(opts, oci.WithImageConfigArgs(img, spec.Command))
		} else {
			opts = append(opts, oci.WithImageConfig(img))
		}
	} else if len(spec.Command) > 0 {
		opts = append(opts, oci.WithProcessArgs(spec.Command...))
	}
	outDir := spec.OutputDir
	if outDir == "" {
		outDir = DefaultOutputDir
	}
	env := []string{"ACCORD_OUTPUT_DIR=" + outDir, "ACCORD_TASK_ID=" + spec.ID}
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("%w: env name %q", runtimes.ErrInvalid, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+spec.Env[k])
	}
	opts = append(opts, oci.WithEnv(env))
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}

	res := spec.Resources
	if res.MemoryBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(res.MemoryBytes)))
		if swapAccounting() {
			// Memory+swap equal to the limit: no swap beyond it, so exceeding it is an OOM kill.
			opts = append(opts, oci.WithMemorySwap(res.MemoryBytes))
		}
	}
	if res.MilliCPU > 0 {
		opts = append(opts, oci.WithCPUCFS(cfsQuota(res.MilliCPU), cfsPeriod))
	}
	pids := res.Pids
	if pids == 0 {
		pids = r.opts.Pids
	}
	opts = append(opts, oci.WithPidsLimit(pids))

	mounts := []specs.Mount{{
		Destination: outDir, Type: "bind", Source: filepath.Join(taskDir, "out"),
		Options: []string{"rbind", "rw", "nosuid", "nodev"},
	}}
	for i, in := range spec.Inputs {
		if !path.IsAbs(in.Target) || !strings.HasPrefix(in.Source, "/") {
			return nil, fmt.Errorf("%w: input mount %q → %q must use absolute paths", runtimes.ErrInvalid, in.Source, in.Target)
		}
		mounts = append(mounts, specs.Mount{
			Destination: in.Target, Type: "bind", Source: inputView(taskDir, i),
			Options: []string{"rbind", "ro", "nosuid", "nodev"},
		})
	}
	opts = append(opts, oci.WithMounts(mounts))

	if spec.NetNS != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: spec.NetNS}), withEmptySys)
	}
	if devs := gpuDevices(res); len(devs) > 0 {
		opts = append(opts, cdi.WithCDIDevices(devs...))
	}
	return opts, nil
}

// withEmptySys replaces the sysfs mount at /sys with an empty read-only
// tmpfs. A task in a user namespace that joins a network namespace it
// does not own (a CNI namespace made by the worker) may not mount sysfs
// (the kernel ties sysfs to the network namespace's owner), and binding
// the host's /sys instead would show it the host's devices.
func withEmptySys(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	for i, m := range s.Mounts {
		if m.Destination == "/sys" {
			s.Mounts[i] = specs.Mount{Destination: "/sys", Type: "tmpfs", Source: "tmpfs",
				Options: []string{"nosuid", "noexec", "nodev", "ro", "size=4k"}}
		}
	}
	return nil
}

// gpuDevices names the CDI devices for a task: the exact devices granted at
// placement when given ("0" becomes "nvidia.com/gpu=0"), else the first
// GPUs devices by index.
func gpuDevices(res runtimes.Resources) []string {
	var devs []string
	for _, d := range res.GPUDevices {
		if !strings.Contains(d, "=") {
			d = defaultGPUVendor + "=" + d
		}
		devs = append(devs, d)
	}
	if len(devs) == 0 {
		for i := range res.GPUs {
			devs = append(devs, fmt.Sprintf("%s=%d", defaultGPUVendor, i))
		}
	}
	return devs
}

// configureCDI points the process-wide CDI registry at dirs.
func configureCDI(dirs []string) error {
	if err := cdireg.Configure(cdireg.WithSpecDirs(dirs...)); err != nil {
		return fmt.Errorf("containerd: CDI spec dirs %v: %w", dirs, err)
	}
	return nil
}
