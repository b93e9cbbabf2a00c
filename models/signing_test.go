package models

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/provenance"
)

// modelDir writes a small model to a temporary directory and returns it
// with a valid manifest for its files.
func modelDir(t *testing.T) (string, *Manifest) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"model.safetensors": strings.Repeat("w", 4096),
		"config.json":       `{"hidden":8}`,
		"README.md":         "# model\n",
		"src/train.py":      "print('hi')\n",
	}
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	scanned, err := ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := validManifest()
	m.Files = scanned
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func testKey(t *testing.T, alg string) *provenance.Key {
	t.Helper()
	k, err := provenance.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignatureStatementShape(t *testing.T) {
	_, m := modelDir(t)
	b, err := SignatureStatement(m)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st["_type"] != "https://in-toto.io/Statement/v1" || st["predicateType"] != "https://model_signing/signature/v1.0" {
		t.Fatalf("statement header: %s", b)
	}
	pred := st["predicate"].(map[string]any)
	ser := pred["serialization"].(map[string]any)
	if ser["method"] != "files" || ser["hash_type"] != "sha256" || ser["allow_symlinks"] != false {
		t.Errorf("serialization = %v", ser)
	}
	res := pred["resources"].([]any)
	if len(res) != 4 {
		t.Fatalf("%d resources", len(res))
	}
	// The subject digest is sha256 over the raw resource digests in order
	// (model-signing v1.0), computed independently here.
	h := sha256.New()
	for i, r := range res {
		r := r.(map[string]any)
		if r["algorithm"] != "sha256" || r["name"] != ResourcesOf(m)[i].Name {
			t.Errorf("resource %d = %v", i, r)
		}
		raw, _ := hex.DecodeString(r["digest"].(string))
		h.Write(raw)
	}
	sub := st["subject"].([]any)[0].(map[string]any)
	if sub["name"] != m.Ref() || sub["digest"].(map[string]any)["sha256"] != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("subject = %v", sub)
	}
}

func TestSignVerifyDir(t *testing.T) {
	ctx := context.Background()
	for _, alg := range []string{provenance.AlgECDSAP256, provenance.AlgEd25519} {
		dir, m := modelDir(t)
		key := testKey(t, alg)
		env, err := Sign(ctx, key, m)
		if err != nil {
			t.Fatal(err)
		}
		v, err := VerifyDir(ctx, env, dir, key.Public())
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if v.Name != m.Ref() || v.KeyID != key.ID() || len(v.Resources) != 4 {
			t.Errorf("verified = %+v (key %s)", v, key.ID())
		}
		if err := v.MatchManifest(m); err != nil {
			t.Errorf("MatchManifest: %v", err)
		}
	}
}

func TestVerifyDirRejects(t *testing.T) {
	ctx := context.Background()
	key := testKey(t, "")
	other := testKey(t, "")
	cases := []struct {
		name    string
		edit    func(t *testing.T, dir string)
		keys    func() []crypto.PublicKey
		wantErr error
	}{
		{"flipped byte in weights", func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, "model.safetensors"), 2048) }, nil, ErrVerify},
		{"flipped byte in config", func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, "config.json"), 0) }, nil, ErrVerify},
		{"flipped byte in code", func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, "src/train.py"), 5) }, nil, ErrVerify},
		{"missing file", func(t *testing.T, dir string) { mustRemove(t, filepath.Join(dir, "README.md")) }, nil, ErrVerify},
		{"extra file", func(t *testing.T, dir string) { mustWrite(t, filepath.Join(dir, "src/backdoor.py"), "x") }, nil, ErrVerify},
		{"renamed file", func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "README.md"), filepath.Join(dir, "README.txt")); err != nil {
				t.Fatal(err)
			}
		}, nil, ErrVerify},
		{"symlink", func(t *testing.T, dir string) {
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
				t.Fatal(err)
			}
		}, nil, bounded.ErrNotRegular},
		{"fifo", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
				t.Skip("mkfifo:", err)
			}
		}, nil, bounded.ErrNotRegular},
		{"wrong signer", func(t *testing.T, dir string) {}, func() []crypto.PublicKey { return []crypto.PublicKey{other.Public()} }, provenance.ErrSignature},
		{"no trusted key", func(t *testing.T, dir string) {}, func() []crypto.PublicKey { return nil }, provenance.ErrUntrusted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, m := modelDir(t)
			env, err := Sign(ctx, key, m)
			if err != nil {
				t.Fatal(err)
			}
			c.edit(t, dir)
			var err2 error
			if c.keys != nil {
				_, err2 = VerifyDir(ctx, env, dir, c.keys()...)
			} else {
				_, err2 = VerifyDir(ctx, env, dir, key.Public())
			}
			if !errors.Is(err2, c.wantErr) {
				t.Errorf("err = %v, want %v", err2, c.wantErr)
			}
		})
	}
}

