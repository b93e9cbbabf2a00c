package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// InputStore fetches tenants' input artifacts for the provider: blobs a
// tenant pushed (accord data push), addressed by their sha256 digest.
type InputStore interface {
	// Owns reports whether tenant was granted digest (pushed it, or was
	// given it); false for a digest that does not exist.
	Owns(tenant, digest string) (bool, error)
	// Materialize verifies the artifact's digest and places it, read-only,
	// under dst, returning the file or directory to mount. Idempotent.
	Materialize(ctx context.Context, digest, dst string) (string, error)
}

// inputsDir is where materialized artifacts live on this host.
func (a *Activities) inputsDir() string {
	if a.InputsDir != "" {
		return a.InputsDir
	}
	return filepath.Join(filepath.Dir(filepath.Clean(a.JobsDir)), "inputs")
}

// inputSource resolves one task input to the host path to mount: an
// artifact the plan's tenant owns, an upstream task's collected output, or
// a host path under the worker's --host-inputs roots. A sha256 pin is
// checked here, before anything is mounted.
func (a *Activities) inputSource(ctx context.Context, tenant, jobID string, in specs.Input) (string, error) {
	var src string
	var err error
	switch {
	case in.Artifact != "":
		if in.SHA256 != "" && in.SHA256 != in.Artifact {
			return "", permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("input %s: pinned to %s but names artifact %s", in.Name, in.SHA256, in.Artifact))
		}
		src, err = a.artifact(ctx, tenant, in.Artifact, "input "+in.Name)
	case in.From != "":
		up, p, perr := specs.ParseFrom(in.From)
		if perr != nil {
			return "", permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("input %s: %w", in.Name, perr))
		}
		src = filepath.Join(a.OutputsDir(jobID, up), filepath.FromSlash(p))
		if _, serr := os.Stat(src); serr != nil {
			err = permanent(workflows.ErrTypeExecution, fmt.Errorf("input %s: upstream output %s: %w", in.Name, in.From, fs.ErrNotExist))
		}
	case in.Path != "":
		src, err = a.hostPath(in.Path, "input "+in.Name)
	default:
		err = permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("input %s: no artifact, from or path", in.Name))
	}
	if err != nil {
		return "", err
	}
	if in.SHA256 != "" && in.Artifact == "" {
		if err := checkPin(src, in.SHA256); err != nil {
			return "", permanent(workflows.ErrTypeExecution, fmt.Errorf("input %s: %w", in.Name, err))
		}
	}
	return src, nil
}

// artifact materializes digest for tenant, refusing one it was not granted.
func (a *Activities) artifact(ctx context.Context, tenant, digest, what string) (string, error) {
	if a.Inputs == nil {
		return "", permanent(workflows.ErrTypeExecution, fmt.Errorf("%s: artifact %s: this worker has no artifact store for inputs", what, digest))
	}
	ok, err := a.Inputs.Owns(tenant, digest)
	if err != nil {
		return "", fmt.Errorf("%s: artifact %s: %w", what, digest, err)
	}
	if !ok {
		return "", permanent(workflows.ErrTypePolicy, fmt.Errorf("%s: artifact %s is not yours or does not exist", what, digest))
	}
	stop := heartbeat(ctx, "fetching "+digest)
	p, err := a.Inputs.Materialize(ctx, digest, a.inputsDir())
	stop()
	if err != nil {
		return "", blobErr(what+": artifact "+digest, err)
	}
	return p, nil
}

// errHostPath is the refusal of a host path outside the worker's roots.
var errHostPath = errors.New("host path inputs are for operators")

// hostPath checks that p, an absolute host path from the plan, lies under
// one of a.HostInputs and resolves inside that root: os.Root refuses ".."
// and symlinks that leave it. It returns p with its symlinks resolved, so
// what is mounted is what was checked. Errors name only p, as the spec
// gave it, never the roots or a symlink's target.
func (a *Activities) hostPath(p, what string) (string, error) {
	refuse := func(why string) error {
		return permanent(workflows.ErrTypePolicy, fmt.Errorf("%s: %w: %s %s", what, errHostPath, p, why))
	}
	if !filepath.IsAbs(p) {
		return "", refuse("is not absolute")
	}
	clean := filepath.Clean(p)
	for _, root := range a.HostInputs {
		rel, ok := under(root, clean)
		if !ok {
			continue
		}
		real, err := checkInRoot(root, rel)
		if errors.Is(err, fs.ErrNotExist) {
			return "", permanent(workflows.ErrTypeExecution, fmt.Errorf("%s: %s does not exist", what, p))
		}
		if err != nil {
			return "", refuse("leaves its --host-inputs root (through .. or a symlink) or cannot be read")
		}
		return real, nil
	}
	return "", refuse("is outside the worker's --host-inputs roots")
}

// under reports p's path relative to root when p is root or inside it.
func under(root, p string) (string, bool) {
	if !filepath.IsAbs(root) {
		return "", false
	}
	rel, err := filepath.Rel(filepath.Clean(root), p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

// checkInRoot stats rel inside root through os.Root, which refuses any
// resolution that leaves root, then returns the fully resolved path and
// checks it is still inside root's own resolved path.
func checkInRoot(root, rel string) (string, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return "", err
	}
	defer r.Close()
	if _, err := r.Stat(rel); err != nil {
		return "", err
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, rel))
	if err != nil {
		return "", err
	}
	if _, ok := under(realRoot, real); !ok {
		return "", errors.New("resolves outside its root")
	}
	return real, nil
}

// checkPin hashes the regular file at p with a streaming read and compares
// it with want ("sha256:<hex>"). Pins apply to files: a directory, device
// or fifo is refused, not read.
func checkPin(p, want string) error {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return errors.New("sha256 pins apply to files, and this input is a directory (push it with accord data push and use artifact:)")
	}
	f, err := bounded.Open(p)
	if errors.Is(err, bounded.ErrNotRegular) {
		return errors.New("sha256 pin: the input is not a regular file")
	}
	if err != nil {
		return fmt.Errorf("sha256 pin: %w", errors.Unwrap(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sha256 pin: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, fi.Size())); err != nil {
		return fmt.Errorf("sha256 pin: %w", err)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if got != "sha256:"+strings.TrimPrefix(want, "sha256:") {
		return fmt.Errorf("content is %s, but the spec pins %s", got, want)
	}
	return nil
}

// resolveImage turns the image a plan names into what the runtime
// prepares: an artifact:sha256: image becomes the OCI archive materialized
// from the artifact store (if the tenant owns it), an oci-archive: path is
// allowed only under the worker's --host-inputs roots, and a registry
// reference is unchanged.
func (a *Activities) resolveImage(ctx context.Context, tenant, image string) (string, error) {
	if d, ok := strings.CutPrefix(image, specs.ArtifactImagePrefix); ok {
		p, err := a.artifact(ctx, tenant, d, "image")
		if err != nil {
			return "", err
		}
		return "oci-archive:" + p, nil
	}
	if p, ok := strings.CutPrefix(image, "oci-archive:"); ok {
		real, err := a.hostPath(p, "image")
		if err != nil {
			return "", err
		}
		return "oci-archive:" + real, nil
	}
	return image, nil
}
