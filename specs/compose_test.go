package specs

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const oneTask = header + `
# A job

Some prose.

## Tasks

` + "```yaml" + `
train:
  image: oci-archive:images/trainer.tar
  command: [trainer, train]
  args: [--seed, "7"]
  env: {MODE: fast}
  outputs: [model.json]
  resources: {cpu: 1, memory: 256MiB, max_duration: 5m}
` + "```" + `
` + budget

func mustLoad(t *testing.T, content string) *Spec {
	t.Helper()
	dir := writeFiles(t, map[string]string{"spec.md": content})
	s, err := Load(filepath.Join(dir, "spec.md"))
	if err != nil {
		t.Fatalf("load:\n%v\n--- spec:\n%s", err, content)
	}
	return s
}

func digests(t *testing.T, content string) (doc, contract string) {
	t.Helper()
	s := mustLoad(t, content)
	c, err := ContractDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return s.Source.DocumentDigest, c
}

func TestProseEditKeepsContract(t *testing.T) {
	doc0, c0 := digests(t, oneTask)
	for name, edited := range map[string]string{
		"paragraph":    strings.Replace(oneTask, "Some prose.", "Different prose, longer.\n\nAnd another paragraph.", 1),
		"title":        strings.Replace(oneTask, "# A job", "# A renamed job", 1),
		"other block":  strings.Replace(oneTask, "Some prose.", "```sh\naccord spec lint spec.md\n```\n\n```yaml\nnot: machine content here\n```", 1),
		"yaml comment": strings.Replace(oneTask, "  command: [trainer, train]", "  # run the trainer\n  command: [trainer, train]", 1),
		"same units":   strings.Replace(oneTask, "{cpu: 1, memory: 256MiB, max_duration: 5m}", "{max_duration: 300s, memory: 268435456, cpu: 1000m}", 1),
		"new section":  strings.Replace(oneTask, "## Tasks", "## Background\n\nWhy we run this.\n\n## Tasks", 1),
	} {
		doc, c := digests(t, edited)
		if doc == doc0 {
			t.Errorf("%s: document digest unchanged", name)
		}
		if c != c0 {
			t.Errorf("%s: contract digest changed", name)
		}
	}
}

func TestTermEditChangesContract(t *testing.T) {
	_, c0 := digests(t, oneTask)
	seen := map[string]string{c0: "original"}
	for name, edited := range map[string]string{
		"cpu":       strings.Replace(oneTask, "cpu: 1,", "cpu: 2,", 1),
		"memory":    strings.Replace(oneTask, "256MiB", "256MB", 1),
		"duration":  strings.Replace(oneTask, "max_duration: 5m", "max_duration: 6m", 1),
		"arg":       strings.Replace(oneTask, `"7"`, `"8"`, 1),
		"env":       strings.Replace(oneTask, "fast", "slow", 1),
		"price":     strings.Replace(oneTask, "max_price: 100000", "max_price: 100001", 1),
		"currency":  strings.Replace(oneTask, "currency: USD", "currency: EUR", 1),
		"task name": strings.Replace(oneTask, "train:", "fit:", 1),
		"output":    strings.Replace(oneTask, "[model.json]", "[model.json, extra.json]", 1),
		"version":   strings.Replace(oneTask, "version: 1.0.0", "version: 1.0.1", 1),
		"retry":     strings.Replace(oneTask, "  outputs:", "  retry: {attempts: 2}\n  outputs:", 1),
	} {
		_, c := digests(t, edited)
		if prev, dup := seen[c]; dup {
			t.Errorf("%s: contract digest equals that of %s", name, prev)
		}
		seen[c] = name
	}
}

// TestCanonicalStable is a property test: for random generated specs, any
// permutation of task order, key order and set-like lists gives the same
// contract digest, and canonical JSON is a fixed point of decode+encode.
func TestCanonicalStable(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed))
		n := 1 + rng.IntN(60)
		_, want := digests(t, genSpec(n, rng, false))
		for k := 0; k < 3; k++ {
			s := mustLoad(t, genSpec(n, rng, true))
			got, err := ContractDigest(s)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("seed %d n %d: shuffled spec has contract %s, want %s", seed, n, got, want)
			}
			b1, _ := CanonicalJSON(s)
			var back Spec
			if err := jsonUnmarshal(b1, &back); err != nil {
				t.Fatal(err)
			}
			b2, _ := CanonicalJSON(&back)
			if string(b1) != string(b2) {
				t.Fatalf("seed %d: canonical JSON is not a fixed point", seed)
			}
		}
	}
}

