package registry

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/registry/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBenchPushPull measures push and pull throughput of a model of
// ACCORD_BENCH_MODEL_MIB MiB of random weights (make bench-models: 1024)
// with Client and with skopeo copy (an OCI layout of the same bytes and the
// same ModelPack manifest), against one docker-registry in the same run,
// and prints MB/s for each and the ratio accord/skopeo (higher is better
// for accord). Skipped unless the variable is set.
func TestBenchPushPull(t *testing.T) {
	mib, err := strconv.Atoi(os.Getenv("ACCORD_BENCH_MODEL_MIB"))
	if err != nil || mib <= 0 {
		t.Skip("set ACCORD_BENCH_MODEL_MIB (make bench-models) to run the push/pull benchmark")
	}
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatalf("skopeo (Debian package, scripts/deps/models.txt): %v", err)
	}
	addr := registrytest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir := t.TempDir()
	src := filepath.Join(dir, "model")
	m := benchModel(t, src, int64(mib)<<20)
	mb := float64(int64(mib)<<20) / 1e6

	c, err := New(addr, Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	accordPush := timed(t, func() error { _, err := c.Push(ctx, src, m); return err })
	accordPull := timed(t, func() error { _, err := c.Pull(ctx, m.Ref(), filepath.Join(dir, "pulled")); return err })

	layout := filepath.Join(dir, "layout")
	ociLayout(t, layout, src, m)
	dst := "docker://" + addr + "/bench/skopeo:" + m.Version
	skopeoPush := timed(t, func() error {
		return run(ctx, skopeo, "copy", "--quiet", "--dest-tls-verify=false", "oci:"+layout+":"+m.Version, dst)
	})
	skopeoPull := timed(t, func() error {
		return run(ctx, skopeo, "copy", "--quiet", "--src-tls-verify=false", dst, "oci:"+filepath.Join(dir, "skopeo-pulled")+":"+m.Version)
	})
	for _, r := range []struct {
		op             string
		accord, skopeo time.Duration
	}{{"push", accordPush, skopeoPush}, {"pull", accordPull, skopeoPull}} {
		a, s := mb/r.accord.Seconds(), mb/r.skopeo.Seconds()
		fmt.Printf("bench models %s %d MiB: accord %.0f MB/s (%.2fs), skopeo %.0f MB/s (%.2fs), ratio accord/skopeo %.2f\n",
			r.op, mib, a, r.accord.Seconds(), s, r.skopeo.Seconds(), a/s)
	}
}

func timed(t *testing.T, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	if err := f(); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

// benchModel writes size bytes of random weights and a config file.
func benchModel(t *testing.T, dir string, size int64) *models.Manifest {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"bench": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := models.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return manifest("bench/accord", "1.0.0", models.ChangeBehaviour, files)
}

// ociLayout writes an OCI image layout holding the model's ModelPack
// artifact, its weights hard-linked from src, for skopeo to push.
func ociLayout(t *testing.T, layout, src string, m *models.Manifest) {
	t.Helper()
	art, err := buildArtifact(m)
	if err != nil {
		t.Fatal(err)
	}
	blobs := filepath.Join(layout, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(d ocispec.Descriptor, b []byte) {
		if err := os.WriteFile(filepath.Join(blobs, d.Digest.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range art.manifest.Layers {
		if err := os.Link(filepath.Join(src, l.Annotations[models.AnnotationFilepath]), filepath.Join(blobs, l.Digest.Encoded())); err != nil {
			t.Fatal(err)
		}
	}
	put(art.manifest.Config, art.config)
	put(art.desc, art.raw)
	desc := art.desc
	desc.Annotations = map[string]string{ocispec.AnnotationRefName: m.Version}
	index, err := json.Marshal(ocispec.Index{Versioned: art.manifest.Versioned, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layout, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layout, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
}
