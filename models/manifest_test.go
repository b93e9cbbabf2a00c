package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// dg returns a distinct valid digest for a label.
func dg(label string) string {
	return "sha256:" + fmt.Sprintf("%064x", []byte(label))[:64]
}

func validManifest() *Manifest {
	conf := 0.7
	return &Manifest{
		SchemaVersion: SchemaVersion,
		Name:          "acme/legal-es-classifier",
		Version:       "1.2.0",
		Owner:         "acme",
		Change:        ChangeBehaviour,
		Description:   "Spanish legal text classifier.",
		Lineage: Lineage{
			Parents:  []Parent{{Ref: "acme/base-es@2.0.1", Digest: dg("base"), Relation: RelationFinetune}},
			Datasets: []string{dg("contracts")},
			Receipt:  &Receipt{JobID: "job-42", SpecDigest: dg("spec"), LogIndex: 7},
		},
		Tags: []Tag{
			{Tag: "task:text-classification", AuthorConfidence: 1},
			{Tag: "lang:es", AuthorConfidence: 0.9, AccordConfidence: &conf},
			{Tag: "domain:legal", AuthorConfidence: 0.8},
			{Tag: "modality:text", AuthorConfidence: 1},
			{Tag: "framework:pytorch", AuthorConfidence: 1},
		},
		Benchmarks: []Benchmark{
			{Metric: "f1", Value: 0.91, Dataset: dg("eval"), MeasuredBy: "accord", Verified: true, Attestation: dg("att")},
			{Metric: "accuracy", Value: 0.93, Dataset: dg("eval"), MeasuredBy: "acme"},
		},
		License: "Apache-2.0",
		Economics: Economics{
			Currency: "EUR", PerDeployment: 500, PerInference: 1, PerFineTune: 2000,
			Royalties: []Royalty{{Parent: "acme/base-es@2.0.1", BasisPoints: 1500}},
		},
		Files: []File{
			{Path: "model.safetensors", Digest: dg("weights"), Size: 1 << 20},
			{Path: "config.json", Digest: dg("config"), Size: 512},
			{Path: "README.md", Digest: dg("readme"), Size: 100},
			{Path: "src/train.py", Digest: dg("code"), Size: 100},
		},
	}
}

func TestValidManifest(t *testing.T) {
	m := validManifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Manifest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("round-tripped manifest: %v", err)
	}
	if m.Ref() != "acme/legal-es-classifier@1.2.0" {
		t.Errorf("Ref = %s", m.Ref())
	}
}

