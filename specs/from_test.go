package specs

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseFrom(t *testing.T) {
	for _, tc := range []struct {
		in, task, path string
		bad            string // part of the error, when the reference is refused
	}{
		{in: "prepare:data.csv", task: "prepare", path: "data.csv"},
		{in: "prep.tokenize:shards/0.bin", task: "prep.tokenize", path: "shards/0.bin"},
		{in: "a:b:c", task: "a", path: "b:c"}, // the first colon splits
		{in: "prepare", bad: `must be "<task>:<output path>"`},
		{in: ":data.csv", bad: `must be "<task>:<output path>"`},
		{in: "prepare:", bad: `must be "<task>:<output path>"`},
		{in: "", bad: `must be "<task>:<output path>"`},
		{in: "prepare:../secret", bad: "clean relative output path"},
		{in: "prepare:/etc/passwd", bad: "clean relative output path"},
		{in: "prepare:./data.csv", bad: "clean relative output path"},
		{in: "prepare:a//b", bad: "clean relative output path"},
		{in: "prepare:..", bad: "clean relative output path"},
	} {
		task, path, err := ParseFrom(tc.in)
		if tc.bad != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.bad) || task != "" || path != "" {
				t.Errorf("ParseFrom(%q) = %q, %q, %v; want an ErrInvalid saying %q", tc.in, task, path, err, tc.bad)
			}
			continue
		}
		if err != nil || task != tc.task || path != tc.path {
			t.Errorf("ParseFrom(%q) = %q, %q, %v; want %q, %q", tc.in, task, path, err, tc.task, tc.path)
		}
	}
}

// A from reference the decoder refuses is reported once, at its position,
// and not again by the validator.
func TestFromReportedAtPosition(t *testing.T) {
	msg := lintErr(t, []byte(header+"\n## Tasks\n\n```yaml\n"+
		"a: {image: oci-archive:x, outputs: [o.txt]}\n"+
		"b:\n  image: oci-archive:x\n  inputs:\n    - {name: i, from: \"a:../o.txt\"}\n"+
		"```\n"+budget))
	want := `x.md:15:23: from "a:../o.txt" must name a clean relative output path`
	if msg != want {
		t.Fatalf("errors:\n%s\nwant:\n%s", msg, want)
	}
}

func ExampleParseFrom() {
	task, path, err := ParseFrom("prepare:shards/0.bin")
	fmt.Println(task, path, err)
	_, _, err = ParseFrom("prepare:../../etc/passwd")
	fmt.Println(err)
	// Output:
	// prepare shards/0.bin <nil>
	// specs: invalid spec: from "prepare:../../etc/passwd" must name a clean relative output path
}
