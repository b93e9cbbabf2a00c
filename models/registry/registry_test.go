package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/registry/registrytest"
	mpschema "github.com/modelpack/model-spec/schema"
	mp "github.com/modelpack/model-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := New(addr+"/accord", Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeModel writes files into a new directory and returns it with the
// scanned file list.
func writeModel(t *testing.T, files map[string]string) (string, []models.File) {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := models.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, fs
}

func manifest(name, version string, change models.ChangeClass, files []models.File) *models.Manifest {
	return &models.Manifest{
		SchemaVersion: models.SchemaVersion,
		Owner:         "acme",
		Name:          name,
		Version:       version,
		Change:        change,
		Description:   "test model",
		Tags: []models.Tag{
			{Tag: "task:text-classification", AuthorConfidence: 1},
			{Tag: "framework:pytorch", AuthorConfidence: 1},
			{Tag: "modality:text", AuthorConfidence: 1},
		},
		License:   "Apache-2.0",
		Economics: models.Economics{Currency: "EUR", PerInference: 1},
		Files:     files,
	}
}

var baseFiles = map[string]string{
	"model.safetensors":    strings.Repeat("weights!", 4096),
	"config.json":          `{"hidden": 8}`,
	"README.md":            "# test\n",
	"tokenizer/vocab.json": `{"a": 1}`,
	"empty.txt":            "",
}

func TestPushInspectPullRoundTrip(t *testing.T) {
	srv := registrytest.StartServer(t)
	c := newClient(t, srv.Addr)
	ctx := testCtx(t)
	dir, files := writeModel(t, baseFiles)
	m := manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files)
	bench := Attachment{ArtifactType: "application/vnd.accord.benchmark.v1+json", Data: []byte(`{"f1":0.9}`),
		Annotations: map[string]string{"dev.accord.metric": "f1"}}
	p, err := c.Push(ctx, dir, m, bench)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	if p.Ref != "acme/clf@1.0.0" || models.CheckDigest(p.Digest) != nil || p.Size <= 0 || p.Bytes != total {
		t.Errorf("pushed = %+v", p)
	}

	for _, ref := range []string{"acme/clf@1.0.0", "acme/clf@" + p.Digest} {
		got, err := c.Inspect(ctx, ref)
		if err != nil {
			t.Fatalf("inspect %s: %v", ref, err)
		}
		if got.Digest != p.Digest || got.Ref != p.Ref || len(got.Layers) != len(files) {
			t.Errorf("inspect %s = %+v", ref, got)
		}
		gm, _ := json.Marshal(got.Manifest)
		wm, _ := json.Marshal(m)
		if !bytes.Equal(gm, wm) {
			t.Errorf("Accord manifest changed in transit:\n%s\n%s", gm, wm)
		}
		if len(got.Attachments) != 1 || got.Attachments[0].ArtifactType != bench.ArtifactType ||
			got.Attachments[0].MediaType != bench.ArtifactType || string(got.Attachments[0].Data) != string(bench.Data) ||
			got.Attachments[0].Annotations["dev.accord.metric"] != "f1" {
			t.Errorf("attachments = %+v", got.Attachments)
		}
	}

	dest := filepath.Join(t.TempDir(), "pulled")
	if _, err := c.Pull(ctx, "acme/clf@1.0.0", dest); err != nil {
		t.Fatal(err)
	}
	for p, body := range baseFiles {
		b, err := os.ReadFile(filepath.Join(dest, filepath.FromSlash(p)))
		if err != nil || string(b) != body {
			t.Errorf("%s: pulled %d bytes (%v), want %d", p, len(b), err, len(body))
		}
	}
	pulled, err := models.ScanDir(dest)
	if err != nil || len(pulled) != len(files) {
		t.Errorf("pulled dir: %d files, %v", len(pulled), err)
	}
	if _, err := c.Pull(ctx, "acme/clf@1.0.0", dest); err == nil {
		t.Error("pull into a non-empty directory succeeded")
	}

	if vs, err := c.Versions(ctx, "acme/clf"); err != nil || len(vs) != 1 || vs[0].String() != "1.0.0" {
		t.Errorf("versions = %v, %v (the referrers tag must not count)", vs, err)
	}
	if names, err := c.Names(ctx); err != nil || len(names) != 1 || names[0] != "acme/clf" {
		t.Errorf("names = %v, %v", names, err)
	}
	other, err := New(srv.Addr+"/elsewhere", Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	if names, err := other.Names(ctx); err != nil || len(names) != 0 {
		t.Errorf("names under another prefix = %v, %v", names, err)
	}
	if _, err := c.Inspect(ctx, "acme/missing@1.0.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("inspect of a missing model: %v", err)
	}
	if _, err := c.Versions(ctx, "acme/missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("versions of a missing model: %v", err)
	}
}

