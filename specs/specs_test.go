package specs

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// inRepoRoot runs the test from the repository root so that file names in
// errors and plans read "examples/...", as `accord spec` prints them there.
func inRepoRoot(t *testing.T) {
	t.Helper()
	t.Chdir("..")
}

func TestExamplesAreValid(t *testing.T) {
	inRepoRoot(t)
	files, _ := filepath.Glob("examples/*.md")
	if len(files) < 3 {
		t.Fatalf("found %d examples, want at least 3", len(files))
	}
	for _, f := range files {
		if _, err := LoadPlan(f); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
}

// TestInvalidExamples checks that each examples/invalid/NAME.md fails with
// exactly the errors in NAME.err, one "file:line:col: message" per line.
func TestInvalidExamples(t *testing.T) {
	inRepoRoot(t)
	files, _ := filepath.Glob("examples/invalid/*.md")
	if len(files) < 20 {
		t.Fatalf("found %d invalid examples, want at least 20", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".md") + ".err")
			if err != nil {
				t.Fatalf("no expectation: %v", err)
			}
			_, err = LoadPlan(f)
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !errors.Is(err, ErrInvalid) || Errors(err) == nil {
				t.Fatalf("error is not an ErrorList wrapping ErrInvalid: %v", err)
			}
			if got := err.Error(); got != strings.TrimSpace(string(want)) {
				t.Errorf("errors differ\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestGoldenPlans(t *testing.T) {
	inRepoRoot(t)
	files, _ := filepath.Glob("examples/*.md")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".md")
		t.Run(name, func(t *testing.T) {
			p, err := LoadPlan(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("specs", "testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./specs -run TestGoldenPlans -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("plan for %s differs from %s (rerun with -update if intended)\n%s", f, golden, firstDiff(got, want))
			}
		})
	}
}

func firstDiff(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return "line " + itoa(i+1) + ":\n got: " + la[i] + "\nwant: " + lb[i]
		}
	}
	return "lengths differ"
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestQuickstartPlan(t *testing.T) {
	inRepoRoot(t)
	p, err := LoadPlan("examples/quickstart.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tasks) != 1 {
		t.Fatalf("tasks = %d", len(p.Tasks))
	}
	tr := p.Tasks[0]
	if tr.Resources.MilliCPU != 1000 || tr.Resources.MemoryBytes != 256<<20 || tr.Resources.MaxDuration != 5*time.Minute {
		t.Errorf("resources = %+v", tr.Resources)
	}
	if got := strings.Join(tr.Args, " "); got != "--samples 2000 --epochs 50 --seed 7" {
		t.Errorf("args = %q", got)
	}
	if p.MaxCost != 500 || p.Currency != "USD" {
		t.Errorf("max cost = %d %s", p.MaxCost, p.Currency)
	}
	if tr.Origin.File != "examples/quickstart.md" || tr.Origin.Line == 0 {
		t.Errorf("origin = %+v", tr.Origin)
	}
	s := p.Spec
	if got, want := s.Source.Positions["tasks.train.resources.memory"].Line, lineOf(t, "examples/quickstart.md", "memory: 256MiB"); got != want {
		t.Errorf("position of memory = line %d, want %d", got, want)
	}
	if arch, ok := s.ArchivePath(tr.Image); !ok || arch != filepath.Join("examples", "images", "trainer.tar") {
		t.Errorf("archive path = %q %v", arch, ok)
	}
	if len(s.Verification.Tests) != 1 || s.Verification.Tests[0].Metrics[0].Value != 0.8 {
		t.Errorf("tests = %+v", s.Verification.Tests)
	}
}

func lineOf(t *testing.T, file, needle string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, needle) {
			return i + 1
		}
	}
	t.Fatalf("%q not in %s", needle, file)
	return 0
}

