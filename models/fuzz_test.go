package models

import (
	"encoding/json"
	"testing"
)

// FuzzManifest feeds arbitrary JSON to Validate and CheckChange: no input
// may panic, and an accepted manifest must survive a JSON round trip.
func FuzzManifest(f *testing.F) {
	b, _ := json.Marshal(validManifest())
	f.Add(b)
	f.Add([]byte(`{"schemaVersion":"accord.model/v1","name":"a","version":"0.0.1","owner":"acme","change":"patch","license":"MIT","economics":{"currency":"EUR"},"files":[{"path":"x.bin","digest":"sha256:` + "0000000000000000000000000000000000000000000000000000000000000000" + `"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Manifest
		if json.Unmarshal(data, &m) != nil {
			return
		}
		if m.Validate() != nil {
			return
		}
		_ = CheckChange(validManifest(), &m)
		_, _ = ModelPackConfig(&m)
		b, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		var back Manifest
		if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil {
			t.Fatalf("accepted manifest does not round-trip: %v", err)
		}
	})
}

// FuzzConstraint checks that a parsed constraint always matches its own
// lower bound and never panics.
func FuzzConstraint(f *testing.F) {
	for _, s := range []string{"^1.2", "~1.2.3", "1.2.3", "^0.0.1", "^", "01.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConstraint(s)
		if err != nil {
			return
		}
		if !c.Match(c.Min()) {
			t.Fatalf("%q does not match its own minimum %s", s, c.Min())
		}
	})
}

// FuzzCheckLicense: any input either parses or errors, without panicking.
func FuzzCheckLicense(f *testing.F) {
	for _, s := range []string{"MIT", "(MIT OR Apache-2.0) AND X WITH Y", "((((", "LicenseRef-a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { _ = CheckLicense(s) })
}