func TestValidateRejects(t *testing.T) {
	nan := math.NaN()
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	cases := []struct {
		field string
		edit  func(m *Manifest)
	}{
		{"schemaVersion", func(m *Manifest) { m.SchemaVersion = "v0" }},
		{"name", func(m *Manifest) { m.Name = "Acme/Model" }},
		{"name", func(m *Manifest) { m.Name = "" }},
		{"name", func(m *Manifest) { m.Name = "a/b/c/d/e" }},
		{"name", func(m *Manifest) { m.Name = "-bad" }},
		{"name", func(m *Manifest) { m.Name = "a//b" }},
		{"name", func(m *Manifest) { m.Name = "../etc" }},
		{"name", func(m *Manifest) { m.Name = strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63) + "/c" }},
		{"version", func(m *Manifest) { m.Version = "1.02.0" }},
		{"version", func(m *Manifest) { m.Version = "1.2" }},
		{"owner", func(m *Manifest) { m.Owner = "" }},
		{"owner", func(m *Manifest) { m.Owner = "Acme" }},
		{"owner", func(m *Manifest) { m.Owner = "acme corp" }},
		{"owner", func(m *Manifest) { m.Owner = strings.Repeat("a", 64) }},
		{"owner", func(m *Manifest) { m.Owner = strings.Repeat("\n", 5000) }},
		{"change", func(m *Manifest) { m.Change = "minor" }},
		{"description", func(m *Manifest) { m.Description = strings.Repeat("x", MaxDescriptionLen+1) }},
		{"license", func(m *Manifest) { m.License = "" }},
		{"license", func(m *Manifest) { m.License = "MIT AND" }},
		{"license", func(m *Manifest) { m.License = "(MIT" }},
		{"license", func(m *Manifest) { m.License = "MIT; rm -rf /" }},
		{"license", func(m *Manifest) { m.License = strings.Repeat("(", 20) + "MIT" + strings.Repeat(")", 20) }},
		{"lineage.parents", func(m *Manifest) {
			m.Lineage.Parents = make([]Parent, MaxParents+1)
		}},
		{"lineage.parents[0].ref", func(m *Manifest) { m.Lineage.Parents[0].Ref = "acme/base-es" }},
		{"lineage.parents[0].ref", func(m *Manifest) { m.Lineage.Parents[0].Ref = "acme/legal-es-classifier@1.0.0" }},
		{"lineage.parents[1].ref", func(m *Manifest) { m.Lineage.Parents = append(m.Lineage.Parents, m.Lineage.Parents[0]) }},
		{"lineage.parents[0].digest", func(m *Manifest) { m.Lineage.Parents[0].Digest = "sha256:ABC" }},
		{"lineage.parents[0].relation", func(m *Manifest) { m.Lineage.Parents[0].Relation = "copy" }},
		{"lineage.datasets", func(m *Manifest) {
			m.Lineage.Datasets = many(MaxDatasets+1, func(i int) string { return dg(fmt.Sprint(i)) })
		}},
		{"lineage.datasets[1]", func(m *Manifest) { m.Lineage.Datasets = []string{dg("a"), dg("a")} }},
		{"lineage.datasets[0]", func(m *Manifest) { m.Lineage.Datasets = []string{"md5:abc"} }},
		{"lineage.receipt.job_id", func(m *Manifest) { m.Lineage.Receipt.JobID = "job 42\n" }},
		{"lineage.receipt.spec_digest", func(m *Manifest) { m.Lineage.Receipt.SpecDigest = "" }},
		{"lineage.receipt.log_index", func(m *Manifest) { m.Lineage.Receipt.LogIndex = -1 }},
		{"tags", func(m *Manifest) {
			m.Tags = nil
			for i := 0; i <= MaxTags; i++ {
				m.Tags = append(m.Tags, Tag{Tag: fmt.Sprintf("domain:d%d", i)})
			}
		}},
		{"tags[0].tag", func(m *Manifest) { m.Tags[0].Tag = "task" }},
		{"tags[0].tag", func(m *Manifest) { m.Tags[0].Tag = "colour:blue" }},
		{"tags[0].tag", func(m *Manifest) { m.Tags[0].Tag = "task:mind-reading" }},
		{"tags[1].tag", func(m *Manifest) { m.Tags[1].Tag = "lang:spanish" }},
		{"tags[1].tag", func(m *Manifest) { m.Tags[1].Tag = "task:text-classification" }},
		{"tags[2].tag", func(m *Manifest) { m.Tags[2].Tag = "domain:Legal Stuff" }},
		{"tags[0].author_confidence", func(m *Manifest) { m.Tags[0].AuthorConfidence = 1.5 }},
		{"tags[0].author_confidence", func(m *Manifest) { m.Tags[0].AuthorConfidence = nan }},
		{"tags[1].accord_confidence", func(m *Manifest) { x := -0.1; m.Tags[1].AccordConfidence = &x }},
		{"benchmarks", func(m *Manifest) { m.Benchmarks = make([]Benchmark, MaxBenchmarks+1) }},
		{"benchmarks[0].metric", func(m *Manifest) { m.Benchmarks[0].Metric = "F1 score" }},
		{"benchmarks[0].value", func(m *Manifest) { m.Benchmarks[0].Value = math.Inf(1) }},
		{"benchmarks[0].dataset", func(m *Manifest) { m.Benchmarks[0].Dataset = "eval.csv" }},
		{"benchmarks[0].measured_by", func(m *Manifest) { m.Benchmarks[0].MeasuredBy = "" }},
		{"benchmarks[0].attestation", func(m *Manifest) { m.Benchmarks[0].Attestation = "" }},
		{"benchmarks[1].attestation", func(m *Manifest) { m.Benchmarks[1].Attestation = dg("att") }},
		{"economics.currency", func(m *Manifest) { m.Economics.Currency = "eur" }},
		{"economics.per_deployment", func(m *Manifest) { m.Economics.PerDeployment = -1 }},
		{"economics.per_inference", func(m *Manifest) { m.Economics.PerInference = math.MaxInt64 }},
		{"economics.per_fine_tune", func(m *Manifest) { m.Economics.PerFineTune = MaxPrice + 1 }},
		{"economics.royalties[0].parent", func(m *Manifest) { m.Economics.Royalties[0].Parent = "other/model@1.0.0" }},
		{"economics.royalties[1].parent", func(m *Manifest) {
			m.Economics.Royalties = append(m.Economics.Royalties, Royalty{Parent: "acme/base-es@2.0.1", BasisPoints: 1})
		}},
		{"economics.royalties[0].basis_points", func(m *Manifest) { m.Economics.Royalties[0].BasisPoints = 0 }},
		{"economics.royalties[0].basis_points", func(m *Manifest) { m.Economics.Royalties[0].BasisPoints = 10001 }},
		{"economics.royalties", func(m *Manifest) {
			m.Lineage.Parents = append(m.Lineage.Parents, Parent{Ref: "acme/other@1.0.0", Digest: dg("o"), Relation: RelationMerge})
			m.Economics.Royalties = []Royalty{{"acme/base-es@2.0.1", 6000}, {"acme/other@1.0.0", 4001}}
		}},
		{"files", func(m *Manifest) { m.Files = nil }},
		{"files", func(m *Manifest) {
			m.Files = make([]File, MaxFiles+1)
		}},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = "../model.safetensors" }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = "a/../../etc/passwd" }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = "/etc/passwd" }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = "./model.bin" }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = "a//b.bin" }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = "dir/" }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = `..\evil.bin` }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = "a\x00.bin" }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = "bad\xff.bin" }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = strings.Repeat("a/", MaxPathLen) + "x.bin" }},
		{"files[0].path", func(m *Manifest) { m.Files[0].Path = strings.Repeat("a", 256) + ".bin" }},
		{"files[1].path", func(m *Manifest) { m.Files[1].Path = m.Files[0].Path }},
		{"files", func(m *Manifest) { m.Files[1].Path = "model.safetensors/config.json" }},
		{"files[0].digest", func(m *Manifest) { m.Files[0].Digest = "sha512:" + strings.Repeat("0", 128) }},
		{"files[0].size", func(m *Manifest) { m.Files[0].Size = -1 }},
		{"files[0].size", func(m *Manifest) { m.Files[0].Size = MaxFileSize + 1 }},
		{"files[0].kind", func(m *Manifest) { m.Files[0].Kind = "secret" }},
		{"files[0].kind", func(m *Manifest) { m.Files[0].Path = "model.weird" }},
	}
	for _, c := range cases {
		m := validManifest()
		c.edit(m)
		err := m.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want a FieldError", c.field, err)
			continue
		}
		if fe.Field != c.field {
			t.Errorf("want field %s, got %v", c.field, err)
		}
		if len(err.Error()) > 600 {
			t.Errorf("%s: error is %d bytes: hostile input echoed unclipped", c.field, len(err.Error()))
		}
	}
}