// TestVerifyRejectsForgedStatements signs malformed statements with the
// trusted key: a valid signature over a bad statement still fails.
func TestVerifyRejectsForgedStatements(t *testing.T) {
	ctx := context.Background()
	key := testKey(t, "")
	_, m := modelDir(t)
	digests := map[string]string{}
	for _, f := range m.Files {
		digests[f.Path] = f.Digest
	}
	good, err := SignatureStatement(m)
	if err != nil {
		t.Fatal(err)
	}
	edits := map[string]func(st map[string]any){
		"wrong predicate type": func(st map[string]any) { st["predicateType"] = "https://model_signing/Digests/v0.1" },
		"wrong statement type": func(st map[string]any) { st["_type"] = "https://in-toto.io/Statement/v0.1" },
		"two subjects":         func(st map[string]any) { st["subject"] = append(st["subject"].([]any), st["subject"].([]any)[0]) },
		"wrong root digest": func(st map[string]any) {
			st["subject"].([]any)[0].(map[string]any)["digest"] = map[string]any{"sha256": strings.Repeat("0", 64)}
		},
		"symlinks allowed": func(st map[string]any) { pred(st)["serialization"].(map[string]any)["allow_symlinks"] = true },
		"shards":           func(st map[string]any) { pred(st)["serialization"].(map[string]any)["method"] = "shards" },
		"ignored paths": func(st map[string]any) {
			pred(st)["serialization"].(map[string]any)["ignore_paths"] = []any{"backdoor.py"}
		},
		"dotdot resource": func(st map[string]any) { res(st)[0].(map[string]any)["name"] = "../README.md" },
		"unsorted resources": func(st map[string]any) {
			r := res(st)
			r[0], r[1] = r[1], r[0]
		},
		"duplicate resource": func(st map[string]any) { r := res(st); r[1] = r[0] },
		"md5 resource":       func(st map[string]any) { res(st)[0].(map[string]any)["algorithm"] = "md5" },
		"no resources":       func(st map[string]any) { pred(st)["resources"] = []any{} },
	}
	for name, edit := range edits {
		var st map[string]any
		if err := json.Unmarshal(good, &st); err != nil {
			t.Fatal(err)
		}
		edit(st)
		b, _ := json.Marshal(st)
		env, err := provenance.SignEnvelope(ctx, key, provenance.PayloadTypeInToto, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyDigests(ctx, env, digests, key.Public()); !errors.Is(err, ErrVerify) {
			t.Errorf("%s: err = %v, want ErrVerify", name, err)
		}
	}
	env, _ := provenance.SignEnvelope(ctx, key, "application/json", good)
	if _, err := VerifyDigests(ctx, env, digests, key.Public()); !errors.Is(err, ErrVerify) {
		t.Errorf("wrong payload type: %v", err)
	}
	if _, err := VerifyDigests(ctx, make([]byte, MaxEnvelopeSize+1), digests, key.Public()); !errors.Is(err, ErrVerify) {
		t.Errorf("huge envelope: %v", err)
	}
}

func TestVerifyTamperedEnvelope(t *testing.T) {
	ctx := context.Background()
	key := testKey(t, "")
	_, m := modelDir(t)
	envB, err := Sign(ctx, key, m)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	_ = json.Unmarshal(envB, &env)
	payload, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
	payload = []byte(strings.Replace(string(payload), m.Ref(), "acme/legal-es-classifier@9.9.9", 1))
	env["payload"] = base64.StdEncoding.EncodeToString(payload)
	tampered, _ := json.Marshal(env)
	if _, err := VerifyDigests(ctx, tampered, nil, key.Public()); !errors.Is(err, provenance.ErrSignature) {
		t.Errorf("tampered payload: %v", err)
	}
}

func TestMatchManifest(t *testing.T) {
	ctx := context.Background()
	key := testKey(t, "")
	dir, m := modelDir(t)
	env, _ := Sign(ctx, key, m)
	v, err := VerifyDir(ctx, env, dir, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	other := *m
	other.Version = "1.3.0"
	if err := v.MatchManifest(&other); !errors.Is(err, ErrVerify) {
		t.Errorf("other version: %v", err)
	}
	changed := *m
	changed.Files = append([]File(nil), m.Files...)
	changed.Files[0].Digest = dg("x")
	if err := v.MatchManifest(&changed); !errors.Is(err, ErrVerify) {
		t.Errorf("changed file: %v", err)
	}
}

func TestScanDirOrderAndSize(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "a-c.txt"), "12345")
	if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, "a/b.txt"), "")
	fs, err := ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].Path != "a-c.txt" || fs[1].Path != "a/b.txt" || fs[0].Size != 5 {
		t.Errorf("ScanDir = %+v", fs)
	}
	sum := sha256.Sum256([]byte("12345"))
	if fs[0].Digest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("digest = %s", fs[0].Digest)
	}
}

func pred(st map[string]any) map[string]any { return st["predicate"].(map[string]any) }
func res(st map[string]any) []any           { return pred(st)["resources"].([]any) }

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x01
	mustWrite(t, path, string(b))
}

func mustWrite(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
