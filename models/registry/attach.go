package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// Attachment is a referrer of a model: the Accord manifest, a signature,
// lineage or benchmark evidence. It is stored as an OCI manifest with
// ArtifactType, the model as subject, an empty config and one layer of
// MediaType holding Data.
type Attachment struct {
	ArtifactType string
	// MediaType is the data's media type; empty means ArtifactType.
	MediaType   string
	Data        []byte
	Annotations map[string]string
}

// Bounds on an attachment's annotations.
const (
	maxAnnotations     = 64
	maxAnnotationKey   = 256
	maxAnnotationValue = 4096
	// attachTries bounds the re-attaches when another process's
	// read-modify-write of the referrers index dropped ours.
	attachTries = 8
	// attachSettle is how long an attach waits before re-reading the
	// referrers: long enough for a concurrent index write that read the
	// old index to land.
	attachSettle = 50 * time.Millisecond
)

// mediaTypeRE is the OCI image-spec media type syntax (RFC 6838).
var mediaTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

// checkAttachment validates an attachment and fills in its media type.
func (c *Client) checkAttachment(a Attachment) (Attachment, error) {
	if a.MediaType == "" {
		a.MediaType = a.ArtifactType
	}
	switch {
	case !mediaTypeRE.MatchString(a.ArtifactType):
		return a, fmt.Errorf("%w: artifact type %q is not a media type", ErrInvalid, clip(a.ArtifactType))
	case a.ArtifactType == AccordManifestType:
		return a, fmt.Errorf("%w: %s is reserved for the Accord manifest Push attaches", ErrInvalid, AccordManifestType)
	case !mediaTypeRE.MatchString(a.MediaType):
		return a, fmt.Errorf("%w: media type %q is not a media type", ErrInvalid, clip(a.MediaType))
	case int64(len(a.Data)) > c.opts.MaxAttachmentBytes:
		return a, fmt.Errorf("%w: attachment is %d bytes, at most %d", ErrInvalid, len(a.Data), c.opts.MaxAttachmentBytes)
	case len(a.Annotations) > maxAnnotations:
		return a, fmt.Errorf("%w: %d annotations, at most %d", ErrInvalid, len(a.Annotations), maxAnnotations)
	}
	for k, v := range a.Annotations {
		if k == "" || len(k) > maxAnnotationKey || len(v) > maxAnnotationValue {
			return a, fmt.Errorf("%w: annotation %q: key 1-%d bytes, value at most %d", ErrInvalid, clip(k), maxAnnotationKey, maxAnnotationValue)
		}
	}
	return a, nil
}

// Attach adds a referrer to the model name's manifest digest (benchmarks,
// signatures added after publishing). It is idempotent: attaching the same
// attachment again changes nothing.
func (c *Client) Attach(ctx context.Context, name, dgst string, a Attachment) error {
	if err := c.attachPublic(ctx, name, dgst, a); err != nil {
		return fmt.Errorf("registry: attach %s to %s@%s: %w", clip(a.ArtifactType), clip(name), clip(dgst), err)
	}
	return nil
}

func (c *Client) attachPublic(ctx context.Context, name, dgst string, a Attachment) error {
	a, err := c.checkAttachment(a)
	if err != nil {
		return err
	}
	repo, err := c.repo(name)
	if err != nil {
		return err
	}
	d := digest.Digest(dgst)
	if err := checkDigest(d); err != nil {
		return err
	}
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d}
	if _, raw, err := c.fetchModelManifest(ctx, repo, d.String()); err != nil {
		return err
	} else {
		subject.Size = int64(len(raw))
	}
	return c.attach(ctx, repo, name, subject, a)
}

// attachAll attaches each attachment to subject.
func (c *Client) attachAll(ctx context.Context, repo *remote.Repository, name string, subject ocispec.Descriptor, atts []Attachment) error {
	for _, a := range atts {
		if err := c.attach(ctx, repo, name, subject, a); err != nil {
			return fmt.Errorf("attach %s: %w", a.ArtifactType, err)
		}
	}
	return nil
}

// attachment is an attachment laid out as an OCI manifest.
type attachment struct {
	raw    []byte
	desc   ocispec.Descriptor
	config ocispec.Descriptor
	layer  ocispec.Descriptor
}