func TestLLMFinetunePlan(t *testing.T) {
	inRepoRoot(t)
	p, err := LoadPlan("examples/llm-finetune.md")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, pt := range p.Tasks {
		order = append(order, pt.Name)
	}
	if got := strings.Join(order, ","); got != "prepare,train,eval" {
		t.Errorf("order = %s", got)
	}
	if got := strings.Join(p.CriticalPath, ","); got != "prepare,train,eval" {
		t.Errorf("critical path = %s", got)
	}
	if p.CriticalTime != 5*time.Minute+90*time.Minute+20*time.Minute {
		t.Errorf("critical time = %s", p.CriticalTime)
	}
	train := p.Tasks[1]
	if train.Resources.GPU != (GPU{Count: 1, Model: "H100", MinMemoryBytes: 40 << 30}) {
		t.Errorf("gpu = %+v", train.Resources.GPU)
	}
	if train.Level != 1 || p.Tasks[2].Level != 2 || p.Levels != 3 {
		t.Errorf("levels = %d %d %d", train.Level, p.Tasks[2].Level, p.Levels)
	}
	if train.Group == "" || train.Group != p.Tasks[2].Group || p.Tasks[0].Group != "" {
		t.Errorf("groups = %q %q %q", p.Tasks[0].Group, train.Group, p.Tasks[2].Group)
	}
	if got := strings.Join(train.Trust, ","); got != "image:local-archive,tee:nvidia-cc,attestation:required,input:data:upstream" {
		t.Errorf("trust = %s", got)
	}
	if got := strings.Join(p.Tasks[2].Consumes, ","); got != "prepare:dataset.csv,train:model.json" {
		t.Errorf("consumes = %s", got)
	}
	// eval's defaults come from ## Defaults; prepare overrides them.
	if p.Tasks[2].Resources.MilliCPU != 2000 || p.Tasks[0].Resources.MilliCPU != 500 || p.Tasks[2].Retry.Attempts != 2 {
		t.Errorf("defaults not applied: %+v %+v", p.Tasks[2].Resources, p.Tasks[0].Resources)
	}
	s := p.Spec
	if len(s.Settlement.Royalties) != 2 || s.Settlement.Royalties[0].BasisPoints != 500 {
		t.Errorf("royalties = %+v", s.Settlement.Royalties)
	}
	if s.Negotiation.Protocol != "alternating-offers" || s.Negotiation.Discount != 0.95 || s.Approval.AbovePrice != 8000 {
		t.Errorf("negotiation/approval = %+v %+v", s.Negotiation, s.Approval)
	}
	// Every task has 2 attempts (from ## Defaults): the envelope counts both.
	if want := int64(2 * (5*60 + 90*60 + 20*60)); p.Envelope.TaskSeconds != want {
		t.Errorf("task seconds = %d, want %d", p.Envelope.TaskSeconds, want)
	}
	if want := int64(2 * 90 * 60); p.Envelope.GPUSeconds != want {
		t.Errorf("gpu seconds = %d, want %d", p.Envelope.GPUSeconds, want)
	}
	// Reference cost: 2 attempts × (prepare 5m: 0.5 core, 0.5 GiB; train 1.5h:
	// 4 cores, 16 GiB, 1 GPU; eval 20m: 2 cores, 4 GiB), in minor units.
	ref := 2 * ((5.0/60)*(0.5*RefPriceCoreHour+0.5*RefPriceGiBHour) +
		1.5*(4*RefPriceCoreHour+16*RefPriceGiBHour+RefPriceGPUHour) +
		(20.0/60)*(2*RefPriceCoreHour+4*RefPriceGiBHour))
	if want := int64(ref + 0.999999); p.ReferenceCost != want {
		t.Errorf("reference cost = %d, want %d (%.4f)", p.ReferenceCost, want, ref)
	}
}

