package exchange

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/accordmesh/accord/models"
)

// JobOutput is a model a verified job publishes from its collected
// outputs.
type JobOutput struct {
	Owner                                    string // the job's tenant
	Name, Version, Change, Relation, License string
	Description                              string
	Tags                                     []string
	Currency                                 string
	PerInference, PerFineTune, PerDeployment int64
	RoyaltyBP                                int
	Parents                                  []models.Parent   // Ref and Digest; Relation is set from Relation
	Files                                    map[string]string // path under the output → sha256 the job attested
	Receipt                                  models.Receipt
}

// Manifest builds the Accord manifest of o from the files under dir,
// which must be exactly the attested ones.
func (o JobOutput) Manifest(dir string) (*models.Manifest, error) {
	scanned, err := models.ScanDir(dir)
	if err != nil {
		return nil, err
	}
	m := &models.Manifest{
		SchemaVersion: models.SchemaVersion, Name: o.Name, Version: o.Version, Owner: o.Owner,
		Change: models.ChangeClass(o.Change), Description: o.Description, License: o.License,
		Economics: models.Economics{Currency: o.Currency, PerInference: o.PerInference, PerFineTune: o.PerFineTune, PerDeployment: o.PerDeployment},
		Lineage:   models.Lineage{Receipt: &o.Receipt},
	}
	if m.Economics.Currency == "" {
		m.Economics.Currency = "USD"
	}
	for _, p := range o.Parents {
		p.Relation = models.Relation(o.Relation)
		m.Lineage.Parents = append(m.Lineage.Parents, p)
		if o.RoyaltyBP > 0 {
			m.Economics.Royalties = append(m.Economics.Royalties, models.Royalty{Parent: p.Ref, BasisPoints: o.RoyaltyBP})
		}
	}
	for _, t := range o.Tags {
		m.Tags = append(m.Tags, models.Tag{Tag: t, AuthorConfidence: 1})
	}
	for _, f := range scanned {
		if want, ok := o.Files[f.Path]; !ok || want != f.Digest {
			return nil, fmt.Errorf("%w: output %s is not what the job attested", ErrUnverified, f.Path)
		}
		m.Files = append(m.Files, f)
	}
	if len(m.Files) != len(o.Files) {
		return nil, fmt.Errorf("%w: %d files collected, the job attested %d", ErrUnverified, len(m.Files), len(o.Files))
	}
	return m, m.Validate()
}

// PublishJobOutput stages the attested files of o found under src (hard
// links, or copies across file systems) and pushes them as a new version.
// Idempotent like Push.
func (x *Exchange) PublishJobOutput(ctx context.Context, src string, o JobOutput) (Published, error) {
	if err := os.MkdirAll(x.CacheDir, 0o755); err != nil {
		return Published{}, fmt.Errorf("exchange: publish %s@%s: %w", o.Name, o.Version, err)
	}
	stage, err := os.MkdirTemp(x.CacheDir, ".publish-")
	if err != nil {
		return Published{}, fmt.Errorf("exchange: publish %s@%s: %w", o.Name, o.Version, err)
	}
	defer os.RemoveAll(stage)
	for p := range o.Files {
		if err := stageFile(src, stage, p); err != nil {
			return Published{}, fmt.Errorf("exchange: publish %s@%s: stage %s: %w", o.Name, o.Version, p, err)
		}
	}
	m, err := o.Manifest(stage)
	if err != nil {
		return Published{}, err
	}
	return x.Push(ctx, stage, m)
}

// stageFile links (or copies) src/rel to dst/rel. What is staged is
// hashed again by Manifest against the attested digests, so a path swapped
// under us is caught there. It opens src through an
// os.Root so that rel cannot leave it.
func stageFile(src, dst, rel string) error {
	if !filepath.IsLocal(filepath.FromSlash(rel)) || path.Clean(rel) != rel {
		return fmt.Errorf("unsafe path %q", rel)
	}
	target := filepath.Join(dst, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer root.Close()
	in, err := root.Open(filepath.FromSlash(rel))
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	if os.Link(filepath.Join(src, filepath.FromSlash(rel)), target) == nil {
		return nil
	}
	out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.LimitReader(in, fi.Size())); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