// TestModelPackLayout reads the pushed artifact back raw, as a ModelPack
// tool would, and checks it with model-spec's own names and validator.
func TestModelPackLayout(t *testing.T) {
	addr := registrytest.Start(t)
	c := newClient(t, addr)
	ctx := testCtx(t)
	dir, files := writeModel(t, baseFiles)
	p, err := c.Push(ctx, dir, manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files))
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := c.repo("acme/clf")
	desc, err := repo.Resolve(ctx, "1.0.0")
	if err != nil || desc.Digest.String() != p.Digest || desc.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("resolve: %+v, %v", desc, err)
	}
	raw, err := fetchBounded(ctx, repo.Manifests(), desc, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	if man.ArtifactType != mp.ArtifactTypeModelManifest || man.Config.MediaType != mp.MediaTypeModelConfig {
		t.Errorf("artifactType %s, config %s", man.ArtifactType, man.Config.MediaType)
	}
	if _, ok := man.Annotations[ocispec.AnnotationCreated]; ok {
		t.Error("manifest carries a creation time: re-pushes would not be idempotent")
	}
	cfg, err := fetchBounded(ctx, repo.Blobs(), man.Config, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := mpschema.ValidatorMediaTypeModelConfig.Validate(bytes.NewReader(cfg)); err != nil {
		t.Errorf("model-spec rejects the stored config: %v\n%s", err, cfg)
	}
	var mc mp.Model
	if err := json.Unmarshal(cfg, &mc); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{mp.MediaTypeModelWeightRaw: true, mp.MediaTypeModelWeightConfigRaw: true,
		mp.MediaTypeModelDocRaw: true, mp.MediaTypeModelCodeRaw: true, mp.MediaTypeModelDatasetRaw: true}
	for i, l := range man.Layers {
		if !allowed[l.MediaType] || l.Annotations[mp.AnnotationFilepath] == "" || mc.ModelFS.DiffIDs[i] != l.Digest {
			t.Errorf("layer %d = %+v (diffId %s)", i, l, mc.ModelFS.DiffIDs[i])
		}
	}
	if mc.Descriptor.Name != "acme/clf" || mc.Descriptor.Version != "1.0.0" {
		t.Errorf("descriptor = %+v", mc.Descriptor)
	}
}

func TestPushIdempotentAndExists(t *testing.T) {
	addr := registrytest.Start(t)
	c := newClient(t, addr)
	ctx := testCtx(t)
	dir, files := writeModel(t, baseFiles)
	m := manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files)
	p1, err := c.Push(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	// A retry that also carries an attachment the first push lacked:
	// success, same digest, and the attachment is added.
	sig := Attachment{ArtifactType: "application/vnd.dev.sigstore.bundle.v0.3+json", Data: []byte("sig")}
	p2, err := New(addr+"/accord", Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	again, err := p2.Push(ctx, dir, m, sig)
	if err != nil || again != p1 {
		t.Fatalf("re-push = %+v, %v; first %+v", again, err, p1)
	}
	got, err := c.Inspect(ctx, "acme/clf@1.0.0")
	if err != nil || len(got.Attachments) != 1 || string(got.Attachments[0].Data) != "sig" {
		t.Fatalf("after re-push: %+v, %v", got, err)
	}
	if _, err := c.Push(ctx, dir, m, sig); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Inspect(ctx, "acme/clf@1.0.0"); len(got.Attachments) != 1 {
		t.Errorf("third push duplicated attachments: %d", len(got.Attachments))
	}

	// Same version, other content.
	changed := map[string]string{}
	for k, v := range baseFiles {
		changed[k] = v
	}
	changed["README.md"] = "# other\n"
	dir2, files2 := writeModel(t, changed)
	if _, err := c.Push(ctx, dir2, manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files2)); !errors.Is(err, ErrExists) {
		t.Errorf("other content under 1.0.0: %v, want ErrExists", err)
	}
	// Same files, other metadata: also other content.
	m3 := manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files)
	m3.Description = "changed"
	if _, err := c.Push(ctx, dir, m3); !errors.Is(err, ErrExists) {
		t.Errorf("other description under 1.0.0: %v, want ErrExists", err)
	}
}