func TestCheckLicense(t *testing.T) {
	for _, s := range []string{"MIT", "Apache-2.0", "GPL-2.0+", "GPL-2.0-or-later WITH Classpath-exception-2.0",
		"MIT OR Apache-2.0", "(MIT OR Apache-2.0) AND BSD-3-Clause", "LicenseRef-acme-model", "DocumentRef-x:LicenseRef-y", "llama3"} {
		if err := CheckLicense(s); err != nil {
			t.Errorf("CheckLicense(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "MIT OR", "AND MIT", "MIT WITH", "(MIT", "MIT)", "MIT Apache-2.0", "M!T", "-MIT", "()", "LicenseRef-"} {
		if err := CheckLicense(s); err == nil {
			t.Errorf("CheckLicense(%q) accepted", s)
		}
	}
}

func TestParseTagVocabulary(t *testing.T) {
	for _, s := range []string{"task:sentiment-analysis", "lang:es", "lang:es-419", "lang:zh-Hant-TW", "lang:pt-BR",
		"domain:legal", "license:open-weights", "modality:image", "framework:onnx"} {
		if _, _, err := ParseTag(s); err != nil {
			t.Errorf("ParseTag(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "lang", ":es", "lang:", "lang:ES", "lang:es_ES", "license:MIT", "modality:smell",
		"domain:" + strings.Repeat("a", 41), "framework:cobol", "Task:translation"} {
		if _, _, err := ParseTag(s); err == nil {
			t.Errorf("ParseTag(%q) accepted", s)
		}
	}
}

func TestKindOf(t *testing.T) {
	cases := map[string]FileKind{
		"model.safetensors": KindWeights, "w/pytorch_model.BIN": KindWeights, "model.gguf": KindWeights,
		"config.json": KindConfig, "tokenizer.model": KindConfig, "README.md": KindDoc, "LICENSE": KindDoc,
		"train.py": KindCode, "data/eval.parquet": KindDataset,
	}
	for p, want := range cases {
		if got, err := KindOf(File{Path: p}); err != nil || got != want {
			t.Errorf("KindOf(%s) = %s, %v; want %s", p, got, err, want)
		}
	}
	if got, err := KindOf(File{Path: "blob", Kind: KindWeights}); err != nil || got != KindWeights {
		t.Errorf("declared kind: %s, %v", got, err)
	}
	if _, err := KindOf(File{Path: "blob"}); err == nil {
		t.Error("KindOf inferred a kind for an unknown file")
	}
}
