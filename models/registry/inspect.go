package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/accordmesh/accord/models"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// Model is a published model version as read back from the registry.
type Model struct {
	// Ref is name@version.
	Ref string
	// Digest is the OCI manifest's digest.
	Digest   string
	Manifest *models.Manifest
	// Attachments are the model's referrers other than the Accord
	// manifest.
	Attachments []Attachment
	// Layers are the OCI manifest's layers, one per file, checked against
	// Manifest.Files.
	Layers []ocispec.Descriptor
}

// Inspect fetches a model's OCI manifest, its Accord manifest and every
// attachment (each bounded), not the files. ref is name@1.2.3 or
// name@sha256:<hex>. The layers must be exactly the Accord manifest's
// files (path, digest, size, media type), the config must be the one the
// Accord manifest gives, and the name (and version, for a tag) must match
// the reference.
func (c *Client) Inspect(ctx context.Context, ref string) (*Model, error) {
	name, reference, err := parseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("registry: inspect %s: %w", clip(ref), err)
	}
	m, err := c.inspect(ctx, name, reference, true)
	if err != nil {
		return nil, fmt.Errorf("registry: inspect %s: %w", ref, err)
	}
	return m, nil
}

// parseRef splits name@version or name@sha256:<hex>.
func parseRef(ref string) (name, reference string, err error) {
	name, reference, ok := strings.Cut(ref, "@")
	if !ok {
		return "", "", fmt.Errorf("%w: want name@version or name@sha256:<hex>", ErrInvalid)
	}
	if err := models.CheckName(name); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if strings.HasPrefix(reference, "sha256:") {
		return name, reference, checkDigest(digest.Digest(reference))
	}
	if _, err := models.ParseVersion(reference); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return name, reference, nil
}

// inspect reads and checks a model; attachments other than the Accord
// manifest are read only when withAttachments.
func (c *Client) inspect(ctx context.Context, name, reference string, withAttachments bool) (*Model, error) {
	repo, err := c.repo(name)
	if err != nil {
		return nil, err
	}
	man, raw, err := c.fetchModelManifest(ctx, repo, reference)
	if err != nil {
		return nil, err
	}
	subject := descriptorOf(ocispec.MediaTypeImageManifest, raw)
	refs, err := c.referrers(ctx, repo, subject)
	if err != nil {
		return nil, err
	}
	var accord []Attachment
	var extra []Attachment
	for _, r := range refs {
		if r.ArtifactType != AccordManifestType && !withAttachments {
			continue
		}
		a, err := c.fetchAttachment(ctx, repo, subject, r)
		if err != nil {
			return nil, err
		}
		if a.ArtifactType == AccordManifestType {
			accord = append(accord, a)
		} else {
			extra = append(extra, a)
		}
	}
	m, err := c.accordManifest(accord)
	if err != nil {
		return nil, err
	}
	if err := checkModel(m, man, name, reference); err != nil {
		return nil, err
	}
	return &Model{Ref: m.Ref(), Digest: subject.Digest.String(), Manifest: m, Attachments: extra, Layers: man.Layers}, nil
}

