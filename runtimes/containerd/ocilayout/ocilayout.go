// Package ocilayout writes single-image OCI archives (an OCI image layout in
// a tar file) from a handful of files, without a container engine.
//
// The archive holds one gzip-compressed layer, an image config, a manifest
// and an index.json whose manifest carries both the containerd image-name
// annotation and the OCI ref-name annotation, so `ctr import`, containerd's
// client.Import and other OCI tools all name the image. Output is
// deterministic: files are sorted, timestamps fixed, so the same inputs give
// the same digests.
package ocilayout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/accordmesh/accord/internal/atomicfile"
)

// ErrInvalid reports an unusable file list or image name.
var ErrInvalid = errors.New("ocilayout: invalid image")

// annotationImageName is containerd's name annotation (images.AnnotationImageName).
const annotationImageName = "io.containerd.image.name"

// epoch is the fixed modification time of every entry, for reproducible digests.
var epoch = time.Unix(0, 0).UTC()

// File is one entry of the image's single layer.
type File struct {
	Path     string // absolute path inside the image, e.g. "/bin/trainer"
	Mode     os.FileMode
	Data     []byte // contents of a regular file
	Source   string // or a host file to copy (read when the archive is written)
	Linkname string // for a symlink (Mode has os.ModeSymlink)
}

// Image describes the image to write.
type Image struct {
	Name       string   // full reference, e.g. "accord.local/trainer:latest"
	Files      []File   // directories are created as needed
	Entrypoint []string // config entrypoint
	Cmd        []string // default arguments
	Env        []string // KEY=VALUE
	WorkingDir string
}

// Write writes img as an OCI archive to w and returns the manifest digest.
func Write(w io.Writer, img Image) (digest.Digest, error) {
	if img.Name == "" {
		return "", fmt.Errorf("%w: empty name", ErrInvalid)
	}
	layer, diffID, err := buildLayer(img.Files)
	if err != nil {
		return "", err
	}
	layerDesc := descriptor(ocispec.MediaTypeImageLayerGzip, layer)

	env := img.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	config := ocispec.Image{
		Created:  &epoch,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config: ocispec.ImageConfig{
			Entrypoint: img.Entrypoint,
			Cmd:        img.Cmd,
			Env:        env,
			WorkingDir: img.WorkingDir,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return "", fmt.Errorf("ocilayout: config: %w", err)
	}
	configDesc := descriptor(ocispec.MediaTypeImageConfig, configJSON)

	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return "", fmt.Errorf("ocilayout: manifest: %w", err)
	}
	manifestDesc := descriptor(ocispec.MediaTypeImageManifest, manifestJSON)
	manifestDesc.Platform = &config.Platform

	named := manifestDesc
	named.Annotations = map[string]string{
		annotationImageName:       img.Name,
		ocispec.AnnotationRefName: refName(img.Name),
	}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{named},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return "", fmt.Errorf("ocilayout: index: %w", err)
	}
	layoutJSON, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})

	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layoutJSON},
		{blobPath(layerDesc.Digest), layer},
		{blobPath(configDesc.Digest), configJSON},
		{blobPath(manifestDesc.Digest), manifestJSON},
		{"index.json", indexJSON},
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch}); err != nil {
			return "", fmt.Errorf("ocilayout: write: %w", err)
		}
	}
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", fmt.Errorf("ocilayout: write: %w", err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return "", fmt.Errorf("ocilayout: write: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("ocilayout: write: %w", err)
	}
	return manifestDesc.Digest, nil
}

// WriteFile writes img to a file at p, atomically.
func WriteFile(p string, img Image) (digest.Digest, error) {
	var d digest.Digest
	var werr error
	err := atomicfile.Write(p, 0o600, func(w io.Writer) error {
		d, werr = Write(w, img)
		return werr
	})
	if werr != nil {
		return "", werr
	}
	if err != nil {
		return "", fmt.Errorf("ocilayout: %w", err)
	}
	return d, nil
}

// refName is the tag part of a reference, what OCI tools expect in
// org.opencontainers.image.ref.name.
func refName(name string) string {
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[i+1:]
	}
	return "latest"
}

func descriptor(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

func blobPath(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

// buildLayer returns the gzip-compressed layer and the digest of its
// uncompressed tar (the diff ID).
func buildLayer(files []File) ([]byte, digest.Digest, error) {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })

	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, h))
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "/" && d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			d := parents[i]
			dirs[d] = true
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range sorted {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, "", fmt.Errorf("%w: path %q must be absolute and clean", ErrInvalid, f.Path)
		}
		if err := mkdirs(f.Path); err != nil {
			return nil, "", fmt.Errorf("ocilayout: layer: %w", err)
		}
		name := strings.TrimPrefix(f.Path, "/")
		switch {
		case f.Mode&os.ModeSymlink != 0:
			hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.Linkname, Mode: 0o777, ModTime: epoch}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, "", fmt.Errorf("ocilayout: layer: %w", err)
			}
		case f.Mode.IsDir():
			dirs[f.Path] = true
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(f.Mode.Perm()), ModTime: epoch}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, "", fmt.Errorf("ocilayout: layer: %w", err)
			}
		default:
			data := f.Data
			if f.Source != "" {
				b, err := os.ReadFile(f.Source)
				if err != nil {
					return nil, "", fmt.Errorf("ocilayout: layer: %w", err)
				}
				data = b
			}
			mode := f.Mode.Perm()
			if mode == 0 {
				mode = 0o644
			}
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode), Size: int64(len(data)), ModTime: epoch}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, "", fmt.Errorf("ocilayout: layer: %w", err)
			}
			if _, err := tw.Write(data); err != nil {
				return nil, "", fmt.Errorf("ocilayout: layer: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("ocilayout: layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("ocilayout: layer: %w", err)
	}
	return gz.Bytes(), digest.NewDigestFromEncoded(digest.SHA256, fmt.Sprintf("%x", h.Sum(nil))), nil
}

// BusyboxApplets are the links Busybox adds under /bin: enough for shell
// scripts in tests and examples.
var BusyboxApplets = []string{"sh", "cat", "cp", "dd", "echo", "env", "false", "head", "ls", "mkdir",
	"rm", "seq", "sha256sum", "sleep", "tail", "true", "wc", "yes"}

// Busybox returns the files that install a static busybox binary (from the
// host path src, e.g. Debian busybox-static's /bin/busybox) at /bin/busybox
// with links for BusyboxApplets.
func Busybox(src string) []File {
	files := []File{{Path: "/bin/busybox", Mode: 0o755, Source: src}}
	for _, a := range BusyboxApplets {
		files = append(files, File{Path: "/bin/" + a, Mode: os.ModeSymlink, Linkname: "busybox"})
	}
	return append(files, File{Path: "/tmp", Mode: os.ModeDir | 0o777})
}
