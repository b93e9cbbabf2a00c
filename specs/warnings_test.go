package specs

import (
	"strings"
	"testing"
)

// TestWarnings checks that an implausible but valid spec (1,024 GPUs for
// 100,000 days on a 1-cent budget, with a missing image archive) loads
// without errors and gets one warning per problem, each at its field.
func TestWarnings(t *testing.T) {
	const file = "testdata/warnings/implausible.md"
	p, err := LoadPlan(file)
	if err != nil {
		t.Fatalf("LoadPlan: %v", err)
	}
	got := Warnings(p.Spec, p)
	want := []string{
		file + ":14:10: task train: image archive testdata/warnings/no-such-image.tar does not exist",
		file + ":20:14: task train asks for 1024 GPUs",
		file + ":21:19: task train: max_duration 100000d is over a year",
		file + ":27:12: max_price 0.01 USD is less than 1/10 of the reference cost",
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%v", got)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].Error(), w) {
			t.Errorf("warning %d = %q, want prefix %q", i, got[i].Error(), w)
		}
	}
	q, err := LoadPlan("../examples/batch-inference.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range Warnings(q.Spec, q) { // its image archive is built by make images
		if !strings.Contains(w.Message, "image archive ../examples/images/trainer.tar") {
			t.Errorf("a plausible example warns: %v", w)
		}
	}
}

// TestTabIndentation checks that a YAML block indented with a tab gets an
// error that says so, at the tab (the block starts on line 11).
func TestTabIndentation(t *testing.T) {
	for _, body := range []string{"train:\n\timage: x\n", "train:\n  image: x\n\t  cpu: 1\n", "\tmax_price: 500\n"} {
		doc := "---\naccord: v1\nname: t\nversion: 1.0.0\ntenant: demo\n---\n\n## Tasks\n\n```yaml\n" + body + "```\n"
		_, err := Parse("tab.md", []byte(doc))
		l := Errors(err)
		line := 11 + strings.Count(body[:strings.IndexByte(body, '\t')], "\n")
		if len(l) == 0 || !strings.Contains(l[0].Message, "tab character in indentation") || l[0].Pos.Line != line || l[0].Pos.Col != 1 {
			t.Errorf("%q: %v, want the tab at %d:1", body, err, line)
		}
	}
}
