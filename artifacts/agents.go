package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/internal/names"
)

// Provider agents on other machines reach the store over HTTP (HTTP, and
// the control plane's /v1/blobs and /v1/outputs routes), and may read only
// what the jobs awarded to them need. The control plane records this as
// marker files:
//
//	Dir/agents/jobs/<job>                             "<provider> <tenant>", the job's award
//	Dir/agents/providers/<provider>/blobs/<hex>       the provider may read the blob
//	Dir/agents/providers/<provider>/tenants/<t>/<hex> ... and use it as tenant t's input
//
// A job's grants are recorded when it is placed (its plan, the inputs and
// images its tenant owns) and when its results are sealed; the outputs an
// agent pushes for a job are granted to the job's tenant (Grant) and to
// the agent. Reads are scoped to the provider, input ownership to the
// provider and tenant, so a provider that ran tenant a's job cannot pass
// a's inputs off as tenant b's.

// ErrNoAward is a job that no provider agent was awarded.
var ErrNoAward = errors.New("artifacts: job not awarded to a provider agent")

// jobIDPattern is what a job ID may look like in a file name.
var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

func checkJobID(jobID string) error {
	if !jobIDPattern.MatchString(jobID) {
		return fmt.Errorf("%w: job ID %q", ErrRefused, jobID)
	}
	return nil
}

func (l Local) agentsDir() string { return filepath.Join(l.Dir, "agents") }

func (l Local) awardPath(jobID string) string { return filepath.Join(l.agentsDir(), "jobs", jobID) }

func (l Local) agentBlob(provider, h string) string {
	return filepath.Join(l.agentsDir(), "providers", provider, "blobs", h)
}

func (l Local) agentTenantBlob(provider, tenant, h string) string {
	return filepath.Join(l.agentsDir(), "providers", provider, "tenants", tenant, h)
}

// AwardJob records that provider's agent runs job for tenant. Idempotent;
// a later award (the job placed again elsewhere) replaces it, and what the
// earlier provider was granted stays granted.
func (l Local) AwardJob(jobID, provider, tenant string) error {
	return l.AwardJobTo(jobID, tenant, []string{provider})
}

// AwardJobTo records that the agents of providers run job for tenant: the
// parts of a split job, each provider once. Like AwardJob it replaces an
// earlier award.
func (l Local) AwardJobTo(jobID, tenant string, providers []string) error {
	if err := checkJobID(jobID); err != nil {
		return err
	}
	if err := names.Tenant(tenant); err != nil {
		return fmt.Errorf("artifacts: award: %w", err)
	}
	if len(providers) == 0 || len(providers) > maxAwardees {
		return fmt.Errorf("%w: award of %s names %d providers (1 to %d)", ErrRefused, jobID, len(providers), maxAwardees)
	}
	var b strings.Builder
	for i, p := range providers {
		if err := names.Provider(p); err != nil {
			return fmt.Errorf("artifacts: award: %w", err)
		}
		if slices.Contains(providers[:i], p) {
			return fmt.Errorf("%w: award of %s names provider %s twice", ErrRefused, jobID, p)
		}
		b.WriteString(p + " " + tenant + "\n")
	}
	p := l.awardPath(jobID)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("artifacts: award: %w", err)
	}
	if err := atomicfile.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("artifacts: award: %w", err)
	}
	return nil
}

// maxAwardees bounds the providers of one job's award (and its record).
const maxAwardees = 256

// JobAward returns the providers and tenant of a job AwardJob or
// AwardJobTo recorded, or ErrNoAward.
func (l Local) JobAward(jobID string) (providers []string, tenant string, err error) {
	if err := checkJobID(jobID); err != nil {
		return nil, "", err
	}
	b, err := readBounded(l.awardPath(jobID), maxAwardees*160)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("%w: %s", ErrNoAward, jobID)
	}
	if err != nil {
		return nil, "", fmt.Errorf("artifacts: award of %s: %w", jobID, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		p, t, ok := strings.Cut(line, " ")
		if !ok || names.Provider(p) != nil || names.Tenant(t) != nil || (tenant != "" && t != tenant) {
			return nil, "", fmt.Errorf("artifacts: award of %s: malformed record", jobID)
		}
		providers, tenant = append(providers, p), t
	}
	return providers, tenant, nil
}

// readBounded reads a small record file, refusing one over limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("record over %d bytes", limit)
	}
	return b, nil
}

