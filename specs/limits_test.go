package specs

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lintErr(t *testing.T, data []byte) string {
	t.Helper()
	_, err := Parse("x.md", data)
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("not ErrInvalid: %v", err)
	}
	return err.Error()
}

func TestHostileInput(t *testing.T) {
	tasks := func(body string) []byte {
		return []byte(header + "\n## Tasks\n\n```yaml\n" + body + "\n```\n" + budget)
	}
	var laughs strings.Builder
	laughs.WriteString("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	for i := 'b'; i <= 'j'; i++ {
		laughs.WriteString(string(i) + ": &" + string(i) + " [")
		for k := 0; k < 9; k++ {
			if k > 0 {
				laughs.WriteString(",")
			}
			laughs.WriteString("*" + string(i-1))
		}
		laughs.WriteString("]\n")
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"too large", append(tasks("t: {}"), bytes.Repeat([]byte("prose "), MaxFileSize/6+1)...), "x.md:1:1: spec is larger than the 4194304-byte (4 MiB) limit"},
		{"not utf-8", []byte("---\nname: \xff\n---\n"), "x.md:2:7: spec is not valid UTF-8 (invalid byte 0xff at offset 10)"},
		{"nul", []byte("---\nname: a\x00\n---\n"), "x.md:2:8: spec contains a NUL byte"},
		{"billion laughs", tasks(laughs.String()), "x.md:12:8: yaml: aliases (*a) are not allowed in specs"},
		{"deep flow", tasks("t: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000)), "yaml: exceeded max depth of 10000"},
		{"deep block", tasks("t:" + strings.Repeat("\n  x:", 1)), "task \"t\": image is required"},
		{"deep mapping", tasks(func() string {
			var b strings.Builder
			b.WriteString("t:\n")
			for i := 1; i < 60; i++ {
				b.WriteString(strings.Repeat(" ", i) + "k:\n")
			}
			return b.String()
		}()), "yaml: value nested more than 32 levels deep"},
		{"negative", tasks("t: {image: oci-archive:x, resources: {cpu: -1}}"), "cpu must not be negative"},
		{"overflow", tasks("t: {image: oci-archive:x, resources: {memory: 99999999999999999999}}"), "memory is too large"},
		{"unclosed front matter", []byte("---\nname: a\n"), "x.md:1:1: front matter is not closed"},
		{"multi-document block", tasks("t: {image: oci-archive:x}\n---\nu: 1"), "only one YAML document is allowed per block"},
		{"merge key", tasks("t: {image: oci-archive:x, <<: {a: 1}}"), "merge keys (<<) are not allowed"},
		{"custom tag", tasks("t: !!binary aGVsbG8="), "unsupported tag !!binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got := lintErr(t, tc.data)
			if !strings.Contains(got, tc.want) {
				t.Errorf("error:\n%s\nwant it to contain:\n%s", got, tc.want)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s", d) // a guard against blow-ups, not a performance target
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.md"))
	if err == nil || errors.Is(err, ErrInvalid) || Errors(err) != nil {
		t.Fatalf("err = %v; want a plain read error", err)
	}
}

func TestAllErrorsReported(t *testing.T) {
	inRepoRoot(t)
	_, err := Load("examples/invalid/many-errors.md")
	if n := len(Errors(err)); n != 7 {
		t.Fatalf("got %d errors, want 7:\n%v", n, err)
	}
}

func TestErrorCap(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 500; i++ {
		b.WriteString("t" + itoa(i) + ": {image: bad}\n")
	}
	data := []byte(header + "\n## Tasks\n\n```yaml\n" + b.String() + "```\n" + budget)
	_, err := Parse("x.md", data)
	l := Errors(err)
	if len(l) != maxErrors+1 || !strings.Contains(l[len(l)-1].Message, "too many errors (300 more not shown)") {
		t.Fatalf("got %d errors, last %v", len(l), l[len(l)-1])
	}
}

func TestLongCycle(t *testing.T) {
	var b strings.Builder
	const n = 3000
	for i := 0; i < n; i++ {
		// Every task depends on the next and on the first: n back edges.
		b.WriteString("t" + itoa(i) + ": {image: oci-archive:x, depends_on: [t" + itoa((i+1)%n) + ", t0]}\n")
	}
	got := lintErr(t, []byte(header+"\n## Tasks\n\n```yaml\n"+b.String()+"```\n"+budget))
	if !strings.Contains(got, "dependency cycle: t0 -> t1 -> t2") || !strings.Contains(got, "more) ->") {
		t.Errorf("error = %.300s", got)
	}
	if len(got) > 20000 {
		t.Errorf("error text is %d bytes", len(got))
	}
}