// fetchModelManifest fetches the OCI manifest a tag or digest names,
// bounded by MaxManifestBytes, hashed here (the registry's digest header
// is not trusted), and checks that it is a ModelPack model manifest.
func (c *Client) fetchModelManifest(ctx context.Context, repo *remote.Repository, reference string) (*ocispec.Manifest, []byte, error) {
	desc, rc, err := repo.FetchReference(ctx, reference)
	if err != nil {
		return nil, nil, notFound(err)
	}
	defer rc.Close()
	if desc.Size > c.opts.MaxManifestBytes {
		return nil, nil, fmt.Errorf("%w: manifest is %d bytes, at most %d", ErrInvalid, desc.Size, c.opts.MaxManifestBytes)
	}
	raw, err := io.ReadAll(io.LimitReader(rc, c.opts.MaxManifestBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	if int64(len(raw)) > c.opts.MaxManifestBytes {
		return nil, nil, fmt.Errorf("%w: manifest is over %d bytes", ErrInvalid, c.opts.MaxManifestBytes)
	}
	got := sha256Digest(raw)
	if got != desc.Digest || (strings.HasPrefix(reference, "sha256:") && got.String() != reference) {
		return nil, nil, fmt.Errorf("%w: manifest for %s hashes to %s, the registry says %s", models.ErrVerify, reference, got, desc.Digest)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return nil, nil, fmt.Errorf("%w: decode manifest: %v", ErrInvalid, err)
	}
	switch {
	case desc.MediaType != ocispec.MediaTypeImageManifest || man.MediaType != ocispec.MediaTypeImageManifest || man.SchemaVersion != 2:
		return nil, nil, fmt.Errorf("%w: %s is not an OCI image manifest", ErrInvalid, reference)
	case man.ArtifactType != models.ArtifactType:
		return nil, nil, fmt.Errorf("%w: artifact type %q is not %s", ErrInvalid, clip(man.ArtifactType), models.ArtifactType)
	case man.Config.MediaType != models.ConfigMediaType:
		return nil, nil, fmt.Errorf("%w: config media type %q is not %s", ErrInvalid, clip(man.Config.MediaType), models.ConfigMediaType)
	}
	return &man, raw, nil
}

// fetchAttachment reads one referrer: its manifest (bounded, verified),
// which must name subject and have one layer, and that layer's data.
func (c *Client) fetchAttachment(ctx context.Context, repo *remote.Repository, subject, r ocispec.Descriptor) (Attachment, error) {
	if r.MediaType != ocispec.MediaTypeImageManifest {
		return Attachment{}, fmt.Errorf("%w: referrer %s has media type %q", ErrInvalid, r.Digest, clip(r.MediaType))
	}
	raw, err := fetchBounded(ctx, repo.Manifests(), r, c.opts.MaxManifestBytes)
	if err != nil {
		return Attachment{}, fmt.Errorf("referrer %s: %w", r.Digest, err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return Attachment{}, fmt.Errorf("%w: referrer %s: %v", ErrInvalid, r.Digest, err)
	}
	if man.Subject == nil || man.Subject.Digest != subject.Digest || len(man.Layers) != 1 {
		return Attachment{}, fmt.Errorf("%w: referrer %s does not refer to %s with one layer", ErrInvalid, r.Digest, subject.Digest)
	}
	limit := c.opts.MaxAttachmentBytes
	if man.ArtifactType == AccordManifestType {
		limit = c.opts.MaxManifestBytes
	}
	data, err := fetchBounded(ctx, repo.Blobs(), man.Layers[0], limit)
	if err != nil {
		return Attachment{}, fmt.Errorf("referrer %s: %w", r.Digest, err)
	}
	return Attachment{ArtifactType: man.ArtifactType, MediaType: man.Layers[0].MediaType, Data: data, Annotations: man.Annotations}, nil
}

// accordManifest decodes the one Accord manifest among the referrers.
func (c *Client) accordManifest(atts []Attachment) (*models.Manifest, error) {
	switch {
	case len(atts) == 0:
		return nil, fmt.Errorf("%w: no Accord manifest attached", ErrNotFound)
	case len(atts) > 1:
		return nil, fmt.Errorf("%w: %d Accord manifests attached", ErrInvalid, len(atts))
	}
	dec := json.NewDecoder(bytes.NewReader(atts[0].Data))
	dec.DisallowUnknownFields()
	var m models.Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: Accord manifest: %v", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// checkModel checks that the OCI manifest is exactly the ModelPack layout
// of the Accord manifest m, and that m is the model the reference names.
func checkModel(m *models.Manifest, man *ocispec.Manifest, name, reference string) error {
	if m.Name != name {
		return fmt.Errorf("%w: the Accord manifest names %s", models.ErrVerify, m.Name)
	}
	if !strings.HasPrefix(reference, "sha256:") && m.Version != reference {
		return fmt.Errorf("%w: tag %s holds the Accord manifest of version %s", models.ErrVerify, reference, m.Version)
	}
	want, err := buildArtifact(m)
	if err != nil {
		return err
	}
	if man.Config.Digest != want.manifest.Config.Digest || man.Config.Size != want.manifest.Config.Size {
		return fmt.Errorf("%w: config %s is not the Accord manifest's ModelPack config %s", models.ErrVerify, man.Config.Digest, want.manifest.Config.Digest)
	}
	for k, v := range want.manifest.Annotations {
		if man.Annotations[k] != v {
			return fmt.Errorf("%w: annotation %s is %q, the Accord manifest says %q", models.ErrVerify, k, clip(man.Annotations[k]), v)
		}
	}
	return checkLayers(want.manifest.Layers, man.Layers)
}

// checkLayers compares the registry's layers with the expected ones.
func checkLayers(want, got []ocispec.Descriptor) error {
	if len(got) != len(want) {
		return fmt.Errorf("%w: %d layers, the Accord manifest has %d files", models.ErrVerify, len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		p := w.Annotations[models.AnnotationFilepath]
		if g.Annotations[models.AnnotationFilepath] != p || g.Digest != w.Digest || g.Size != w.Size || g.MediaType != w.MediaType {
			return fmt.Errorf("%w: layer %d (%q, %s, %d bytes) is not the Accord manifest's %s (%s, %d bytes)",
				models.ErrVerify, i, clip(g.Annotations[models.AnnotationFilepath]), g.Digest, g.Size, p, w.Digest, w.Size)
		}
	}
	return nil
}
