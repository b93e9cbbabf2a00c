package specs

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the whole pipeline (Markdown split,
// YAML, composition, validation, compile). It must never panic; every
// problem must come back as positioned errors; whatever loads must compile
// and have a stable contract digest. Files the input extends or imports do
// not exist, so composition fails cleanly without touching the disk.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"../examples/*.md", "../examples/invalid/*.md", "../examples/base/*.md"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(oneTask))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := load(func(p string) ([]byte, error) {
			if p == "spec.md" {
				return data, nil
			}
			return nil, os.ErrNotExist
		}, "spec.md")
		if err != nil {
			l := Errors(err)
			if l == nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not an ErrorList: %v", err)
			}
			for _, e := range l {
				if e.Pos.File == "" || e.Pos.Line < 1 || e.Pos.Col < 1 || e.Message == "" {
					t.Fatalf("badly positioned error %+v", e)
				}
			}
			return
		}
		p, err := Compile(s)
		if err != nil {
			t.Fatalf("loaded spec does not compile: %v", err)
		}
		if len(p.Tasks) != len(s.Tasks) {
			t.Fatalf("plan has %d tasks, spec %d", len(p.Tasks), len(s.Tasks))
		}
		if _, err := json.Marshal(p); err != nil {
			t.Fatalf("plan does not encode: %v", err)
		}
		c1, _ := CanonicalJSON(s)
		var back Spec
		if err := json.Unmarshal(c1, &back); err != nil {
			t.Fatalf("canonical JSON does not decode: %v", err)
		}
		c2, _ := CanonicalJSON(&back)
		if string(c1) != string(c2) {
			t.Fatalf("canonical JSON is not a fixed point:\n%s\n%s", c1, c2)
		}
	})
}