// buildAttachment lays a out as an OCI manifest referring to subject;
// deterministic, so re-attaching gives the same digest.
func buildAttachment(subject ocispec.Descriptor, a Attachment) (*attachment, error) {
	cfg := ocispec.Descriptor{MediaType: ocispec.DescriptorEmptyJSON.MediaType, Digest: ocispec.DescriptorEmptyJSON.Digest, Size: ocispec.DescriptorEmptyJSON.Size}
	layer := descriptorOf(a.MediaType, a.Data)
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	man := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: a.ArtifactType,
		Config:       cfg,
		Layers:       []ocispec.Descriptor{layer},
		Subject:      &subj,
		Annotations:  maps.Clone(a.Annotations),
	}
	raw, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	desc := descriptorOf(ocispec.MediaTypeImageManifest, raw)
	desc.ArtifactType = a.ArtifactType
	return &attachment{raw: raw, desc: desc, config: cfg, layer: layer}, nil
}

// attach pushes a as a referrer of subject. Attaches to one subject are
// serialised in this process; against writers in other processes, whose
// read-modify-write of the tag-schema referrers index can drop ours, the
// referrers are re-read after each attach and the attach redone, at most
// attachTries times.
func (c *Client) attach(ctx context.Context, repo *remote.Repository, name string, subject ocispec.Descriptor, a Attachment) error {
	att, err := buildAttachment(subject, a)
	if err != nil {
		return err
	}
	l := c.subjectLock(name, subject.Digest)
	l.Lock()
	defer l.Unlock()
	for try := 0; try < attachTries; try++ {
		present, err := c.hasReferrer(ctx, repo, subject, att.desc.Digest)
		if err != nil || present {
			return err
		}
		if try > 0 {
			if err := sleep(ctx, time.Duration(rand.Int64N(int64(attachSettle)*int64(try)))); err != nil {
				return err
			}
		}
		if err := c.pushAttachment(ctx, repo, att, a.Data); err != nil {
			return err
		}
		if err := sleep(ctx, attachSettle); err != nil {
			return err
		}
	}
	present, err := c.hasReferrer(ctx, repo, subject, att.desc.Digest)
	if err != nil || present {
		return err
	}
	return fmt.Errorf("referrer %s still missing from the referrers index after %d attaches (concurrent writers)", att.desc.Digest, attachTries)
}

// pushAttachment uploads the attachment's blobs and (re)pushes its
// manifest, which makes ORAS add it to the referrers index (or the
// registry, where it has the referrers API).
func (c *Client) pushAttachment(ctx context.Context, repo *remote.Repository, att *attachment, data []byte) error {
	if err := pushBytes(ctx, repo.Blobs(), att.config, ocispec.DescriptorEmptyJSON.Data); err != nil {
		return fmt.Errorf("upload empty config: %w", err)
	}
	if err := pushBytes(ctx, repo.Blobs(), att.layer, data); err != nil {
		return fmt.Errorf("upload data: %w", err)
	}
	err := repo.Manifests().Push(ctx, att.desc, bytes.NewReader(att.raw))
	var re *remote.ReferrersError
	if errors.As(err, &re) && re.IsReferrersIndexDelete() {
		// The new index is in place; only the superseded one stayed.
		err = nil
	}
	if err != nil {
		return fmt.Errorf("push referrer manifest: %w", err)
	}
	return nil
}

// hasReferrer says whether d is among subject's referrers.
func (c *Client) hasReferrer(ctx context.Context, repo *remote.Repository, subject ocispec.Descriptor, d digest.Digest) (bool, error) {
	refs, err := c.referrers(ctx, repo, subject)
	if err != nil {
		return false, err
	}
	for _, r := range refs {
		if r.Digest == d {
			return true, nil
		}
	}
	return false, nil
}

// referrers lists subject's referrers, at most opts.MaxAttachments (the
// index itself is bounded by MaxManifestBytes).
func (c *Client) referrers(ctx context.Context, repo *remote.Repository, subject ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	err := repo.Referrers(ctx, subject, "", func(page []ocispec.Descriptor) error {
		out = append(out, page...)
		if len(out) > c.opts.MaxAttachments {
			return fmt.Errorf("%w: more than %d referrers", ErrInvalid, c.opts.MaxAttachments)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list referrers of %s: %w", subject.Digest, err)
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// clip shortens hostile strings echoed in errors.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
