package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/accordmesh/accord/models"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	orasreg "oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Default bounds on what is read from a registry.
const (
	// DefaultMaxManifestBytes bounds each OCI manifest, referrers index,
	// tag list page and Accord manifest.
	DefaultMaxManifestBytes = 4 << 20
	// DefaultMaxAttachmentBytes bounds each attachment's data.
	DefaultMaxAttachmentBytes = 4 << 20
	// DefaultMaxAttachments bounds the referrers read for one model.
	DefaultMaxAttachments = 256
	// maxListPages bounds tag and catalog pagination.
	maxListPages = 100
	// maxNames bounds Names and Versions.
	maxNames = 100000
)

// Options configure a Client.
type Options struct {
	// PlainHTTP talks HTTP instead of HTTPS (loopback registries in tests).
	PlainHTTP bool
	// Username and Password are basic-auth credentials; empty: anonymous.
	Username, Password string
	// MaxManifestBytes bounds each manifest and index read (default 4 MiB).
	MaxManifestBytes int64
	// MaxAttachmentBytes bounds each attachment's data (default 4 MiB).
	MaxAttachmentBytes int64
	// MaxAttachments bounds the referrers read for a model (default 256).
	MaxAttachments int
	// KeepReferrersIndex keeps superseded referrers-fallback indexes
	// instead of deleting them, for registries with deletes disabled.
	KeepReferrersIndex bool
}

// Client reads and writes models in one registry, under an optional
// repository prefix. It is safe for concurrent use.
type Client struct {
	host   string
	prefix string
	opts   Options
	http   remote.Client

	mu    sync.Mutex
	repos map[string]*remote.Repository
	locks map[string]*sync.Mutex // per attach subject
}

// New returns a client for registry "host:port" or "host:port/prefix";
// models are stored in repositories <prefix>/<name>.
func New(registry string, opts Options) (*Client, error) {
	host, prefix, _ := strings.Cut(registry, "/")
	if err := (orasreg.Reference{Registry: host}).ValidateRegistry(); err != nil {
		return nil, fmt.Errorf("registry: %w: %q: %v", ErrInvalid, registry, err)
	}
	if prefix != "" {
		probe := orasreg.Reference{Registry: host, Repository: prefix + "/x"}
		if err := probe.ValidateRepository(); err != nil {
			return nil, fmt.Errorf("registry: %w: prefix %q: %v", ErrInvalid, prefix, err)
		}
	}
	if opts.MaxManifestBytes <= 0 {
		opts.MaxManifestBytes = DefaultMaxManifestBytes
	}
	if opts.MaxAttachmentBytes <= 0 {
		opts.MaxAttachmentBytes = DefaultMaxAttachmentBytes
	}
	if opts.MaxAttachments <= 0 {
		opts.MaxAttachments = DefaultMaxAttachments
	}
	ac := &auth.Client{Client: retry.DefaultClient, Cache: auth.NewCache()}
	if opts.Username != "" || opts.Password != "" {
		ac.Credential = auth.StaticCredential(host, auth.Credential{Username: opts.Username, Password: opts.Password})
	}
	ac.SetUserAgent("accord-models")
	return &Client{
		host: host, prefix: prefix, opts: opts, http: ac,
		repos: make(map[string]*remote.Repository),
		locks: make(map[string]*sync.Mutex),
	}, nil
}

// repoPath is the repository of a model name.
func (c *Client) repoPath(name string) string {
	if c.prefix == "" {
		return name
	}
	return c.prefix + "/" + name
}

// repo returns the (cached) ORAS repository of a checked model name.
func (c *Client) repo(name string) (*remote.Repository, error) {
	if err := models.CheckName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.repos[name]; ok {
		return r, nil
	}
	ref := orasreg.Reference{Registry: c.host, Repository: c.repoPath(name)}
	if err := ref.ValidateRepository(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	r := &remote.Repository{
		Client:               c.http,
		Reference:            ref,
		PlainHTTP:            c.opts.PlainHTTP,
		TagListPageSize:      1000,
		TagListMaxPages:      maxListPages,
		ReferrerListMaxPages: maxListPages,
		MaxMetadataBytes:     c.opts.MaxManifestBytes,
		SkipReferrersGC:      c.opts.KeepReferrersIndex,
	}
	c.repos[name] = r
	return r, nil
}

// subjectLock serialises attaches to one subject within this process.
func (c *Client) subjectLock(name string, d digest.Digest) *sync.Mutex {
	key := name + "@" + d.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.locks[key]
	if !ok {
		l = new(sync.Mutex)
		c.locks[key] = l
	}
	return l
}

// notFound maps ORAS's not-found onto ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, errdef.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}

// fetchBounded reads the content desc names from f, refusing a descriptor
// over max bytes, reading at most desc.Size bytes and checking that the
// bytes have exactly that size and digest.
func fetchBounded(ctx context.Context, f interface {
	Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error)
}, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if desc.Size < 0 || desc.Size > max {
		return nil, fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalid, desc.Digest, desc.Size, max)
	}
	if err := checkDigest(desc.Digest); err != nil {
		return nil, err
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, notFound(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	if err := verify(b, desc); err != nil {
		return nil, err
	}
	return b, nil
}

// verify checks that b has desc's size and sha256 digest.
func verify(b []byte, desc ocispec.Descriptor) error {
	if int64(len(b)) != desc.Size {
		return fmt.Errorf("%w: %s: got %d bytes, descriptor says %d", models.ErrVerify, desc.Digest, len(b), desc.Size)
	}
	if got := sha256Digest(b); got != desc.Digest {
		return fmt.Errorf("%w: content of %s hashes to %s", models.ErrVerify, desc.Digest, got)
	}
	return nil
}

// checkDigest accepts only sha256 digests: everything Accord writes is
// sha256, and models.CheckDigest's form is what the manifests carry.
func checkDigest(d digest.Digest) error {
	if err := models.CheckDigest(string(d)); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

func sha256Digest(b []byte) digest.Digest {
	h := sha256.Sum256(b)
	return digest.Digest("sha256:" + hex.EncodeToString(h[:]))
}

// descriptorOf describes bytes of a media type.
func descriptorOf(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: sha256Digest(b), Size: int64(len(b))}
}

// pushBytes uploads b unless the registry already has it.
func pushBytes(ctx context.Context, s interface {
	Exists(context.Context, ocispec.Descriptor) (bool, error)
	Push(context.Context, ocispec.Descriptor, io.Reader) error
}, desc ocispec.Descriptor, b []byte) error {
	ok, err := s.Exists(ctx, desc)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if err := s.Push(ctx, desc, bytes.NewReader(b)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return err
	}
	return nil
}
