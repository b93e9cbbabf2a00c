package search

import (
	"fmt"
	"testing"

	"github.com/accordmesh/accord/models"
)

// dg returns a distinct valid digest for a label.
func dg(label string) string {
	return "sha256:" + fmt.Sprintf("%064x", []byte(label))[:64]
}

func conf(x float64) *float64 { return &x }

// manifest is a valid manifest with the given identity, description, tags
// and benchmarks; the lineage is a base model with nothing listed.
func manifest(name, version, desc string, tags []models.Tag, benches ...models.Benchmark) *models.Manifest {
	return &models.Manifest{
		SchemaVersion: models.SchemaVersion,
		Owner:         "acme",
		Name:          name,
		Version:       version,
		Change:        models.ChangeBehaviour,
		Description:   desc,
		Tags:          tags,
		Benchmarks:    benches,
		License:       "Apache-2.0",
		Economics:     models.Economics{Currency: "EUR", PerInference: 1},
		Files:         []models.File{{Path: "model.safetensors", Digest: dg(name + version), Size: 1}},
	}
}

func verified(metric string, v float64) models.Benchmark {
	return models.Benchmark{Metric: metric, Value: v, Dataset: dg("eval"), MeasuredBy: "accord", Verified: true, Attestation: dg("att-" + metric)}
}

func unverified(metric string, v float64, by string) models.Benchmark {
	return models.Benchmark{Metric: metric, Value: v, Dataset: dg("eval"), MeasuredBy: by}
}

// withLineage gives m a finetune parent, a dataset and a training receipt.
func withLineage(m *models.Manifest) *models.Manifest {
	m.Lineage = models.Lineage{
		Parents:  []models.Parent{{Ref: "acme/base-es@2.0.1", Digest: dg("base"), Relation: models.RelationFinetune}},
		Datasets: []string{dg("contracts")},
		Receipt:  &models.Receipt{JobID: "job-42", SpecDigest: dg("spec"), LogIndex: 7},
	}
	return m
}

// acmeTags are the tags of every acme/legal-es-classifier version.
func acmeTags() []models.Tag {
	return []models.Tag{
		{Tag: "task:text-classification", AuthorConfidence: 1, AccordConfidence: conf(0.9)},
		{Tag: "lang:es", AuthorConfidence: 0.9, AccordConfidence: conf(0.7)},
		{Tag: "domain:legal", AuthorConfidence: 0.8},
		{Tag: "license:open-weights", AuthorConfidence: 1, AccordConfidence: conf(1)},
	}
}

// catalogue is a small hand-built catalogue:
//
//   - acme/legal-es-classifier 1.1.0, 1.2.0 (f1 verified 0.93, 0.92) and
//     1.3.0 (f1 verified 0.85): signed, logged, full lineage, tags checked
//     by Accord.
//   - beta/contratos-es 2.0.0: the best f1 (0.98) but unverified, author
//     tags only (lang:es-419), a dataset, nothing signed.
//   - gamma/legal-en 1.0.0: verified f1 0.96, English, signed not logged.
//   - delta/sentiment-es 0.1.0: Spanish sentiment, no f1.
func catalogue(t testing.TB) *Index {
	acme := func(v, desc string, f1 float64) Entry {
		return Entry{Manifest: withLineage(manifest("acme/legal-es-classifier", v, desc, acmeTags(), verified("f1", f1))),
			Digest: dg("acme" + v), Signed: true, Logged: true}
	}
	beta := manifest("beta/contratos-es", "2.0.0", "Clasificador de contratos legales en español.", []models.Tag{
		{Tag: "task:text-classification", AuthorConfidence: 1},
		{Tag: "lang:es-419", AuthorConfidence: 1},
		{Tag: "domain:legal", AuthorConfidence: 1},
		{Tag: "license:open-weights", AuthorConfidence: 1},
	}, unverified("f1", 0.98, "beta"))
	beta.Lineage.Datasets = []string{dg("beta-data")}
	gamma := manifest("gamma/legal-en", "1.0.0", "English contract classifier.", []models.Tag{
		{Tag: "task:text-classification", AuthorConfidence: 1},
		{Tag: "lang:en", AuthorConfidence: 1},
		{Tag: "domain:legal", AuthorConfidence: 1},
		{Tag: "license:open-weights", AuthorConfidence: 1},
	}, verified("f1", 0.96))
	gamma.Lineage.Receipt = &models.Receipt{JobID: "job-7", SpecDigest: dg("spec7"), LogIndex: 3}
	gamma.Lineage.Datasets = []string{dg("gamma-data")}
	delta := manifest("delta/sentiment-es", "0.1.0", "Sentiment of Spanish tweets.", []models.Tag{
		{Tag: "task:sentiment-analysis", AuthorConfidence: 0.6},
		{Tag: "lang:es", AuthorConfidence: 1, AccordConfidence: conf(0.5)},
	})
	ix := NewIndex()
	for _, e := range []Entry{
		acme("1.1.0", "Spanish legal text classifier.", 0.93),
		acme("1.2.0", "Spanish legal text classifier for contracts.", 0.92),
		acme("1.3.0", "Spanish legal text classifier, smaller.", 0.85),
		{Manifest: beta, Digest: dg("beta")},
		{Manifest: gamma, Digest: dg("gamma"), Signed: true},
		{Manifest: delta, Digest: dg("delta"), Signed: true, Logged: true},
	} {
		if err := ix.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return ix
}
