package search_test

import (
	"fmt"
	"strings"

	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/search"
)

func Example() {
	d := func(s string) string { return "sha256:" + strings.Repeat(s, 64) }
	m := &models.Manifest{
		SchemaVersion: models.SchemaVersion,
		Owner:         "acme",
		Name:          "acme/legal-es-classifier",
		Version:       "1.2.0",
		Change:        models.ChangeBehaviour,
		Description:   "Spanish legal text classifier.",
		Tags:          []models.Tag{{Tag: "lang:es", AuthorConfidence: 0.9}},
		Benchmarks: []models.Benchmark{{Metric: "f1", Value: 0.91, Dataset: d("e"), MeasuredBy: "accord",
			Verified: true, Attestation: d("a")}},
		License:   "Apache-2.0",
		Economics: models.Economics{Currency: "EUR"},
		Files:     []models.File{{Path: "model.safetensors", Digest: d("f"), Size: 1}},
	}
	ix := search.NewIndex()
	if err := ix.Add(search.Entry{Manifest: m, Digest: d("0"), Signed: true, Logged: true}); err != nil {
		panic(err)
	}
	q, err := search.ParseQuery(`lang:es f1>=0.9 "legal text"`)
	if err != nil {
		panic(err)
	}
	for _, r := range ix.Search(q, 10) {
		fmt.Printf("%s %.3f\n", r.Ref, r.Score)
		for _, why := range r.Reasons {
			fmt.Println(" ", why)
		}
	}
	_, err = search.ParseQuery("lang:es f1>=NaN")
	fmt.Println(err)
	// Output:
	// acme/legal-es-classifier@1.2.0 6.405
	//   f1 0.91 >= 0.9, verified: +3.00
	//   signed and logged: +1.00
	//   tag lang:es matched (author 0.9, unchecked): +0.90
	//   text "legal text" in description: +0.50
	//   base model, no parents to pin: +0.50
	//   verified benchmark f1: +0.50
	//   missing: training receipt: +0.00
	//   missing: datasets: +0.00
	// search: query term 2 at byte 8 "f1>=NaN": "NaN" is not a decimal number
}
