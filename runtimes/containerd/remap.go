package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"
)

// withRemappedSnapshot gives the container a writable snapshot on top of a
// copy of img's root filesystem whose owners are shifted into the task's
// uid range (0 → UserNSBase), the copy made first when no one has. It does
// what containerd's WithUserNSRemappedSnapshot does, except that
// concurrent creators (tasks of one image starting together, or two
// workers) each prepare the copy under a key of their own and the first
// commit wins, so neither fails nor leaves a stuck snapshot behind.
func (r *Runtime) withRemappedSnapshot(id string, img containerd.Image) containerd.NewContainerOpts {
	return func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		diffIDs, err := img.RootFS(ctx)
		if err != nil {
			return fmt.Errorf("containerd: rootfs of %s: %w", img.Name(), err)
		}
		parent := identity.ChainID(diffIDs).String()
		remapped := fmt.Sprintf("accord-userns-%d-%s", r.opts.UserNSBase, parent)
		sn := client.SnapshotService(r.opts.Snapshotter)
		for attempt := 0; ; attempt++ {
			if _, err := sn.Stat(ctx, remapped); errdefs.IsNotFound(err) {
				err = r.remap(ctx, sn, parent, remapped)
				if err != nil {
					return err
				}
			} else if err != nil {
				return fmt.Errorf("containerd: remapped snapshot: %w", err)
			}
			_, err := sn.Prepare(ctx, id, remapped)
			if errdefs.IsNotFound(err) && attempt == 0 {
				continue // garbage-collected between Stat and Prepare: make it again
			}
			if err != nil {
				return fmt.Errorf("containerd: snapshot: %w", err)
			}
			break
		}
		c.Snapshotter, c.SnapshotKey, c.Image = r.opts.Snapshotter, id, img.Name()
		return r.keepRemapped(ctx, client, img, remapped)
	}
}

// keepRemapped makes img reference its remapped copy, so that the copy
// lives as long as the image instead of being collected, and made again,
// whenever no container uses it.
func (r *Runtime) keepRemapped(ctx context.Context, client *containerd.Client, img containerd.Image, remapped string) error {
	label := "containerd.io/gc.ref.snapshot." + r.opts.Snapshotter + "/accord-userns"
	if img.Labels()[label] == remapped {
		return nil
	}
	_, err := client.ImageService().Update(ctx, images.Image{Name: img.Name(), Labels: map[string]string{label: remapped}}, "labels."+label)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("containerd: label image %s: %w", img.Name(), err)
	}
	return nil
}

// remap commits, as remapped, a copy of the committed snapshot parent
// with every owner shifted by UserNSBase. Losing the race to commit is
// not an error: the winner's copy is the same.
func (r *Runtime) remap(ctx context.Context, sn snapshots.Snapshotter, parent, remapped string) error {
	tmp := remapped + "-" + randomHex()
	mounts, err := sn.Prepare(ctx, tmp, parent)
	if err != nil {
		return fmt.Errorf("containerd: remap snapshot: %w", err)
	}
	defer sn.Remove(ctx, tmp) // gone after a successful commit; best effort otherwise
	if err := mount.WithTempMount(ctx, mounts, func(root string) error {
		return filepath.WalkDir(root, r.shiftOwner)
	}); err != nil {
		return fmt.Errorf("containerd: remap snapshot: %w", err)
	}
	if err := sn.Commit(ctx, remapped, tmp); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("containerd: remap snapshot: %w", err)
	}
	return nil
}

// shiftOwner chowns one file (not following symlinks) from uid u to
// UserNSBase+u, keeping setuid, setgid and sticky bits, which chown clears.
func (r *Runtime) shiftOwner(p string, d fs.DirEntry, err error) error {
	if err != nil {
		return err
	}
	info, err := d.Info()
	if err != nil {
		return err
	}
	st := info.Sys().(*syscall.Stat_t)
	if st.Uid >= userNSSize || st.Gid >= userNSSize {
		return fmt.Errorf("%s: owner %d:%d is outside the %d ids a task maps", p, st.Uid, st.Gid, userNSSize)
	}
	base := r.opts.UserNSBase
	if err := os.Lchown(p, int(base+st.Uid), int(base+st.Gid)); err != nil {
		return err
	}
	if mode := info.Mode(); mode&os.ModeSymlink == 0 && mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
		return os.Chmod(p, mode)
	}
	return nil
}

func randomHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
