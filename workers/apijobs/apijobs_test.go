package apijobs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/policies"
)

// TestUploadsStandAlone: an uploaded spec with extends or imports is a
// 400 through the API, and no file of the server is read to find that out.
func TestUploadsStandAlone(t *testing.T) {
	ctx := context.Background()
	store, err := policies.OpenStore(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.PutTenant(ctx, policies.Tenant{Name: "demo", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	tok, err := store.CreateToken(ctx, policies.Principal{Tenant: "demo", Role: policies.RoleTenant})
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	srv := httptest.NewServer(apiserver.New(&Jobs{Home: home}, store))
	defer srv.Close()
	secret := filepath.Join(t.TempDir(), "base.md")
	if err := os.WriteFile(secret, []byte("---\ntenant: demo\n---\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{
		"---\nextends: " + secret + "\n---\n",
		"---\nextends: ../../keys/worker.key\n---\n",
		"---\nname: x\ntenant: demo\nimports:\n  base: {path: " + secret + "}\n---\n",
	} {
		body, _ := json.Marshal(apiserver.SubmitRequest{Name: "up.md", Document: doc})
		req, _ := http.NewRequest("POST", srv.URL+"/v1/jobs", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error, "cannot use extends or imports") ||
			!strings.Contains(e.Error, "up.md:") || strings.Contains(e.Error, home) {
			t.Errorf("%q: %d %q, want 400 naming the key's position", doc, resp.StatusCode, e.Error)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "uploads")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused upload was stored: %v", err)
	}
	// Submit refuses it too, for callers that skip SpecTenant.
	_, err = (&Jobs{Home: home}).Submit(ctx, apiserver.SubmitRequest{Name: "up.md", Document: "---\nextends: x.md\n---\n"})
	if !errors.Is(err, apiserver.ErrBadRequest) {
		t.Errorf("Submit of a composed spec: %v, want ErrBadRequest", err)
	}
}

func TestRelativeHomeRefused(t *testing.T) {
	a := &Jobs{Home: "relative"}
	if _, err := a.store("job-1", "s.md", []byte("x"), nil); !errors.Is(err, ErrHome) {
		t.Fatalf("store under a relative home: %v, want ErrHome", err)
	}
	if _, err := a.SweepUploads(context.Background(), time.Hour); !errors.Is(err, ErrHome) {
		t.Fatalf("sweep under a relative home: %v, want ErrHome", err)
	}
	if _, err := os.Stat("relative"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a relative home was created in the working directory")
	}
}

func TestSweepUploads(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	now := time.Now()
	closed := map[string]time.Time{"job-old": now.Add(-48 * time.Hour), "job-recent": now.Add(-time.Hour)}
	a := &Jobs{Home: home, closed: func(_ context.Context, id string) (time.Time, bool, error) {
		if id == "job-broken" {
			return time.Time{}, false, errors.New("temporal unavailable")
		}
		if id == "job-gone" || id == "job-starting" {
			return time.Time{}, true, nil
		}
		at, done := closed[id]
		return at, done, nil
	}}
	old := now.Add(-72 * time.Hour)
	upload := func(job, doc string) string {
		p, err := a.store(job, "s.md", []byte(doc), []byte("sig"))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Dir(p)
		for _, f := range []string{filepath.Join(dir, markers, job), dir} {
			if err := os.Chtimes(f, old, old); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	finished := upload("job-old", "a")
	running := upload("job-running", "b")
	recent := upload("job-recent", "c")
	broken := upload("job-broken", "d")
	gone := upload("job-gone", "e")
	shared := upload("job-old", "f")
	if _, err := a.store("job-running", "s.md", []byte("f"), nil); err != nil { // the same document, again
		t.Fatal(err)
	}
	starting, err := a.store("job-starting", "s.md", []byte("g"), nil) // not yet known to Temporal
	if err != nil {
		t.Fatal(err)
	}
	starting = filepath.Dir(starting)
	if err := os.Chtimes(starting, old, old); err != nil {
		t.Fatal(err)
	}
	n, err := a.SweepUploads(ctx, 24*time.Hour)
	if err == nil || !strings.Contains(err.Error(), "temporal unavailable") {
		t.Errorf("sweep error %v, want the unchecked job's", err)
	}
	if n != 2 {
		t.Errorf("removed %d uploads, want 2", n)
	}
	for dir, want := range map[string]bool{finished: false, gone: false, running: true, recent: true, broken: true, shared: true, starting: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s kept=%v, want %v", filepath.Base(dir)[:8], err == nil, want)
		}
	}
	if _, err := os.Stat(filepath.Join(shared, markers, "job-old")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a finished job's marker stayed in a shared upload: %v", err)
	}
}

// TestUploadsMountNoHostPaths: the attack, a task whose inputs are
// the worker's key and the containerd daemon's directory (or whose image
// archive is a host file), is refused at upload with nothing stored.
func TestUploadsMountNoHostPaths(t *testing.T) {
	home := t.TempDir()
	tasks := map[string]string{
		"relative": "  command: [cat]\n  image: registry.example/x@sha256:" + strings.Repeat("a", 64) + "\n  inputs: [{name: k, path: ../../keys/worker.key}, {name: d, path: ../../containerd/daemon}]\n",
		"absolute": "  command: [cat]\n  image: registry.example/x@sha256:" + strings.Repeat("a", 64) + "\n  inputs: [{name: k, path: /etc/shadow}]\n",
		// An image archive is a host path read by the worker's runtime.
		"archive": "  command: [cat]\n  image: oci-archive:../../keys/worker.key\n",
	}
	for name, task := range tasks {
		doc := "---\naccord: v1\nname: steal\nversion: 1.0.0\ntenant: demo\n---\n\n## Tasks\n\n```yaml\nsteal:\n" + task +
			"```\n\n## Budget\n\n```yaml\nmax_price: 100\ncurrency: USD\n```\n"
		_, err := (&Jobs{Home: home}).Submit(context.Background(), apiserver.SubmitRequest{Name: "steal.md", Document: doc})
		if !errors.Is(err, apiserver.ErrInvalid) || !strings.Contains(err.Error(), "host paths") ||
			!strings.Contains(err.Error(), "accord data push") {
			t.Errorf("%s: %v, want the upload refused for naming host paths, pointing at accord data push", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "uploads")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused upload was stored: %v", err)
	}
}
