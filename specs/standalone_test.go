package specs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseStandaloneReadsNoFile: an uploaded spec that extends or imports
// a file is refused before any file is read, even one that exists.
func TestParseStandaloneReadsNoFile(t *testing.T) {
	quick, err := os.ReadFile(filepath.Join("..", "examples", "quickstart.md"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseStandalone("quickstart.md", quick)
	if err != nil || s.Tenant == "" {
		t.Fatalf("a standalone spec: %v", err)
	}
	base := filepath.Join(t.TempDir(), "base.md")
	if err := os.WriteFile(base, quick, 0o600); err != nil {
		t.Fatal(err)
	}
	for doc, at := range map[string]string{
		"---\nextends: " + base + "\n---\n":                        "up.md:2:1",
		"---\nextends: ../../keys/worker.key\n---\n":               "up.md:2:1",
		"---\nname: x\nimports:\n  a: {path: " + base + "}\n---\n": "up.md:3:1",
	} {
		_, err := ParseStandalone("up.md", []byte(doc))
		if !errors.Is(err, ErrNotStandalone) {
			t.Errorf("%q: %v, want ErrNotStandalone", doc, err)
			continue
		}
		if !strings.Contains(err.Error(), at) {
			t.Errorf("%q: error %q has no position", doc, err)
		}
	}
}
