package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/artifacts"
)

// push posts body to /v1/data with a content type and decodes the answer.
func (f fixture) push(t *testing.T, token, query, ctype, body string) (int, DataResponse, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/data"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out DataResponse
	json.Unmarshal(b, &out)
	return resp.StatusCode, out, string(b)
}

func TestDataPush(t *testing.T) {
	f := setup(t)
	code, got, out := f.push(t, f.tokA, "", "application/octet-stream", "weights")
	want := DataResponse{Digest: artifacts.Digest([]byte("weights")), Size: 7, Kind: "file", Tenant: "a"}
	if code != http.StatusCreated || got != want {
		t.Fatalf("push: %d %s, want 201 %+v", code, out, want)
	}
	if ok, _ := f.data.Owns("a", want.Digest); !ok {
		t.Fatal("not granted to the token's tenant")
	}
	if ok, _ := f.data.Owns("b", want.Digest); ok {
		t.Fatal("granted to another tenant")
	}
	if code, _, out := f.push(t, f.tokB, "?tenant=a", "", "x"); code != http.StatusForbidden {
		t.Fatalf("b pushing for a: %d %s, want 403", code, out)
	}
	if code, got, out := f.push(t, f.admin, "?tenant=b", "", "y"); code != http.StatusCreated || got.Tenant != "b" {
		t.Fatalf("admin pushing for b: %d %s", code, out)
	}
	if code, _, out := f.push(t, f.admin, "?tenant=../b", "", "y"); code != http.StatusBadRequest {
		t.Fatalf("bad tenant: %d %s, want 400", code, out)
	}
}

func TestDataPushLimit(t *testing.T) {
	f := setup(t, WithMaxUpload(1024))
	f.api.maxData = 4096
	// The data route has its own limit, above the jobs' --max-upload.
	if code, _, out := f.push(t, f.tokA, "", "", strings.Repeat("x", 4096)); code != http.StatusCreated {
		t.Fatalf("4096 bytes at a 4096-byte data limit (1024 for jobs): %d %s", code, out)
	}
	code, _, out := f.push(t, f.tokA, "", "", strings.Repeat("y", 4097))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(out, "4096-byte limit") {
		t.Fatalf("over the limit: %d %s, want 413 naming the limit", code, out)
	}
	if ok, _ := f.data.Owns("a", artifacts.Digest([]byte(strings.Repeat("y", 4097)))); ok {
		t.Fatal("an over-limit upload was granted")
	}
}

func TestDataPushTree(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	_, a, _ := f.push(t, f.tokA, "", "", "alice's data")
	_, b, _ := f.push(t, f.tokB, "", "", "bob's data")
	tree := func(e artifacts.TreeEntry) string {
		m, _ := artifacts.Tree{Entries: []artifacts.TreeEntry{e}}.Encode()
		return string(m)
	}
	own := tree(artifacts.TreeEntry{Path: "in.txt", Digest: b.Digest, Size: b.Size, Mode: "0644"})
	code, got, out := f.push(t, f.tokB, "", artifacts.TreeMediaType, own)
	if code != http.StatusCreated || got.Kind != "tree" {
		t.Fatalf("b's tree of its own blob: %d %s", code, out)
	}
	// b names a's public digest in a tree: declared as a tree or posing
	// as a plain file, it is refused and nothing is granted.
	steal := tree(artifacts.TreeEntry{Path: "loot", Digest: a.Digest, Size: a.Size, Mode: "0644"})
	for _, ct := range []string{artifacts.TreeMediaType, "application/octet-stream"} {
		code, _, out := f.push(t, f.tokB, "", ct, steal)
		if code != http.StatusForbidden || strings.Contains(out, a.Digest) {
			t.Fatalf("b's tree of a's blob as %s: %d %s, want 403 without the digest", ct, code, out)
		}
	}
	for _, d := range []string{a.Digest, artifacts.Digest([]byte(steal))} {
		if ok, _ := f.data.Owns("b", d); ok {
			t.Fatalf("b was granted %s", d)
		}
	}
	if _, err := f.data.Materialize(ctx, artifacts.Digest([]byte(own)), t.TempDir()); err != nil {
		t.Fatalf("materialize b's tree: %v", err)
	}
	// A body declared a tree must be one; a hostile manifest is refused.
	if code, _, out := f.push(t, f.tokB, "", artifacts.TreeMediaType, "plain"); code != http.StatusUnprocessableEntity {
		t.Fatalf("a file declared a tree: %d %s, want 422", code, out)
	}
	evil := strings.Replace(own, `"in.txt"`, `"../in.txt"`, 1)
	if code, _, out := f.push(t, f.tokB, "", artifacts.TreeMediaType, evil); code != http.StatusUnprocessableEntity {
		t.Fatalf("a ../ manifest: %d %s, want 422", code, out)
	}
}

// TestDataPushPace: an upload slower than the server's ReadTimeout but
// faster than the data pace is stored; one that stalls past the grace
// period is cut off.
func TestDataPushPace(t *testing.T) {
	f := setup(t, WithDataPace(300*time.Millisecond, 20))
	f.srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(f.api, Limits{ReadHeaderTimeout: time.Second, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	go srv.Serve(ln)
	defer srv.Close()
	post := func(gap time.Duration, chunks int) (*http.Response, error) {
		pr, pw := io.Pipe()
		go func() {
			for range chunks {
				time.Sleep(gap)
				if _, err := pw.Write([]byte("chunk")); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/data", pr)
		req.Header.Set("Authorization", "Bearer "+f.tokA)
		return http.DefaultClient.Do(req)
	}
	resp, err := post(100*time.Millisecond, 6) // 50 bytes a second for 600 ms: past ReadTimeout, above the pace
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a steady upload past ReadTimeout: %d, want 201", resp.StatusCode)
	}
	resp, err = post(time.Second, 2) // stalls past the 300 ms grace
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("a stalled upload: %d, want 408 or a cut connection", resp.StatusCode)
		}
	}
}
