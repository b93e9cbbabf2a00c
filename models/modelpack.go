package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	mpschema "github.com/modelpack/model-spec/schema"
	mp "github.com/modelpack/model-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ModelPack (CNCF model-spec v0.0.7) names for the OCI artifact Accord
// pushes: the manifest's artifactType, the config's media type and the
// annotation that carries each layer's file path.
const (
	ArtifactType           = mp.ArtifactTypeModelManifest
	ConfigMediaType        = mp.MediaTypeModelConfig
	AnnotationFilepath     = mp.AnnotationFilepath
	modelFSTypeLayers      = "layers"
	annotationAccordKind   = "dev.accord.model.kind"
	annotationAccordChange = "dev.accord.model.change"
)

// layerMediaTypes maps a file kind to its ModelPack layer media type. Each
// file is one uncompressed ("raw") layer, so its layer digest is its file
// digest, and the config's diffIds are the file digests.
var layerMediaTypes = map[FileKind]string{
	KindWeights: mp.MediaTypeModelWeightRaw,
	KindConfig:  mp.MediaTypeModelWeightConfigRaw,
	KindDoc:     mp.MediaTypeModelDocRaw,
	KindCode:    mp.MediaTypeModelCodeRaw,
	KindDataset: mp.MediaTypeModelDatasetRaw,
}

// LayerMediaType returns the ModelPack layer media type of a file.
func LayerMediaType(f File) (string, error) {
	k, err := KindOf(f)
	if err != nil {
		return "", fmt.Errorf("models: %s: %w", clip(f.Path), err)
	}
	return layerMediaTypes[k], nil
}

// sortedFiles returns the manifest's files ordered by path: the layer
// order, so the same model always gives the same OCI manifest.
func sortedFiles(m *Manifest) []File {
	fs := append([]File(nil), m.Files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path })
	return fs
}

// Layers returns the OCI layer descriptors of the model's files, ordered
// by path, each annotated with its org.cncf.model.filepath.
func Layers(m *Manifest) ([]ocispec.Descriptor, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	files := sortedFiles(m)
	out := make([]ocispec.Descriptor, 0, len(files))
	for _, f := range files {
		mt, err := LayerMediaType(f)
		if err != nil {
			return nil, err
		}
		k, _ := KindOf(f)
		out = append(out, ocispec.Descriptor{
			MediaType: mt,
			Digest:    digest.Digest(f.Digest),
			Size:      f.Size,
			Annotations: map[string]string{
				AnnotationFilepath:   f.Path,
				annotationAccordKind: string(k),
			},
		})
	}
	return out, nil
}

// ModelPackConfig builds the ModelPack model config (media type
// ConfigMediaType) for the manifest: descriptor (name, version, licence,
// description), modelfs (the file digests as diffIds, in layer order) and
// config (framework tag as format, modality tags as capabilities). The
// result passes model-spec's own schema validation.
func ModelPackConfig(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	files := sortedFiles(m)
	diffIDs := make([]digest.Digest, len(files))
	for i, f := range files {
		diffIDs[i] = digest.Digest(f.Digest)
	}
	cfg := mp.Model{
		Descriptor: mp.ModelDescriptor{
			Name:        m.Name,
			Version:     m.Version,
			Licenses:    []string{m.License},
			Description: m.Description,
		},
		ModelFS: mp.ModelFS{Type: modelFSTypeLayers, DiffIDs: diffIDs},
		Config:  modelPackModelConfig(m),
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("models: encode ModelPack config: %w", err)
	}
	if err := ValidateModelPackConfig(b); err != nil {
		return nil, err
	}
	return b, nil
}

// modelPackModelConfig maps tags onto ModelPack's config: framework as
// format, modalities as input and output types.
func modelPackModelConfig(m *Manifest) mp.ModelConfig {
	var c mp.ModelConfig
	var modalities []mp.Modality
	for _, t := range m.Tags {
		k, v, err := ParseTag(t.Tag)
		if err != nil {
			continue
		}
		switch k {
		case "framework":
			if c.Format == "" {
				c.Format = v
			}
		case "modality":
			modalities = append(modalities, mp.Modality(v))
		}
	}
	if len(modalities) > 0 {
		c.Capabilities = &mp.ModelCapabilities{InputTypes: modalities, OutputTypes: modalities}
	}
	return c
}

// ValidateModelPackConfig checks a model config with model-spec's own
// validator (its JSON schema and Go type).
func ValidateModelPackConfig(b []byte) error {
	if err := mpschema.ValidatorMediaTypeModelConfig.Validate(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("models: ModelPack config: %w", err)
	}
	return nil
}

// ManifestAnnotations are the OCI manifest annotations Accord sets besides
// ModelPack's: the declared change class, for tools that list versions.
func ManifestAnnotations(m *Manifest) map[string]string {
	return map[string]string{
		ocispec.AnnotationTitle:   m.Name,
		ocispec.AnnotationVersion: m.Version,
		annotationAccordChange:    string(m.Change),
	}
}