// GrantJob lets the agents awarded job read digest (and, for a tree, every
// blob it lists); with asInput, also use it as the job's tenant's input.
// A job with no agent award is ErrNoAward. It trusts its caller (the
// control plane's own activities) to grant only what the job needs and,
// for inputs, what the tenant owns. Idempotent.
func (l Local) GrantJob(ctx context.Context, jobID, digest string, asInput bool) error {
	providers, tenant, err := l.JobAward(jobID)
	if err != nil {
		return err
	}
	if !asInput {
		tenant = ""
	}
	for _, p := range providers {
		if err := l.GrantAgent(ctx, p, tenant, digest); err != nil {
			return err
		}
	}
	return nil
}

// GrantAgent lets provider read digest (and a tree's blobs) and, when
// tenant is not empty, use it as that tenant's input. Idempotent.
func (l Local) GrantAgent(ctx context.Context, provider, tenant, digest string) error {
	if err := names.Provider(provider); err != nil {
		return fmt.Errorf("artifacts: grant agent: %w", err)
	}
	if tenant != "" {
		if err := names.Tenant(tenant); err != nil {
			return fmt.Errorf("artifacts: grant agent: %w", err)
		}
	}
	hexes, err := l.closure(ctx, digest)
	if err != nil {
		return fmt.Errorf("artifacts: grant agent: %w", err)
	}
	for _, h := range hexes { // a tree's entries first, the tree last
		if err := touch(l.agentBlob(provider, h)); err != nil {
			return err
		}
		if tenant != "" {
			if err := touch(l.agentTenantBlob(provider, tenant, h)); err != nil {
				return err
			}
		}
	}
	return nil
}

// closure is digest's hex and, for a tree, its entries' before it.
func (l Local) closure(ctx context.Context, digest string) ([]string, error) {
	h, err := hexOf(digest)
	if err != nil {
		return nil, err
	}
	kind, err := l.Kind(ctx, digest)
	if err != nil {
		return nil, err
	}
	var out []string
	if kind == KindTree {
		t, err := l.ReadTree(ctx, digest)
		if err != nil {
			return nil, err
		}
		for _, e := range t.Entries {
			out = append(out, e.Digest[len("sha256:"):])
		}
	}
	return append(out, h), nil
}

func touch(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("artifacts: grant agent: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("artifacts: grant agent: %w", err)
	}
	return f.Close()
}

// AgentReads reports whether provider may read digest.
func (l Local) AgentReads(provider, digest string) (bool, error) {
	if err := names.Provider(provider); err != nil {
		return false, fmt.Errorf("artifacts: agent reads: %w", err)
	}
	h, err := hexOf(digest)
	if err != nil {
		return false, err
	}
	return exists(l.agentBlob(provider, h))
}

// AgentOwns reports whether provider may use digest as tenant's input.
func (l Local) AgentOwns(provider, tenant, digest string) (bool, error) {
	if err := names.Provider(provider); err != nil {
		return false, fmt.Errorf("artifacts: agent owns: %w", err)
	}
	if err := names.Tenant(tenant); err != nil {
		return false, fmt.Errorf("artifacts: agent owns: %w", err)
	}
	h, err := hexOf(digest)
	if err != nil {
		return false, err
	}
	return exists(l.agentTenantBlob(provider, tenant, h))
}

func exists(p string) (bool, error) {
	_, err := os.Lstat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("artifacts: %w", err)
}

// Open returns the stored blob with digest for streaming, and its size.
// The bytes are not verified here: the reader checks them against the
// digest (HTTP does).
func (l Local) Open(digest string) (io.ReadCloser, int64, error) {
	h, err := hexOf(digest)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(l.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("artifacts: open %s: %w", digest, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("artifacts: open %s: not a regular file (%v)", digest, err)
	}
	return f, fi.Size(), nil
}

// PutOutput stores the file at path, a collected output of job, and grants
// it to the job's tenant and agents: what the control plane does for
// POST /v1/outputs, for an agent that shares the store's directory (the
// same-machine shortcut). A job no agent was awarded is ErrNoAward.
func (l Local) PutOutput(ctx context.Context, jobID, path string) (BlobResponse, error) {
	providers, tenant, err := l.JobAward(jobID)
	if err != nil {
		return BlobResponse{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return BlobResponse{}, fmt.Errorf("artifacts: put output: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return BlobResponse{}, fmt.Errorf("artifacts: put output: %s is not a regular file (%v)", filepath.Base(path), err)
	}
	digest, size, err := l.PutReader(ctx, f, fi.Size())
	if err != nil {
		return BlobResponse{}, err
	}
	kind, err := l.Claim(ctx, tenant, digest)
	for _, p := range providers {
		if err == nil {
			err = l.GrantAgent(ctx, p, tenant, digest)
		}
	}
	if err != nil {
		return BlobResponse{}, err
	}
	return BlobResponse{Digest: digest, Size: size, Kind: kind, Tenant: tenant}, nil
}
