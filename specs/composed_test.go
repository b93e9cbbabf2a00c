package specs

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestComposed: the files a signature covers are named relative to the
// root's directory, whatever the working directory or how the root was
// named, and sorted.
func TestComposed(t *testing.T) {
	dir := t.TempDir()
	docs := []Document{
		{File: filepath.Join(dir, "jobs", "root.md"), Digest: "sha256:r"},
		{File: filepath.Join(dir, "jobs", "lib", "z.md"), Digest: "sha256:z"},
		{File: filepath.Join(dir, "base", "a.md"), Digest: "sha256:a"},
	}
	want := []Document{{File: "../base/a.md", Digest: "sha256:a"}, {File: "lib/z.md", Digest: "sha256:z"}}
	got, err := Composed(docs)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Composed = %+v, %v; want %+v", got, err, want)
	}
	// The same files named from another working directory.
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	rel := []Document{{File: "jobs/root.md", Digest: "sha256:r"}, {File: "jobs/lib/z.md", Digest: "sha256:z"}, {File: "base/a.md", Digest: "sha256:a"}}
	if got, err := Composed(rel); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Composed from the working directory = %+v, %v; want %+v", got, err, want)
	}
	if got, err := Composed(docs[:1]); err != nil || len(got) != 0 {
		t.Fatalf("a standalone spec composes nothing: %+v %v", got, err)
	}
	if _, err := Composed(nil); err == nil {
		t.Fatal("Composed(nil) succeeded")
	}
}
