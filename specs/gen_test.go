package specs

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFiles writes name -> content into a new temporary directory and
// returns the directory.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const header = `---
accord: v1
name: gen
version: 1.0.0
tenant: demo
---
`

const budget = "\n## Budget\n\n```yaml\nmax_price: 100000\ncurrency: USD\n```\n"

// genSpec writes a spec with n tasks in layers of about ten: every task
// after the first layer depends on up to three tasks of the layer before and
// reads one output of the first of them. With shuffle, task order, list
// order and key order are permuted (the contract must not change).
func genSpec(n int, rng *rand.Rand, shuffle bool) string {
	const width = 10
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\n# Generated\n\nProse.\n\n## Tasks\n\n```yaml\n")
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if shuffle {
		rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	for _, i := range order {
		fmt.Fprintf(&b, "t%05d:\n", i)
		fields := []string{
			"  image: oci-archive:images/trainer.tar\n",
			fmt.Sprintf("  command: [trainer, train, --seed, \"%d\"]\n", i),
			"  outputs: [out.json, metrics.json]\n",
			fmt.Sprintf("  resources: {cpu: %dm, memory: %dMiB, max_duration: %dm}\n", 100+i%7*100, 64+i%5*64, 1+i%13),
		}
		if layer := i / width; layer > 0 {
			var deps []string
			for k := 0; k < 3; k++ {
				deps = append(deps, fmt.Sprintf("t%05d", (layer-1)*width+(i+k)%width))
			}
			if shuffle {
				rng.Shuffle(len(deps), func(a, c int) { deps[a], deps[c] = deps[c], deps[a] })
			}
			fields = append(fields,
				fmt.Sprintf("  depends_on: [%s]\n", strings.Join(deps, ", ")),
				fmt.Sprintf("  inputs: [{name: in, from: \"t%05d:out.json\"}]\n", (layer-1)*width+i%width))
		}
		if shuffle {
			rng.Shuffle(len(fields), func(a, c int) { fields[a], fields[c] = fields[c], fields[a] })
		}
		for _, f := range fields {
			b.WriteString(f)
		}
	}
	b.WriteString("```\n")
	b.WriteString(budget)
	return b.String()
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
