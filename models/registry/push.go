package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/accordmesh/accord/models"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
)

// Pushed is a published model version.
type Pushed struct {
	// Ref is name@version.
	Ref string
	// Digest and Size describe the OCI manifest (Size is its length in
	// bytes): the pin a spec records.
	Digest string
	Size   int64
	// Bytes is the sum of the model's file sizes.
	Bytes int64
}

// Push uploads dir's files as a ModelPack v0.0.7 artifact (one raw layer
// per file in models.Layers order, the models.ModelPackConfig config,
// artifactType models.ArtifactType, models.ManifestAnnotations), attaches
// the Accord manifest and every extra attachment as referrers, and then
// tags it with the version in repository <prefix>/<name>, so a tagged
// version always has its Accord manifest.
//
// Before uploading, m must be valid, the files under dir (models.ScanDir)
// must be exactly m.Files (else a models.ErrVerify error naming the
// file), and when lower versions exist the highest one's Accord manifest
// must accept m as its successor (models.CheckChange, models.ErrChange).
// The OCI manifest is a pure function of m, so a version that exists with
// the same manifest digest is an idempotent success (missing attachments
// are re-attached: Push is retry-safe); with another digest it is
// ErrExists.
func (c *Client) Push(ctx context.Context, dir string, m *models.Manifest, extra ...Attachment) (Pushed, error) {
	if err := m.Validate(); err != nil {
		return Pushed{}, fmt.Errorf("registry: push: %w", err)
	}
	p, err := c.push(ctx, dir, m, extra)
	if err != nil {
		return Pushed{}, fmt.Errorf("registry: push %s: %w", m.Ref(), err)
	}
	return p, nil
}

func (c *Client) push(ctx context.Context, dir string, m *models.Manifest, extra []Attachment) (Pushed, error) {
	atts, err := c.pushAttachments(m, extra)
	if err != nil {
		return Pushed{}, err
	}
	if err := checkDirFiles(dir, m); err != nil {
		return Pushed{}, err
	}
	art, err := buildArtifact(m)
	if err != nil {
		return Pushed{}, err
	}
	repo, err := c.repo(m.Name)
	if err != nil {
		return Pushed{}, err
	}
	pushed := Pushed{Ref: m.Ref(), Digest: art.desc.Digest.String(), Size: art.desc.Size, Bytes: art.bytes}
	exists, err := c.checkSuccession(ctx, repo, m, art.desc)
	if err != nil {
		return Pushed{}, err
	}
	if exists {
		return pushed, c.attachAll(ctx, repo, m.Name, art.desc, atts)
	}
	if err := uploadFiles(ctx, repo, dir, art.manifest.Layers); err != nil {
		return Pushed{}, err
	}
	if err := pushBytes(ctx, repo.Blobs(), art.manifest.Config, art.config); err != nil {
		return Pushed{}, fmt.Errorf("upload config: %w", err)
	}
	if err := pushBytes(ctx, repo.Manifests(), art.desc, art.raw); err != nil {
		return Pushed{}, fmt.Errorf("upload manifest: %w", err)
	}
	if err := c.attachAll(ctx, repo, m.Name, art.desc, atts); err != nil {
		return Pushed{}, err
	}
	return pushed, tagVersion(ctx, repo, m.Version, art)
}

// pushAttachments checks the extra attachments and puts the Accord
// manifest first.
func (c *Client) pushAttachments(m *models.Manifest, extra []Attachment) ([]Attachment, error) {
	am, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode Accord manifest: %w", err)
	}
	if int64(len(am)) > c.opts.MaxManifestBytes {
		return nil, fmt.Errorf("%w: Accord manifest is %d bytes, at most %d", ErrInvalid, len(am), c.opts.MaxManifestBytes)
	}
	atts := []Attachment{{ArtifactType: AccordManifestType, MediaType: AccordManifestType, Data: am}}
	for i, a := range extra {
		a, err := c.checkAttachment(a)
		if err != nil {
			return nil, fmt.Errorf("attachment %d: %w", i, err)
		}
		atts = append(atts, a)
	}
	return atts, nil
}

// checkDirFiles checks that dir holds exactly the manifest's files, with
// their digests and sizes.
func checkDirFiles(dir string, m *models.Manifest) error {
	files, err := models.ScanDir(dir)
	if err != nil {
		return err
	}
	want := make(map[string]models.File, len(m.Files))
	for _, f := range m.Files {
		want[f.Path] = f
	}
	for _, f := range files {
		w, ok := want[f.Path]
		switch {
		case !ok:
			return fmt.Errorf("%w: %s is in the directory but not in the manifest", models.ErrVerify, f.Path)
		case w.Digest != f.Digest || w.Size != f.Size:
			return fmt.Errorf("%w: %s is %s (%d bytes), the manifest says %s (%d bytes)",
				models.ErrVerify, f.Path, f.Digest, f.Size, w.Digest, w.Size)
		}
		delete(want, f.Path)
	}
	for _, f := range m.Files {
		if _, missing := want[f.Path]; missing {
			return fmt.Errorf("%w: %s is in the manifest but not in the directory", models.ErrVerify, f.Path)
		}
	}
	return nil
}

