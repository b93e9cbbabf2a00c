package models

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	mpschema "github.com/modelpack/model-spec/schema"
	mp "github.com/modelpack/model-spec/specs-go/v1"
)

func TestModelPackConfigPassesModelSpecValidator(t *testing.T) {
	m := validManifest()
	b, err := ModelPackConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	// model-spec's own validator, called directly.
	if err := mpschema.ValidatorMediaTypeModelConfig.Validate(strings.NewReader(string(b))); err != nil {
		t.Fatalf("model-spec rejects Accord's config: %v\n%s", err, b)
	}
	var cfg mp.Model
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Descriptor.Name != m.Name || cfg.Descriptor.Version != m.Version || cfg.Descriptor.Licenses[0] != "Apache-2.0" {
		t.Errorf("descriptor = %+v", cfg.Descriptor)
	}
	if cfg.ModelFS.Type != "layers" || len(cfg.ModelFS.DiffIDs) != len(m.Files) {
		t.Errorf("modelfs = %+v", cfg.ModelFS)
	}
	if cfg.Config.Format != "pytorch" || cfg.Config.Capabilities == nil || cfg.Config.Capabilities.InputTypes[0] != mp.TextModality {
		t.Errorf("config = %+v", cfg.Config)
	}
	layers, err := Layers(m)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		if cfg.ModelFS.DiffIDs[i] != l.Digest {
			t.Errorf("diffIds[%d] = %s, layer digest %s: raw layers must agree", i, cfg.ModelFS.DiffIDs[i], l.Digest)
		}
	}
}

func TestModelPackMinimalConfig(t *testing.T) {
	m := validManifest()
	m.Tags, m.Description = nil, ""
	b, err := ModelPackConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateModelPackConfig(b); err != nil {
		t.Fatal(err)
	}
}

func TestValidateModelPackConfigRejects(t *testing.T) {
	for _, bad := range []string{
		`{}`,
		`{"descriptor":{"name":"x"},"config":{},"modelfs":{"type":"layers","diffIds":[]}}`,
		`{"descriptor":{"name":"x"},"config":{},"modelfs":{"type":"tar","diffIds":["sha256:00"]}}`,
		`{"descriptor":{"name":"x"},"config":{"evil":1},"modelfs":{"type":"layers","diffIds":["sha256:00"]}}`,
		`not json`,
	} {
		if err := ValidateModelPackConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestLayers(t *testing.T) {
	m := validManifest()
	m.Files = append(m.Files,
		File{Path: "data/eval.jsonl", Digest: dg("eval"), Size: 3},
		File{Path: "blob", Digest: dg("blob"), Size: 4, Kind: KindWeights})
	layers, err := Layers(m)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"README.md":         mp.MediaTypeModelDocRaw,
		"blob":              mp.MediaTypeModelWeightRaw,
		"config.json":       mp.MediaTypeModelWeightConfigRaw,
		"data/eval.jsonl":   mp.MediaTypeModelDatasetRaw,
		"model.safetensors": mp.MediaTypeModelWeightRaw,
		"src/train.py":      mp.MediaTypeModelCodeRaw,
	}
	if len(layers) != len(want) {
		t.Fatalf("%d layers, want %d", len(layers), len(want))
	}
	prev := ""
	for _, l := range layers {
		p := l.Annotations[AnnotationFilepath]
		if p <= prev {
			t.Errorf("layers not in path order: %q after %q", p, prev)
		}
		prev = p
		if l.MediaType != want[p] {
			t.Errorf("%s: media type %s, want %s", p, l.MediaType, want[p])
		}
	}
	if AnnotationFilepath != "org.cncf.model.filepath" || ArtifactType != "application/vnd.cncf.model.manifest.v1+json" ||
		ConfigMediaType != "application/vnd.cncf.model.config.v1+json" {
		t.Error("ModelPack names drifted from v0.0.7")
	}
}

func TestModelPackRejectsInvalidManifest(t *testing.T) {
	m := validManifest()
	m.Files[0].Path = "../escape.bin"
	if _, err := ModelPackConfig(m); !errors.Is(err, ErrInvalid) {
		t.Errorf("ModelPackConfig: %v", err)
	}
	if _, err := Layers(m); !errors.Is(err, ErrInvalid) {
		t.Errorf("Layers: %v", err)
	}
}

func TestManifestAnnotations(t *testing.T) {
	a := ManifestAnnotations(validManifest())
	if a["org.opencontainers.image.title"] != "acme/legal-es-classifier" || a["org.opencontainers.image.version"] != "1.2.0" ||
		a["dev.accord.model.change"] != "behaviour" {
		t.Errorf("annotations = %v", a)
	}
}
