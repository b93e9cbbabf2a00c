package nomad

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/accordmesh/accord/runtimes"
)

// ArchivePrefix marks an image given as a local OCI archive.
const ArchivePrefix = "oci-archive:"

// archiveImage is what a job needs to run an image shipped as an OCI archive.
type archiveImage struct {
	Digest string // manifest digest from index.json
	Name   string // image name the archive loads as
}

// readArchive reads index.json from an OCI image-layout tar and returns the
// single manifest's digest and image name (the io.containerd.image.name
// annotation, else a name derived from the digest).
func readArchive(path string) (archiveImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return archiveImage{}, fmt.Errorf("%w: %s: %v", runtimes.ErrImage, path, err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return archiveImage{}, fmt.Errorf("%w: %s has no index.json (not an OCI image layout archive)", runtimes.ErrImage, path)
		}
		if err != nil {
			return archiveImage{}, fmt.Errorf("%w: %s: %v", runtimes.ErrImage, path, err)
		}
		if strings.TrimPrefix(h.Name, "./") != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Digest      string            `json:"digest"`
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&idx); err != nil {
			return archiveImage{}, fmt.Errorf("%w: %s: index.json: %v", runtimes.ErrImage, path, err)
		}
		if len(idx.Manifests) != 1 {
			return archiveImage{}, fmt.Errorf("%w: %s: index.json lists %d manifests, want 1", runtimes.ErrImage, path, len(idx.Manifests))
		}
		m := idx.Manifests[0]
		if !strings.HasPrefix(m.Digest, "sha256:") || len(m.Digest) != len("sha256:")+64 {
			return archiveImage{}, fmt.Errorf("%w: %s: malformed manifest digest %q", runtimes.ErrImage, path, m.Digest)
		}
		name := m.Annotations["io.containerd.image.name"]
		if name == "" {
			name = "accord.local/oci-archive:" + m.Digest[len("sha256:"):len("sha256:")+12]
		}
		return archiveImage{Digest: m.Digest, Name: name}, nil
	}
}