// artifact is a model's OCI manifest and config, built from its Accord
// manifest alone.
type artifact struct {
	manifest ocispec.Manifest
	raw      []byte
	desc     ocispec.Descriptor
	config   []byte
	bytes    int64
}

// buildArtifact lays a model out as ModelPack: deterministic (no creation
// time), so the same Accord manifest always gives the same digest.
func buildArtifact(m *models.Manifest) (*artifact, error) {
	layers, err := models.Layers(m)
	if err != nil {
		return nil, err
	}
	cfg, err := models.ModelPackConfig(m)
	if err != nil {
		return nil, err
	}
	man := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: models.ArtifactType,
		Config:       descriptorOf(models.ConfigMediaType, cfg),
		Layers:       layers,
		Annotations:  models.ManifestAnnotations(m),
	}
	raw, err := json.Marshal(man)
	if err != nil {
		return nil, fmt.Errorf("encode OCI manifest: %w", err)
	}
	desc := descriptorOf(ocispec.MediaTypeImageManifest, raw)
	desc.ArtifactType = models.ArtifactType
	var total int64
	for _, l := range layers {
		total += l.Size
	}
	return &artifact{manifest: man, raw: raw, desc: desc, config: cfg, bytes: total}, nil
}

// checkSuccession says whether m's version already exists with the same
// digest (true), fails with ErrExists when it exists with another, and
// otherwise checks m against the highest lower version's Accord manifest
// (or, below every version, that it has the name's owner).
func (c *Client) checkSuccession(ctx context.Context, repo *remote.Repository, m *models.Manifest, desc ocispec.Descriptor) (bool, error) {
	versions, err := c.versions(ctx, repo)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	v, _ := models.ParseVersion(m.Version)
	var prev *models.Version
	for i := range versions {
		switch versions[i].Compare(v) {
		case 0:
			return true, sameDigest(ctx, repo, m.Version, desc)
		case -1:
			prev = &versions[i]
		}
	}
	if prev == nil && len(versions) > 0 {
		// Below every existing version: no predecessor to check the change
		// against, but the name's owner still holds (versions ascend).
		first, err := c.inspect(ctx, m.Name, versions[0].String(), false)
		if err != nil {
			return false, fmt.Errorf("version %s: %w", versions[0], err)
		}
		if first.Manifest.Owner != m.Owner {
			return false, fmt.Errorf("%w: %s is owned by %s; %s cannot publish a version of it", models.ErrChange, m.Name, first.Manifest.Owner, m.Owner)
		}
	}
	if prev == nil {
		return false, models.CheckChange(nil, m)
	}
	pm, err := c.inspect(ctx, m.Name, prev.String(), false)
	if err != nil {
		return false, fmt.Errorf("previous version %s: %w", prev, err)
	}
	return false, models.CheckChange(pm.Manifest, m)
}

// sameDigest checks that tag names desc; ErrExists otherwise.
func sameDigest(ctx context.Context, repo *remote.Repository, tag string, desc ocispec.Descriptor) error {
	got, err := repo.Resolve(ctx, tag)
	if err != nil {
		return notFound(err)
	}
	if got.Digest != desc.Digest {
		return fmt.Errorf("%w: %s is %s, this content is %s", ErrExists, tag, got.Digest, desc.Digest)
	}
	return nil
}

// uploadFiles streams each layer's file to the registry unless it is
// already there. The registry checks each upload's digest, so a file that
// changed since it was scanned is refused.
func uploadFiles(ctx context.Context, repo *remote.Repository, dir string, layers []ocispec.Descriptor) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, l := range layers {
		if err := uploadFile(ctx, repo, root, l); err != nil {
			return fmt.Errorf("upload %s: %w", l.Annotations[models.AnnotationFilepath], err)
		}
	}
	return nil
}

func uploadFile(ctx context.Context, repo *remote.Repository, root *os.Root, l ocispec.Descriptor) error {
	ok, err := repo.Blobs().Exists(ctx, l)
	if err != nil || ok {
		return err
	}
	f, err := root.Open(l.Annotations[models.AnnotationFilepath])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() != l.Size {
		return fmt.Errorf("%w: changed since it was scanned", models.ErrVerify)
	}
	err = repo.Blobs().Push(ctx, l, io.LimitReader(f, l.Size))
	if err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return err
	}
	return nil
}

// tagVersion tags the pushed manifest with its version, refusing when the
// tag appeared meanwhile with other content, and re-reads it afterwards:
// registries have no conditional tag update, so of two publishers racing
// on one version with different content, the one whose tag did not stick
// gets ErrExists.
func tagVersion(ctx context.Context, repo *remote.Repository, version string, art *artifact) error {
	if err := sameDigest(ctx, repo, version, art.desc); err == nil || !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := repo.PushReference(ctx, art.desc, bytes.NewReader(art.raw), version); err != nil {
		return fmt.Errorf("tag %s: %w", version, err)
	}
	return sameDigest(ctx, repo, version, art.desc)
}
