// Package registry stores Accord models in an OCI registry as CNCF
// ModelPack v0.0.7 artifacts, through ORAS (oras.land/oras-go/v2).
//
// A model version name@1.2.3 is the repository <prefix>/<name> tagged
// 1.2.3: an OCI image manifest with artifactType models.ArtifactType, the
// ModelPack config (models.ModelPackConfig) and one raw layer per file in
// models.Layers order, so each layer digest is the file digest. The Accord
// manifest (models.Manifest as JSON) is attached as a referrer with
// artifactType AccordManifestType; signatures, lineage and benchmark
// results are further referrers (Attach). Registries without the referrers
// API (distribution 2.8) get ORAS's sha256-<hex> tag-schema fallback; its
// index is read-modify-write, so attaches are serialised per subject in a
// process and re-checked (and redone, a bounded number of times) against
// writers in other processes.
//
// Everything read from a registry is hostile: every manifest, index and
// attachment read is bounded, every blob is read up to its descriptor's
// size and digest-verified, names are checked with models.CheckName, and a
// model whose layers disagree with its Accord manifest is an error.
package registry

import "errors"

var (
	// ErrNotFound is a model, version or attachment the registry does not
	// have.
	ErrNotFound = errors.New("registry: not found")
	// ErrExists is a version that is already published with other content.
	ErrExists = errors.New("registry: version already exists with other content")
	// ErrInvalid is a reference, option or attachment that is malformed,
	// or registry content that breaks the model layout.
	ErrInvalid = errors.New("registry: invalid")
)

// Media and artifact types of the Accord manifest attachment.
const (
	// AccordManifestType is the artifactType of the referrer that carries
	// the Accord manifest, and the media type of its one layer.
	AccordManifestType = "application/vnd.accord.model.manifest.v1+json"
)
