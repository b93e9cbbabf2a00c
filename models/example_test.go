package models_test

import (
	"context"
	"fmt"

	"github.com/accordmesh/accord/models"
)

func ExampleConstraint_Best() {
	c, err := models.ParseConstraint("^1.2")
	if err != nil {
		panic(err)
	}
	var vs []models.Version
	for _, s := range []string{"1.1.9", "1.2.0", "1.4.2", "2.0.0"} {
		v, _ := models.ParseVersion(s)
		vs = append(vs, v)
	}
	best, ok := c.Best(vs)
	fmt.Println(best, ok)
	// Output: 1.4.2 true
}

func ExampleCheckLicense() {
	fmt.Println(models.CheckLicense("MIT OR Apache-2.0"))
	fmt.Println(models.CheckLicense("MIT OR"))
	// Output:
	// <nil>
	// "MIT OR" is not an SPDX expression: expression ends early
}

func ExampleSplitFee() {
	digest := func(s string) string { return fmt.Sprintf("sha256:%064x", len(s)) }
	model := func(name, owner string, price int64, parent string, bp int) *models.Manifest {
		m := &models.Manifest{SchemaVersion: models.SchemaVersion, Name: name, Version: "1.0.0", Owner: owner,
			Change: models.ChangeBehaviour, License: "Apache-2.0",
			Economics: models.Economics{Currency: "EUR", PerInference: price},
			Files:     []models.File{{Path: "model.safetensors", Digest: digest(name)}}}
		if parent != "" {
			m.Lineage.Parents = []models.Parent{{Ref: parent, Digest: digest(parent), Relation: models.RelationFinetune}}
			m.Economics.Royalties = []models.Royalty{{Parent: parent, BasisPoints: bp}}
		}
		return m
	}
	registry := map[string]*models.Manifest{
		"meta/root@1.0.0":    model("meta/root", "rex", 10, "", 0),
		"acme/base-es@1.0.0": model("acme/base-es", "bob", 10, "meta/root@1.0.0", 1000),
	}
	clf := model("acme/clf", "ann", 1999, "acme/base-es@1.0.0", 1500)
	lookup := func(_ context.Context, ref, _ string) (*models.Manifest, error) { return registry[ref], nil }

	fee, err := models.SplitFee(context.Background(), clf, digest("clf"), models.UseInference, lookup)
	if err != nil {
		panic(err)
	}
	for _, s := range fee.Shares {
		fmt.Printf("%-4s %5d  %s\n", s.Owner, s.Amount, s.Reason)
	}
	// Output:
	// ann   1700  usage price of acme/clf@1.0.0
	// bob    270  royalty 15.00% of acme/clf@1.0.0's income
	// rex     29  royalty 10.00% of acme/base-es@1.0.0's income
}