func TestExtendsSemantics(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base/base.md": `---
accord: v1
tenant: base-tenant
labels: {a: "1", b: "2"}
tags: [x, y]
---

## Tasks

` + "```yaml" + `
train:
  image: oci-archive:img.tar
  command: [trainer, train]
  outputs: [model.json]
  resources: {cpu: 2, memory: 1GiB}
` + "```" + `

## Placement

` + "```yaml" + `
regions: [r1, r2]
tee: tdx
` + "```" + `
` + budget,
		"child.md": `---
extends: base/base.md
name: child
version: 2.0.0
labels: {b: "20", c: "3"}
tags: [z]
---

## Tasks

` + "```yaml" + `
train:
  resources: {memory: 2GiB}
` + "```" + `

## Placement

` + "```yaml" + `
regions: [r3]
` + "```" + `
`,
	})
	s, err := Load(filepath.Join(dir, "child.md"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Tenant != "base-tenant" || s.Name != "child" {
		t.Errorf("identity = %q %q", s.Tenant, s.Name)
	}
	if s.Labels["a"] != "1" || s.Labels["b"] != "20" || s.Labels["c"] != "3" {
		t.Errorf("maps must merge: %v", s.Labels)
	}
	if strings.Join(s.Tags, ",") != "z" || strings.Join(s.Placement.Regions, ",") != "r3" {
		t.Errorf("lists must replace: tags %v regions %v", s.Tags, s.Placement.Regions)
	}
	tr := s.Tasks[0]
	if tr.Resources.MilliCPU != 2000 || tr.Resources.MemoryBytes != 2<<30 || s.Placement.TEE != "tdx" {
		t.Errorf("task fields must merge: %+v %+v", tr, s.Placement)
	}
	if p := s.Source.Positions["tasks.train.resources.memory"]; p.File != filepath.Join(dir, "child.md") {
		t.Errorf("memory position = %+v, want child.md", p)
	}
	if p := s.Source.Positions["tasks.train.resources.cpu"]; p.File != filepath.Join(dir, "base/base.md") || p.Line != 15 {
		t.Errorf("cpu position = %+v, want base.md:15", p)
	}
	// The oci-archive path is written relative to the base's directory and
	// rebased onto the extending spec's.
	if tr.Image != "oci-archive:base/img.tar" {
		t.Errorf("image = %q, want it rebased to base/img.tar", tr.Image)
	}
	if len(s.Source.Documents) != 2 {
		t.Errorf("documents = %v", s.Source.Documents)
	}
}

func TestImportCycle(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.md": strings.Replace(oneTask, "tenant: demo", "tenant: demo\nimports: {b: b.md}", 1),
		"b.md": strings.Replace(oneTask, "tenant: demo", "tenant: demo\nimports: {a: a.md}", 1),
	})
	_, err := Load(filepath.Join(dir, "a.md"))
	if err == nil || !strings.Contains(err.Error(), "composition cycle: "+filepath.Join(dir, "a.md")+" -> "+filepath.Join(dir, "b.md")+" -> "+filepath.Join(dir, "a.md")) {
		t.Fatalf("err = %v", err)
	}
}

func TestImportNamespacing(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"sub/child.md": strings.Replace(oneTask, "image: oci-archive:images/trainer.tar", "image: oci-archive:../images/trainer.tar", 1),
		"parent.md": strings.Replace(strings.Replace(oneTask, "tenant: demo", "tenant: demo\nimports:\n  prep: {path: sub/child.md, depends_on: [fetch]}", 1),
			"train:\n", "fetch:\n  image: oci-archive:images/trainer.tar\nuse:\n  image: oci-archive:images/trainer.tar\n  inputs: [{name: m, from: \"prep.train:model.json\"}]\ntrain:\n", 1),
	})
	p, err := LoadPlan(filepath.Join(dir, "parent.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pt := range p.Tasks {
		names = append(names, pt.Name)
		if pt.Name == "prep.train" {
			if pt.Image != "oci-archive:images/trainer.tar" {
				t.Errorf("imported image not rebased: %q", pt.Image)
			}
			if strings.Join(pt.DependsOn, ",") != "fetch" {
				t.Errorf("import depends_on not applied: %v", pt.DependsOn)
			}
		}
		if pt.Name == "use" && strings.Join(pt.DependsOn, ",") != "prep.train" {
			t.Errorf("from must imply depends_on: %v", pt.DependsOn)
		}
	}
	if got := strings.Join(names, ","); got != "fetch,prep.train,train,use" {
		t.Errorf("order = %s", got)
	}
}

func TestCompileOrderAndCriticalPath(t *testing.T) {
	task := func(name string, d time.Duration, deps ...string) Task {
		return Task{Name: name, Image: "oci-archive:x", DependsOn: deps, Resources: Resources{MilliCPU: 1000, MemoryBytes: 1 << 30, MaxDuration: d}, Retry: Retry{Attempts: 1}}
	}
	s := &Spec{Name: "d", Tasks: []Task{
		task("z-sink", time.Minute, "b", "c"),
		task("c", 10*time.Minute, "a"),
		task("b", 10*time.Minute, "a"),
		task("a", time.Minute),
		task("lone", 5*time.Minute),
	}, Budget: Budget{MaxPrice: 10, Currency: "USD"}}
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, pt := range p.Tasks {
		order = append(order, pt.Name)
	}
	if got := strings.Join(order, ","); got != "a,b,c,lone,z-sink" {
		t.Errorf("order = %s", got)
	}
	// b and c tie at 11m: the tie goes to the smaller name.
	if got := strings.Join(p.CriticalPath, ","); got != "a,b,z-sink" || p.CriticalTime != 12*time.Minute {
		t.Errorf("critical = %s %s", got, p.CriticalTime)
	}
	if p.Tasks[4].Level != 2 || p.Levels != 3 {
		t.Errorf("levels = %d %d", p.Tasks[4].Level, p.Levels)
	}
	if p.MaxCost != 10 {
		t.Errorf("max cost = %d", p.MaxCost)
	}
	if s.Tasks[0].Name != "z-sink" {
		t.Error("Compile modified the spec")
	}

	s.Tasks[3].DependsOn = []string{"z-sink"}
	if _, err := Compile(s); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: err = %v", err)
	}
	s.Tasks[3].DependsOn = []string{"nope"}
	if _, err := Compile(s); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown dep: err = %v", err)
	}
}
