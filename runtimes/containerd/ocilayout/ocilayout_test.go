package ocilayout

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestWriteIsDeterministicAndNamed(t *testing.T) {
	img := Image{
		Name: "accord.local/test/x:v1",
		Files: []File{
			{Path: "/bin/tool", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
			{Path: "/etc/link", Mode: os.ModeSymlink, Linkname: "/bin/tool"},
		},
		Cmd: []string{"/bin/tool"},
	}
	var a, b bytes.Buffer
	da, err := Write(&a, img)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Write(&b, img)
	if err != nil {
		t.Fatal(err)
	}
	if da != db || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same image differ")
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&a)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != da ||
		idx.Manifests[0].Annotations[annotationImageName] != img.Name ||
		idx.Manifests[0].Annotations[ocispec.AnnotationRefName] != "v1" {
		t.Fatalf("index %s", files["index.json"])
	}
	if _, ok := files[blobPath(da)]; !ok {
		t.Fatal("manifest blob missing")
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	for _, img := range []Image{
		{},
		{Name: "x", Files: []File{{Path: "relative"}}},
		{Name: "x", Files: []File{{Path: "/a/../b"}}},
		{Name: "x", Files: []File{{Path: "/"}}},
	} {
		if _, err := Write(io.Discard, img); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", img, err)
		}
	}
	if _, err := Write(io.Discard, Image{Name: "x", Files: []File{{Path: "/f", Source: "/no/such/file"}}}); err == nil {
		t.Error("missing source accepted")
	}
}
