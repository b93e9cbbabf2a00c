package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/accordmesh/accord/runtimes"
)

// Sandbox defaults filled in by New (see docs/security.md, "Containers").
const (
	// DefaultUserNSBase is the first host uid and gid of the range a
	// task's user namespace maps its uids 0-65535 onto: far above the
	// uids and subuid ranges distributions allocate.
	DefaultUserNSBase = 1_000_000_000
	// userNSSize is how many uids and gids the namespace maps.
	userNSSize = 65536
	// DefaultTmpBytes bounds the tmpfs at /tmp.
	DefaultTmpBytes = 256 << 20
	// DefaultOutputBytes bounds the output directory when the task's
	// Resources.DiskBytes does not.
	DefaultOutputBytes = 1 << 30
	// DefaultLogBytes bounds task.log; output past it is discarded.
	DefaultLogBytes = 16 << 20
)

// idMap maps the namespace's uids (or gids) 0-65535 onto base.
func idMap(base uint32) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: base, Size: userNSSize}}
}

// sandboxOpts is the isolation every task runs under: its own user
// namespace (root inside is an unprivileged host uid), no capabilities,
// no_new_privs, containerd's default seccomp profile, a read-only root
// filesystem and a size-limited tmpfs /tmp. The default spec already gives
// new pid, ipc, uts, mount and network namespaces (loopback only) and the
// OCI masked and read-only /proc paths.
func (r *Runtime) sandboxOpts() []oci.SpecOpts {
	m := idMap(r.opts.UserNSBase)
	return []oci.SpecOpts{
		oci.WithUserNamespace(m, m),
		oci.WithCapabilities(nil),
		oci.WithAmbientCapabilities(nil),
		oci.WithNoNewPrivileges,
		seccomp.WithDefaultProfile(), // after the capabilities, which it reads
		oci.WithRootFSReadonly(),
		oci.WithMounts([]specs.Mount{{
			Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(r.opts.TmpBytes, 10)},
		}}),
	}
}

// outputBytes is the size limit of a task's output directory.
func (r *Runtime) outputBytes(spec runtimes.TaskSpec) int64 {
	if spec.Resources.DiskBytes > 0 {
		return spec.Resources.DiskBytes
	}
	return r.opts.OutputBytes
}

// mountOutput mounts a tmpfs of the task's output limit at outHost, owned
// by the namespace's root, unless one is mounted there already (a retried
// create). It outlives the task so that Collect can read it; Cleanup
// unmounts it. Its pages are charged to the task's memory cgroup.
func (r *Runtime) mountOutput(spec runtimes.TaskSpec, outHost string) error {
	if err := os.MkdirAll(outHost, 0o700); err != nil {
		return fmt.Errorf("containerd: output dir: %w", err)
	}
	if mounted, err := mountinfo.Mounted(outHost); err != nil || mounted {
		return err
	}
	base := r.opts.UserNSBase
	data := fmt.Sprintf("size=%d,mode=0777,uid=%d,gid=%d", r.outputBytes(spec), base, base)
	if err := unix.Mount("tmpfs", outHost, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("containerd: mount output dir: %w", err)
	}
	return nil
}

// inputView is where input i of the task in taskDir is seen from the host.
func inputView(taskDir string, i int) string {
	return filepath.Join(taskDir, "in", strconv.Itoa(i))
}

// mountInputs gives each input an id-mapped, read-only view (inputView),
// through which files the host's root owns appear owned by the namespace's
// root: the task reads inputs as their owner, whatever their mode, and no
// host file changes.
func (r *Runtime) mountInputs(spec runtimes.TaskSpec, taskDir string) error {
	if len(spec.Inputs) == 0 {
		return nil
	}
	m := fmt.Sprintf("0:%d:%d", r.opts.UserNSBase, userNSSize)
	userns, err := mount.GetUsernsFD(m, m)
	if err != nil {
		return fmt.Errorf("containerd: user namespace for inputs: %w", err)
	}
	defer userns.Close()
	for i, in := range spec.Inputs {
		if err := idmapView(in.Source, inputView(taskDir, i), int(userns.Fd())); err != nil {
			return fmt.Errorf("containerd: input %s: %w", in.Source, err)
		}
	}
	return nil
}

// idmapView mounts an id-mapped read-only clone of src at view (a
// directory or an empty file, like src), unless one is there already.
func idmapView(src, view string, usernsFD int) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(view), 0o700); err != nil {
		return err
	}
	if fi.IsDir() {
		err = os.Mkdir(view, 0o700)
	} else {
		var f *os.File
		if f, err = os.OpenFile(view, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			err = f.Close()
		}
	}
	if errors.Is(err, os.ErrExist) {
		if mounted, merr := mountinfo.Mounted(view); merr != nil || mounted {
			return merr
		}
	} else if err != nil {
		return err
	}
	const attrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	return mount.IDMapMountWithAttrs(src, view, usernsFD, attrs, 0)
}

// unmountUnder detaches every mount at or below dir, deepest first, and
// fails if any is left: removing a directory with an input's view still
// mounted would reach into the host's files.
func unmountUnder(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("containerd: mounts under %s: %w", dir, err)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("containerd: unmount %s: %w", m.Mountpoint, err)
		}
	}
	if left, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir)); err != nil || len(left) > 0 {
		return fmt.Errorf("containerd: %d mounts left under %s (%v)", len(left), dir, err)
	}
	return nil
}