func TestBatchInferenceComposition(t *testing.T) {
	inRepoRoot(t)
	p, err := LoadPlan("examples/batch-inference.md")
	if err != nil {
		t.Fatal(err)
	}
	s := p.Spec
	// From the base: tenant, placement, currency, defaults; overridden: max_price.
	if s.Tenant != "demo" || s.Budget.Currency != "USD" || s.Budget.MaxPrice != 1500 || s.Budget.Preference != 0.5 {
		t.Errorf("budget/tenant = %q %+v", s.Tenant, s.Budget)
	}
	// Maps merge: labels from both files.
	if s.Labels["managed-by"] != "accord" || s.Labels["team"] != "analytics" {
		t.Errorf("labels = %v", s.Labels)
	}
	if got := s.Source.Positions["placement.residency"].File; got != "examples/base/cpu-eu.md" {
		t.Errorf("residency came from %q", got)
	}
	if got := s.Source.Positions["budget.max_price"].File; got != "examples/batch-inference.md" {
		t.Errorf("max_price came from %q", got)
	}
	// Imported quickstart: namespaced task and test, its own resources.
	var mt *PlanTask
	for i := range p.Tasks {
		if p.Tasks[i].Name == "model.train" {
			mt = &p.Tasks[i]
		}
	}
	if mt == nil || mt.Resources.MemoryBytes != 256<<20 || mt.Image != "oci-archive:images/trainer.tar" {
		t.Fatalf("model.train = %+v", mt)
	}
	if mt.Origin.File != "examples/quickstart.md" {
		t.Errorf("model.train origin = %+v", mt.Origin)
	}
	found := false
	for _, ts := range s.Verification.Tests {
		found = found || (ts.Name == "model.accuracy" && ts.Task == "model.train")
	}
	if !found {
		t.Errorf("imported test missing: %+v", s.Verification.Tests)
	}
	// score-c overrides one default (memory) and keeps the rest (cpu).
	for _, pt := range p.Tasks {
		if pt.Name == "score-c" && (pt.Resources.MemoryBytes != 512<<20 || pt.Resources.MilliCPU != 500) {
			t.Errorf("score-c resources = %+v", pt.Resources)
		}
	}
	if len(s.Source.Documents) != 3 {
		t.Errorf("documents = %+v", s.Source.Documents)
	}
}

// TestReferenceExample keeps the example at the top of
// the README's spec reference a valid spec.
func TestReferenceExample(t *testing.T) {
	inRepoRoot(t)
	doc, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "~~~markdown\n")
	if !ok {
		t.Fatal("no ~~~markdown example in README.md")
	}
	example, _, _ := strings.Cut(rest, "~~~\n")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ref.md"), []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPlan(filepath.Join(dir, "ref.md")); err != nil {
		t.Fatalf("reference example does not load:\n%v", err)
	}
}

func TestSpotCheck(t *testing.T) {
	base := "---\naccord: v1\nname: sc\nversion: 1.0.0\ntenant: acme\n---\n\n## Tasks\n\n```yaml\na:\n  image: \"busybox@sha256:" +
		strings.Repeat("a", 64) + "\"\n  command: [\"true\"]\n```\n\n## Budget\n\n```yaml\nmax_price: 500\ncurrency: USD\n```\n\n## Verification\n\n```yaml\n%s\n```\n"
	for _, tc := range []struct {
		yaml string
		want float64
		bad  bool
	}{
		{yaml: "spot_check: 0.1", want: 0.1},
		{yaml: "spot_check: 1", want: 1},
		{yaml: "spot_check: 0", want: 0},
		{yaml: "spot_check: 1.5", bad: true},
		{yaml: "spot_check: -0.1", bad: true},
		{yaml: "spot_check: often", bad: true},
	} {
		s, err := Parse("sc.md", []byte(fmt.Sprintf(base, tc.yaml)))
		if tc.bad {
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err = %v, want invalid", tc.yaml, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if s.Verification.SpotCheck != tc.want {
			t.Errorf("%s: spot_check = %v, want %v", tc.yaml, s.Verification.SpotCheck, tc.want)
		}
	}
}
