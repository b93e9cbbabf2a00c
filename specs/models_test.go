package specs

import (
	"strings"
	"testing"
)

const modelSpec = `---
accord: v1
name: tune
version: 1.0.0
tenant: demo
---

## Tasks

` + "```yaml" + `
tune:
  image: registry.example/trainer@sha256:0000000000000000000000000000000000000000000000000000000000000000
  command: [trainer]
TASKFIELDS
` + "```" + `

## Budget

` + "```yaml" + `
max_price: 100
currency: USD
` + "```" + `
`

func parseModels(t *testing.T, fields string) (*Spec, error) {
	t.Helper()
	return Parse("tune.md", []byte(strings.Replace(modelSpec, "TASKFIELDS", fields, 1)))
}

func TestTaskModelsAndPublish(t *testing.T) {
	s, err := parseModels(t, `  outputs: [model/weights.safetensors, model/config.json]
  models: [{name: acme/legal-es-classifier, version: "^1.2", as: /models/clf}]
  publish:
    - output: model/
      name: acme/legal-es-tuned
      version: 1.0.0
      license: Apache-2.0
      tags: [task:text-classification, lang:es]
      prices: {currency: USD, per_inference: 1, per_fine_tune: 300}
      royalty_basis_points: 1500`)
	if err != nil {
		t.Fatal(err)
	}
	task := s.Tasks[0]
	if len(task.Models) != 1 || task.Models[0] != (ModelUse{Name: "acme/legal-es-classifier", Version: "^1.2", As: "/models/clf"}) {
		t.Fatalf("models %+v", task.Models)
	}
	p := task.Publish[0]
	if p.Output != "model" || p.Change != "behaviour" || p.Relation != "finetune" || p.RoyaltyBP != 1500 ||
		p.Prices != (ModelPrices{Currency: "USD", PerInference: 1, PerFineTune: 300}) || len(p.Tags) != 2 {
		t.Fatalf("publish %+v", p)
	}
}

func TestTaskModelsRefused(t *testing.T) {
	for fields, msg := range map[string]string{
		`  models: [{name: Acme/x, version: "1.0.0", as: /m}]`:                    "lowercase DNS label",
		`  models: [{name: acme/x, version: ">=1", as: /m}]`:                      "constraint",
		`  models: [{name: acme/x, version: "1.0.0", as: m}]`:                     "clean absolute path",
		`  models: [{name: acme/x, version: "1.0.0", as: /m/../etc}]`:             "clean absolute path",
		`  models: [{name: acme/x, version: "1.0.0"}]`:                            "needs as",
		`  models: [{name: acme/x, version: "1.0.0", as: /m, digest: sha256:00}]`: "digest",
		"  inputs: [{name: a, artifact: \"sha256:" + strings.Repeat("0", 64) + "\", target: /m}]\n  models: [{name: acme/x, version: \"1.0.0\", as: /m}]": "two inputs or models at /m",
		`  publish: [{output: model/, name: acme/y, version: "^1.0", license: MIT}]`:                                                                      "MAJOR.MINOR.PATCH",
		`  publish: [{output: ../x, name: acme/y, version: 1.0.0, license: MIT}]`:                                                                         "clean relative path",
		`  publish: [{output: model/, name: acme/y, version: 1.0.0}]`:                                                                                     "needs license",
		`  publish: [{output: model/, name: acme/y, version: 1.0.0, license: MIT, relation: copy}]`:                                                       "relation \"copy\"",
		`  publish: [{output: model/, name: acme/y, version: 1.0.0, license: MIT, prices: {per_inference: 5}}]`:                                           "prices need a currency",
		"  outputs: [out.json]\n  publish: [{output: model/, name: acme/y, version: 1.0.0, license: MIT}]":                                                "not among its outputs",
	} {
		_, err := parseModels(t, fields)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: got %v, want an error containing %q", fields, err, msg)
		}
		if err != nil && !strings.Contains(err.Error(), "tune.md:") {
			t.Errorf("%s: error %q has no file:line:col", fields, err)
		}
	}
}