func TestPushChecks(t *testing.T) {
	addr := registrytest.Start(t)
	c := newClient(t, addr)
	ctx := testCtx(t)
	dir, files := writeModel(t, baseFiles)
	m := manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files)
	m.Lineage.Datasets = []string{"sha256:" + strings.Repeat("a", 64)}

	// The directory must hold exactly the manifest's files.
	if err := os.WriteFile(filepath.Join(dir, "extra.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(ctx, dir, m); !errors.Is(err, models.ErrVerify) || !strings.Contains(err.Error(), "extra.md") {
		t.Errorf("extra file: %v", err)
	}
	os.Remove(filepath.Join(dir, "extra.md"))
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("# tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(ctx, dir, m); !errors.Is(err, models.ErrVerify) || !strings.Contains(err.Error(), "README.md") {
		t.Errorf("changed file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(baseFiles["README.md"]), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := *m
	bad.Version = "01.0.0"
	if _, err := c.Push(ctx, dir, &bad); !errors.Is(err, models.ErrInvalid) {
		t.Errorf("invalid manifest: %v", err)
	}
	if _, err := c.Push(ctx, dir, m); err != nil {
		t.Fatal(err)
	}

	// A data change declared patch is refused against 1.0.0's manifest.
	next := manifest("acme/clf", "1.0.1", models.ChangePatch, files)
	next.Lineage.Datasets = []string{"sha256:" + strings.Repeat("b", 64)}
	if _, err := c.Push(ctx, dir, next); !errors.Is(err, models.ErrChange) {
		t.Errorf("data change declared patch: %v, want ErrChange", err)
	}
	// Declared data with a patch bump: refused too (needs a minor bump).
	next.Change = models.ChangeData
	if _, err := c.Push(ctx, dir, next); !errors.Is(err, models.ErrChange) {
		t.Errorf("data change with a patch bump: %v, want ErrChange", err)
	}
	next.Version = "1.1.0"
	if _, err := c.Push(ctx, dir, next); err != nil {
		t.Errorf("data change 1.0.0 → 1.1.0: %v", err)
	}
	// A backport 1.0.1 is checked against 1.0.0, the highest lower version.
	doc := manifest("acme/clf", "1.0.1", models.ChangePatch, files)
	doc.Lineage.Datasets = m.Lineage.Datasets
	doc.Description = "doc fix"
	if _, err := c.Push(ctx, dir, doc); err != nil {
		t.Errorf("patch 1.0.1 after 1.1.0: %v", err)
	}
	if vs, err := c.Versions(ctx, "acme/clf"); err != nil || fmt.Sprint(vs) != "[1.0.0 1.0.1 1.1.0]" {
		t.Errorf("versions = %v, %v", vs, err)
	}
	if _, err := c.Push(ctx, t.TempDir(), manifest("acme/other", "1.0.0", models.ChangeBehaviour, files)); !errors.Is(err, models.ErrVerify) {
		t.Errorf("empty directory: %v", err)
	}
}

func TestResolve(t *testing.T) {
	addr := registrytest.Start(t)
	c := newClient(t, addr)
	ctx := testCtx(t)
	digests := map[string]string{}
	for i, v := range []string{"0.9.0", "1.0.0", "1.0.1", "1.1.0", "1.1.3", "2.0.0"} {
		fs := map[string]string{"model.safetensors": "w", "README.md": fmt.Sprintf("doc %d", i)}
		dir, files := writeModel(t, fs)
		p, err := c.Push(ctx, dir, manifest("acme/res", v, models.ChangePatch, files))
		if err != nil {
			t.Fatal(err)
		}
		digests[v] = p.Digest
	}
	for _, tc := range []struct{ con, want string }{
		{"^1.0", "1.1.3"}, {"^1.0.1", "1.1.3"}, {"~1.0", "1.0.1"}, {"~1.1.1", "1.1.3"},
		{"1.0.0", "1.0.0"}, {"^0.9", "0.9.0"}, {"^2", ""}, {"~2.0", "2.0.0"}, {"^3.0", ""}, {"1.2.0", ""},
	} {
		v, d, err := c.Resolve(ctx, "acme/res", tc.con)
		switch {
		case tc.want == "" && tc.con == "^2":
			if err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want a constraint syntax error", tc.con, err)
			}
		case tc.want == "":
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %s %v, want ErrNotFound", tc.con, v, err)
			}
		case err != nil || v != tc.want || d != digests[tc.want]:
			t.Errorf("%s: %s %s %v, want %s %s", tc.con, v, d, err, tc.want, digests[tc.want])
		}
	}
	if _, _, err := c.Resolve(ctx, "Acme/Bad", "^1.0"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
}

// TestTamperedBlob: a registry that serves other bytes under a blob's
// digest, or a manifest under the tag whose layers disagree with the
// Accord manifest, makes Pull fail.
func TestTamperedBlob(t *testing.T) {
	srv := registrytest.StartServer(t)
	c := newClient(t, srv.Addr)
	ctx := testCtx(t)
	dir, files := writeModel(t, baseFiles)
	m := manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files)
	if _, err := c.Push(ctx, dir, m); err != nil {
		t.Fatal(err)
	}

	// 1. Overwrite the stored weights blob on the registry's disk.
	var weights models.File
	for _, f := range files {
		if f.Path == "model.safetensors" {
			weights = f
		}
	}
	hex := strings.TrimPrefix(weights.Digest, "sha256:")
	blob := filepath.Join(srv.Dir, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
	orig, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	evil := bytes.Clone(orig)
	evil[100] ^= 1
	if err := os.WriteFile(blob, evil, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if _, err := c.Pull(ctx, "acme/clf@1.0.0", dest); !errors.Is(err, models.ErrVerify) {
		t.Errorf("pull of a flipped blob: %v, want ErrVerify", err)
	}
	if _, err := os.Stat(filepath.Join(dest, "model.safetensors")); !os.IsNotExist(err) {
		t.Errorf("the bad file was left behind: %v", err)
	}
	if err := os.WriteFile(blob, orig, 0o644); err != nil {
		t.Fatal(err)
	}

	// 2. Put a manifest with another weights blob under the tag, and copy
	// the Accord manifest onto it as a referrer.
	repo, _ := c.repo("acme/clf")
	art, err := buildArtifact(m)
	if err != nil {
		t.Fatal(err)
	}
	other := []byte(strings.Repeat("evil", 100))
	for i, l := range art.manifest.Layers {
		if l.Annotations[models.AnnotationFilepath] == "model.safetensors" {
			d := descriptorOf(l.MediaType, other)
			art.manifest.Layers[i].Digest, art.manifest.Layers[i].Size = d.Digest, d.Size
			if err := pushBytes(ctx, repo.Blobs(), art.manifest.Layers[i], other); err != nil {
				t.Fatal(err)
			}
		}
	}
	pushHandMade(t, c, "acme/clf", "1.0.0", art.manifest, m)
	if _, err := c.Pull(ctx, "acme/clf@1.0.0", t.TempDir()); !errors.Is(err, models.ErrVerify) {
		t.Errorf("pull of a manifest that disagrees with the Accord manifest: %v, want ErrVerify", err)
	}
}

// pushHandMade pushes man under tag with am attached as its Accord
// manifest, bypassing Push's checks, as a hostile publisher would.
func pushHandMade(t *testing.T, c *Client, name, tag string, man ocispec.Manifest, am *models.Manifest) {
	t.Helper()
	ctx := testCtx(t)
	repo, err := c.repo(name)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	desc := descriptorOf(ocispec.MediaTypeImageManifest, raw)
	if err := repo.PushReference(ctx, desc, bytes.NewReader(raw), tag); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(am)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.attach(ctx, repo, name, desc, Attachment{ArtifactType: AccordManifestType, MediaType: AccordManifestType, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func TestPullRefusesPathTraversal(t *testing.T) {
	addr := registrytest.Start(t)
	c := newClient(t, addr)
	ctx := testCtx(t)
	outside := t.TempDir()
	dest := filepath.Join(outside, "dest")
	dir, files := writeModel(t, map[string]string{"evil.bin": "payload"})
	m := manifest("acme/evil", "1.0.0", models.ChangeBehaviour, files)
	art, err := buildArtifact(m)
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := c.repo("acme/evil")
	if err := uploadFiles(ctx, repo, dir, art.manifest.Layers); err != nil {
		t.Fatal(err)
	}
	if err := pushBytes(ctx, repo.Blobs(), art.manifest.Config, art.config); err != nil {
		t.Fatal(err)
	}
	art.manifest.Layers[0].Annotations = map[string]string{models.AnnotationFilepath: "../evil.bin"}
	pushHandMade(t, c, "acme/evil", "1.0.0", art.manifest, m)
	if _, err := c.Pull(ctx, "acme/evil@1.0.0", dest); err == nil {
		t.Fatal("pull of a ../ filepath annotation succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "evil.bin")); !os.IsNotExist(err) {
		t.Errorf("a file was written outside dest: %v", err)
	}

	// Pull's own guard, for a model whose layers passed Inspect.
	for _, p := range []string{"../evil.bin", "/etc/evil", "a/../../evil", "a\\b"} {
		bad := &Model{Manifest: m, Layers: []ocispec.Descriptor{{
			MediaType: mp.MediaTypeModelWeightRaw, Digest: art.manifest.Layers[0].Digest, Size: 7,
			Annotations: map[string]string{models.AnnotationFilepath: p}}}}
		if err := c.pull(ctx, bad, t.TempDir()); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "evil.bin")); !os.IsNotExist(err) {
		t.Errorf("a file was written outside dest: %v", err)
	}
}

// TestConcurrentAttach: two clients (no shared lock, as two processes)
// attach to one subject at once; every attachment survives the
// read-modify-write of the fallback referrers index.
func TestConcurrentAttach(t *testing.T) {
	addr := registrytest.Start(t)
	ctx := testCtx(t)
	c1, c2 := newClient(t, addr), newClient(t, addr)
	dir, files := writeModel(t, baseFiles)
	p, err := c1.Push(ctx, dir, manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files))
	if err != nil {
		t.Fatal(err)
	}
	const each = 4
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for i, c := range []*Client{c1, c2} {
		for j := 0; j < each; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := Attachment{ArtifactType: "application/vnd.accord.benchmark.v1+json", Data: []byte(fmt.Sprintf("client %d result %d", i, j))}
				errs <- c.Attach(ctx, "acme/clf", p.Digest, a)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got, err := newClient(t, addr).Inspect(ctx, "acme/clf@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range got.Attachments {
		seen[string(a.Data)] = true
	}
	if len(seen) != 2*each {
		t.Errorf("%d of %d attachments survived: %v", len(seen), 2*each, seen)
	}
	// Attach is idempotent.
	if err := c1.Attach(ctx, "acme/clf", p.Digest, Attachment{ArtifactType: "application/vnd.accord.benchmark.v1+json", Data: []byte("client 0 result 0")}); err != nil {
		t.Fatal(err)
	}
	if again, _ := c1.Inspect(ctx, "acme/clf@1.0.0"); len(again.Attachments) != 2*each {
		t.Errorf("re-attach changed the count to %d", len(again.Attachments))
	}
}

func TestAttachRejects(t *testing.T) {
	addr := registrytest.Start(t)
	c := newClient(t, addr)
	ctx := testCtx(t)
	dir, files := writeModel(t, baseFiles)
	p, err := c.Push(ctx, dir, manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []Attachment{
		{ArtifactType: AccordManifestType, Data: []byte("{}")},
		{ArtifactType: "not a media type", Data: []byte("x")},
		{ArtifactType: "application/x", MediaType: "bad", Data: []byte("x")},
		{ArtifactType: "application/x", Data: make([]byte, DefaultMaxAttachmentBytes+1)},
		{ArtifactType: "application/x", Annotations: map[string]string{"": "x"}},
	} {
		if err := c.Attach(ctx, "acme/clf", p.Digest, a); !errors.Is(err, ErrInvalid) {
			t.Errorf("attach %.40q: %v, want ErrInvalid", a.ArtifactType, err)
		}
	}
	if err := c.Attach(ctx, "acme/clf", "sha256:"+strings.Repeat("0", 64), Attachment{ArtifactType: "application/x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("attach to a missing subject: %v", err)
	}
	if err := c.Attach(ctx, "../etc", p.Digest, Attachment{ArtifactType: "application/x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("attach to a bad name: %v", err)
	}
}

func TestNewAndParseRef(t *testing.T) {
	for _, bad := range []string{"", "host:port:x", "127.0.0.1:5000/UPPER", "127.0.0.1:5000/a//b"} {
		if _, err := New(bad, Options{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%q): %v", bad, err)
		}
	}
	for _, bad := range []string{"acme", "acme@", "acme@latest", "ACME@1.0.0", "acme@sha256:abc", "acme@1.0", "../x@1.0.0"} {
		if _, _, err := parseRef(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseRef(%q): %v", bad, err)
		}
	}
}

func TestBasicAuth(t *testing.T) {
	srv := registrytest.StartWithAuth(t, "alice", "s3cret")
	ctx := testCtx(t)
	dir, files := writeModel(t, baseFiles)
	m := manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files)
	anon := newClient(t, srv.Addr)
	if _, err := anon.Push(ctx, dir, m); err == nil {
		t.Error("anonymous push succeeded")
	}
	wrong, _ := New(srv.Addr+"/accord", Options{PlainHTTP: true, Username: "alice", Password: "nope"})
	if _, err := wrong.Names(ctx); err == nil {
		t.Error("wrong password listed names")
	}
	c, err := New(srv.Addr+"/accord", Options{PlainHTTP: true, Username: "alice", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Push(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Pull(ctx, "acme/clf@1.0.0", t.TempDir()); err != nil || got.Digest != p.Digest {
		t.Fatalf("pull with credentials: %v", err)
	}
	if names, err := c.Names(ctx); err != nil || len(names) != 1 {
		t.Errorf("names = %v, %v", names, err)
	}
}

// TestBounds: a manifest over the client's bound is refused before it is
// read in full.
func TestBounds(t *testing.T) {
	addr := registrytest.Start(t)
	ctx := testCtx(t)
	dir, files := writeModel(t, baseFiles)
	if _, err := newClient(t, addr).Push(ctx, dir, manifest("acme/clf", "1.0.0", models.ChangeBehaviour, files)); err != nil {
		t.Fatal(err)
	}
	small, err := New(addr+"/accord", Options{PlainHTTP: true, MaxManifestBytes: 256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.Inspect(ctx, "acme/clf@1.0.0"); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized manifest: %v, want ErrInvalid", err)
	}
	tiny, err := New(addr+"/accord", Options{PlainHTTP: true, MaxAttachmentBytes: 4})
	if err != nil {
		t.Fatal(err)
	}
	_, d, err := tiny.Resolve(ctx, "acme/clf", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := newClient(t, addr).Attach(ctx, "acme/clf", d, Attachment{ArtifactType: "application/x", Data: []byte("0123456789")}); err != nil {
		t.Fatal(err)
	}
	if _, err := tiny.Inspect(ctx, "acme/clf@1.0.0"); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized attachment: %v, want ErrInvalid", err)
	}
}
