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

// TestHostInputsNamesArchives: an uploaded spec's oci-archive images (of
// tasks and tests) are host paths too, and are reported beside path inputs;
// artifacts and upstream outputs are not.
func TestHostInputsNamesArchives(t *testing.T) {
	const pin = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	doc := "---\naccord: v1\nname: x\nversion: 1.0.0\ntenant: t\n---\n\n## Tasks\n\n```yaml\n" +
		"a:\n  image: oci-archive:../../keys/img.tar\n  outputs: [o.txt]\n" +
		"b:\n  image: artifact:" + pin + "\n  inputs:\n" +
		"    - {name: up, from: \"a:o.txt\"}\n    - {name: blob, artifact: \"" + pin + "\"}\n    - {name: key, path: /etc/shadow}\n" +
		"```\n\n## Verification\n\n```yaml\ntests:\n  - {name: v, task: a, image: \"oci-archive:/tmp/v.tar\", command: [\"true\"]}\n```\n\n" +
		"## Budget\n\n```yaml\nmax_price: 1\ncurrency: USD\n```\n"
	s, err := ParseStandalone("up.md", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(HostInputs(s), "\n")
	want := "task a: image oci-archive:../../keys/img.tar\ntask b: input key: path /etc/shadow\ntest v: image oci-archive:/tmp/v.tar"
	if got != want {
		t.Errorf("HostInputs:\n%s\nwant:\n%s", got, want)
	}
	for _, in := range s.Tasks[1].Inputs {
		if in.Name == "blob" && in.Artifact != pin {
			t.Errorf("artifact input decoded as %+v", in)
		}
	}
}
