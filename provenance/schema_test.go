package provenance_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/accordmesh/accord/provenance"
)

var updateSchemas = flag.Bool("update-schemas", false, "rewrite provenance/schemas from the Go types")

// TestSchemasUpToDate keeps the published JSON schemas equal to the
// predicate types (go test ./provenance -run Schemas -update-schemas).
func TestSchemasUpToDate(t *testing.T) {
	for _, stage := range append(provenance.Stages[:len(provenance.Stages):len(provenance.Stages)], "spec-bundle", provenance.StageDeployment) {
		want, err := provenance.PredicateSchema(stage)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		path := filepath.Join("schemas", stage+".v1.json")
		if *updateSchemas {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update-schemas)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go test ./provenance -run Schemas -update-schemas", path)
		}
	}
}
