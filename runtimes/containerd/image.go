package containerd

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/accordmesh/accord/runtimes"
)

// ArchivePrefix marks an image given as a local OCI archive.
const ArchivePrefix = "oci-archive:"

// Prepare implements runtimes.Runtime. An "oci-archive:PATH" image is
// imported (again, if it changed) and recorded under a name derived from
// its absolute path; a reference is pulled unless already present. Either
// way the image is unpacked into the snapshotter. Repeating it is cheap and
// harmless.
func (r *Runtime) Prepare(ctx context.Context, image string) (string, error) {
	ctx = r.ctx(ctx)
	var img containerd.Image
	var err error
	if path, ok := strings.CutPrefix(image, ArchivePrefix); ok {
		img, err = r.importArchive(ctx, path)
	} else {
		img, err = r.pull(ctx, image)
	}
	if err != nil {
		return "", err
	}
	unpacked, err := img.IsUnpacked(ctx, r.opts.Snapshotter)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", runtimes.ErrImage, image, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.opts.Snapshotter); err != nil {
			return "", fmt.Errorf("%w: unpack %s: %v", runtimes.ErrImage, image, err)
		}
	}
	return img.Target().Digest.String(), nil
}

// archiveName is the image-store name of the archive at an absolute path.
func archiveName(abs string) string {
	sum := sha256.Sum256([]byte(abs))
	return fmt.Sprintf("accord.local/oci-archive/%x:latest", sum[:8])
}

func (r *Runtime) importArchive(ctx context.Context, path string) (containerd.Image, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", runtimes.ErrImage, path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", runtimes.ErrImage, err)
	}
	defer f.Close()
	imgs, err := r.client.Import(ctx, f,
		containerd.WithDigestRef(func(d digest.Digest) string { return "accord.local/oci-archive@" + d.String() }),
		containerd.WithSkipDigestRef(func(name string) bool { return name != "" }))
	if err != nil {
		return nil, fmt.Errorf("%w: import %s: %v", runtimes.ErrImage, abs, err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("%w: %s holds no image for this platform", runtimes.ErrImage, abs)
	}
	alias := images.Image{Name: archiveName(abs), Target: imgs[0].Target, Labels: map[string]string{"accord.archive": abs}}
	is := r.client.ImageService()
	if _, err := is.Create(ctx, alias); errdefs.IsAlreadyExists(err) {
		_, err = is.Update(ctx, alias)
		if err != nil {
			return nil, fmt.Errorf("%w: name %s: %v", runtimes.ErrImage, abs, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("%w: name %s: %v", runtimes.ErrImage, abs, err)
	}
	return containerd.NewImage(r.client, alias), nil
}

// normalize turns a reference into the fully qualified name containerd
// stores ("busybox" → "docker.io/library/busybox:latest").
func normalize(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("%w: reference %q: %v", runtimes.ErrImage, ref, err)
	}
	return named.String(), nil
}

func (r *Runtime) pull(ctx context.Context, ref string) (containerd.Image, error) {
	name, err := normalize(ref)
	if err != nil {
		return nil, err
	}
	if img, err := r.client.GetImage(ctx, name); err == nil {
		return img, nil
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(r.plainHTTP)),
	})
	img, err := r.client.Pull(ctx, name, containerd.WithResolver(resolver),
		containerd.WithPullUnpack, containerd.WithPullSnapshotter(r.opts.Snapshotter))
	if err != nil {
		return nil, fmt.Errorf("%w: pull %s: %v", runtimes.ErrImage, name, err)
	}
	return img, nil
}

func (r *Runtime) plainHTTP(host string) (bool, error) {
	for _, h := range r.opts.PlainHTTP {
		if h == host {
			return true, nil
		}
	}
	if h, _, ok := strings.Cut(host, ":"); ok && strings.HasPrefix(h, "127.") {
		return true, nil
	}
	return docker.MatchLocalhost(host)
}

// resolveImage finds an already prepared image for a task, preparing it
// when missing.
func (r *Runtime) resolveImage(ctx context.Context, image string) (containerd.Image, error) {
	name := ""
	if path, ok := strings.CutPrefix(image, ArchivePrefix); ok {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", runtimes.ErrImage, path, err)
		}
		name = archiveName(abs)
	} else {
		n, err := normalize(image)
		if err != nil {
			return nil, err
		}
		name = n
	}
	img, err := r.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		if _, err := r.Prepare(ctx, image); err != nil {
			return nil, err
		}
		img, err = r.client.GetImage(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", runtimes.ErrImage, image, err)
	}
	return img, nil
}
