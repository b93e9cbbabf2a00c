package rekorapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/types"
	_ "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1"
	_ "github.com/sigstore/rekor/pkg/types/intoto/v0.0.2"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/rekorv1"
)

// fakeLog is an in-memory tlog.Log: entries are the envelopes themselves,
// indexed by the hex digests their statements name and by signer key.
type fakeLog struct {
	mu      sync.Mutex
	entries []*tlog.Entry
	envs    [][]byte
	index   map[string][]string
	down    bool
	pubPEM  []byte
}

const fakeTree = "1234567890abcdef"

func (f *fakeLog) Kind() string { return "fake" }

func (f *fakeLog) Upload(_ context.Context, env, key []byte) (*tlog.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, tlog.ErrUnavailable
	}
	var e dsse.Envelope
	if err := json.Unmarshal(env, &e); err != nil || len(e.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %v", tlog.ErrInvalidEntry, err)
	}
	leaf := hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(env))
	for _, x := range f.entries {
		if strings.HasSuffix(x.UUID, leaf) {
			return x, nil
		}
	}
	i := int64(len(f.entries))
	x := &tlog.Entry{UUID: fakeTree + leaf}
	x.LogIndex = &i
	x.Body = base64.StdEncoding.EncodeToString(env)
	f.entries = append(f.entries, x)
	f.envs = append(f.envs, env)
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	var st struct {
		Subject []struct{ Digest map[string]string } `json:"subject"`
	}
	_ = json.Unmarshal(payload, &st)
	for _, s := range st.Subject {
		f.index["sha256:"+s.Digest["sha256"]] = append(f.index["sha256:"+s.Digest["sha256"]], x.UUID)
	}
	f.index[string(key)] = append(f.index[string(key)], x.UUID)
	return x, nil
}

func (f *fakeLog) Get(_ context.Context, uuid string) (*tlog.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, tlog.ErrUnavailable
	}
	for _, x := range f.entries {
		if strings.HasSuffix(x.UUID, uuid[len(uuid)-64:]) {
			return x, nil
		}
	}
	return nil, tlog.ErrNotFound
}

func (f *fakeLog) GetByIndex(_ context.Context, i int64) (*tlog.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 0 || i >= int64(len(f.entries)) {
		return nil, tlog.ErrNotFound
	}
	return f.entries[i], nil
}

func (f *fakeLog) Search(_ context.Context, q tlog.Query) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var sets [][]string
	if q.Hash != "" {
		sets = append(sets, f.index[q.Hash])
	}
	if q.PublicKeyPEM != nil {
		sets = append(sets, f.index[string(q.PublicKeyPEM)])
	}
	if len(sets) == 0 {
		return nil, errors.New("empty query")
	}
	out := []string{}
	for _, u := range sets[0] {
		if len(sets) == 1 || slices.Contains(sets[1], u) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (f *fakeLog) Info(context.Context) (*tlog.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, tlog.ErrUnavailable
	}
	return &tlog.Info{TreeSize: int64(len(f.entries)), RootHash: strings.Repeat("0", 64), SignedCheckpoint: "cp\n", TreeID: "1311768467294899695"}, nil
}

func (f *fakeLog) ConsistencyProof(_ context.Context, first, last int64) ([]string, error) {
	if first <= 0 || first > last || last > int64(len(f.entries)) {
		return nil, tlog.ErrInvalidRange
	}
	return []string{strings.Repeat("ab", 32)}, nil
}

func (f *fakeLog) PublicKey(context.Context) ([]byte, error) { return f.pubPEM, nil }

type signer struct {
	priv *ecdsa.PrivateKey
	pem  []byte
}

func newSigner(t *testing.T) *signer {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	return &signer{priv, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
}

func (s *signer) Sign(_ context.Context, d []byte) ([]byte, error) {
	h := sha256.Sum256(d)
	return ecdsa.SignASN1(rand.Reader, s.priv, h[:])
}
func (s *signer) KeyID() (string, error) { return "k1", nil }

func (s *signer) envelope(t *testing.T, digest string) []byte {
	st := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":%q}}],"predicateType":"https://accord.dev/test/v1","predicate":{}}`, digest)
	es, _ := dsse.NewEnvelopeSigner(s)
	env, err := es.SignPayload(context.Background(), "application/vnd.in-toto+json", []byte(st))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	return b
}

func newServer(t *testing.T, opts ...Option) (*fakeLog, *httptest.Server) {
	f := &fakeLog{index: map[string][]string{}, pubPEM: newSigner(t).pem}
	srv := httptest.NewServer(NewHandler(f, opts...))
	t.Cleanup(srv.Close)
	return f, srv
}

// The Rekor v1 generated client (through rekorv1) round-trips every route.
func TestRoundTripThroughRekorClient(t *testing.T) {
	ctx := context.Background()
	f, srv := newServer(t)
	l, err := rekorv1.New(srv.URL, rekorv1.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner(t)
	digest := strings.Repeat("7", 64)
	env := s.envelope(t, digest)
	e, err := l.Upload(ctx, env, s.pem)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.envs) != 1 {
		t.Fatalf("backend got %d uploads", len(f.envs))
	}
	// The reassembled envelope carries the same payload and signature.
	var orig, got dsse.Envelope
	_ = json.Unmarshal(env, &orig)
	_ = json.Unmarshal(f.envs[0], &got)
	if got.Payload != orig.Payload || got.PayloadType != orig.PayloadType || got.Signatures[0].Sig != orig.Signatures[0].Sig {
		t.Errorf("reassembled envelope %s differs from %s", f.envs[0], env)
	}
	if again, err := l.Upload(ctx, env, s.pem); err != nil || again.UUID != e.UUID {
		t.Errorf("second upload = %v, %v", again, err)
	}
	if g, err := l.Get(ctx, e.UUID); err != nil || g.UUID != e.UUID {
		t.Errorf("Get = %v, %v", g, err)
	}
	if g, err := l.GetByIndex(ctx, 0); err != nil || g.UUID != e.UUID {
		t.Errorf("GetByIndex = %v, %v", g, err)
	}
	if _, err := l.Get(ctx, strings.Repeat("e", 64)); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := l.GetByIndex(ctx, 5); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("GetByIndex(5) = %v, want ErrNotFound", err)
	}
	info, err := l.Info(ctx)
	if err != nil || info.TreeSize != 1 || info.TreeID != "1311768467294899695" {
		t.Errorf("Info = %+v, %v", info, err)
	}
	if k, err := l.PublicKey(ctx); err != nil || !bytes.Equal(k, f.pubPEM) {
		t.Errorf("PublicKey = %q, %v", k, err)
	}
	if _, err := l.ConsistencyProof(ctx, 1, 1); err != nil {
		t.Errorf("ConsistencyProof(1,1) = %v", err)
	}
	if _, err := l.Upload(ctx, []byte(`{"payloadType":"x","payload":"","signatures":[]}`), s.pem); !errors.Is(err, tlog.ErrInvalidEntry) {
		t.Errorf("Upload(unsigned) = %v, want ErrInvalidEntry", err)
	}
	f.down = true
	if _, err := l.Info(ctx); !errors.Is(err, tlog.ErrUnavailable) {
		t.Errorf("Info with the backend down = %v, want ErrUnavailable", err)
	}
}

func TestSearchIndex(t *testing.T) {
	ctx := context.Background()
	f, srv := newServer(t)
	a, b := newSigner(t), newSigner(t)
	d1, d2 := strings.Repeat("1", 64), strings.Repeat("2", 64)
	e1, _ := f.Upload(ctx, a.envelope(t, d1), a.pem)
	e2, _ := f.Upload(ctx, b.envelope(t, d1), b.pem)
	e3, _ := f.Upload(ctx, a.envelope(t, d2), a.pem)
	keyJSON := func(k []byte) string {
		return `{"format":"x509","content":"` + base64.StdEncoding.EncodeToString(k) + `"}`
	}
	for name, c := range map[string]struct {
		body string
		want []string
	}{
		"bare hash":    {`{"hash":"` + d1 + `"}`, []string{e1.UUID, e2.UUID}},
		"prefixed":     {`{"hash":"SHA256:` + d2 + `"}`, []string{e3.UUID}},
		"key":          {`{"publicKey":` + keyJSON(a.pem) + `}`, []string{e1.UUID, e3.UUID}},
		"and":          {`{"operator":"and","hash":"` + d1 + `","publicKey":` + keyJSON(a.pem) + `}`, []string{e1.UUID}},
		"or (default)": {`{"hash":"` + d2 + `","publicKey":` + keyJSON(b.pem) + `}`, []string{e3.UUID, e2.UUID}},
		"nothing":      {`{"hash":"` + strings.Repeat("9", 64) + `"}`, []string{}},
	} {
		resp, err := http.Post(srv.URL+"/api/v1/index/retrieve", "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: status %d, %v", name, resp.StatusCode, err)
			continue
		}
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", name, got, c.want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	_, srv := newServer(t, WithMaxBody(1024))
	_, ro := newServer(t, WithReadOnly())
	for _, c := range []struct {
		method, url, body string
		want              int
	}{
		{"GET", srv.URL + "/api/v1/log/entries/xyz", "", 400},
		{"GET", srv.URL + "/api/v1/log/entries/" + strings.Repeat("a", 63), "", 400},
		{"GET", srv.URL + "/api/v1/log/entries?logIndex=-1", "", 400},
		{"GET", srv.URL + "/api/v1/log/entries?logIndex=x", "", 400},
		{"GET", srv.URL + "/api/v1/log/proof?lastSize=x", "", 400},
		{"GET", srv.URL + "/api/v1/log/proof?firstSize=3&lastSize=2", "", 400},
		{"POST", srv.URL + "/api/v1/index/retrieve", `{`, 400},
		{"POST", srv.URL + "/api/v1/index/retrieve", `{}`, 400},
		{"POST", srv.URL + "/api/v1/index/retrieve", `{"email":"a@b.c"}`, 400},
		{"POST", srv.URL + "/api/v1/index/retrieve", `{"hash":"` + strings.Repeat("1", 64) + `","operator":"xor"}`, 400},
		{"POST", srv.URL + "/api/v1/index/retrieve", `{"publicKey":{"format":"pgp","content":"AA=="}}`, 400},
		{"POST", srv.URL + "/api/v1/log/entries/retrieve", `{}`, 400},
		{"POST", srv.URL + "/api/v1/log/entries/retrieve", `{"logIndexes":[-1]}`, 400},
		{"POST", srv.URL + "/api/v1/log/entries", `{"kind":"rekord","apiVersion":"0.0.1","spec":{}}`, 400},
		{"POST", srv.URL + "/api/v1/log/entries", `{"kind":"intoto","apiVersion":"0.0.1","spec":{}}`, 400},
		{"POST", srv.URL + "/api/v1/log/entries", `{"kind":"intoto","apiVersion":"0.0.2","spec":{"content":{}}}`, 400},
		{"POST", srv.URL + "/api/v1/log/entries", `not json`, 400},
		{"POST", srv.URL + "/api/v1/log/entries", `{"kind":"intoto","x":"` + strings.Repeat("a", 2000) + `"}`, 413},
		{"POST", ro.URL + "/api/v1/log/entries", `{}`, 405},
		{"DELETE", srv.URL + "/api/v1/log", "", 405},
		{"GET", srv.URL + "/api/v2/log", "", 404},
	} {
		req, _ := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s %.40s: %d %s, want %d", c.method, strings.TrimPrefix(c.url, srv.URL), c.body, resp.StatusCode, b, c.want)
		}
	}
}

// Entries rekor-cli would propose (intoto 0.0.2 and dsse 0.0.1) become the
// envelope and key the backend needs.
func TestEnvelopeOfProposedEntries(t *testing.T) {
	ctx := context.Background()
	s := newSigner(t)
	env := s.envelope(t, strings.Repeat("3", 64))
	for _, kind := range []struct{ kind, version string }{{"intoto", "0.0.2"}, {"dsse", "0.0.1"}} {
		pe, err := types.NewProposedEntry(ctx, kind.kind, kind.version, types.ArtifactProperties{ArtifactBytes: env, PublicKeyBytes: [][]byte{s.pem}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(pe)
		parsed, err := models.UnmarshalProposedEntry(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatal(err)
		}
		gotEnv, gotKey, err := envelopeOf(parsed)
		if err != nil {
			t.Fatalf("%s: %v", kind.kind, err)
		}
		var a, c dsse.Envelope
		_ = json.Unmarshal(env, &a)
		if err := json.Unmarshal(gotEnv, &c); err != nil || a.Payload != c.Payload || a.Signatures[0].Sig != c.Signatures[0].Sig {
			t.Errorf("%s: envelope %s, want %s", kind.kind, gotEnv, env)
		}
		if !strings.Contains(string(gotKey), "PUBLIC KEY") {
			t.Errorf("%s: key %q", kind.kind, gotKey)
		}
	}
}

// FuzzHandler: no request body makes a route panic or blame the backend
// (5xx) for the client's input.
func FuzzHandler(f *testing.F) {
	s := newSigner(&testing.T{})
	env := s.envelope(&testing.T{}, strings.Repeat("4", 64))
	pe, _ := types.NewProposedEntry(context.Background(), "intoto", "0.0.2", types.ArtifactProperties{ArtifactBytes: env, PublicKeyBytes: [][]byte{s.pem}})
	seed, _ := json.Marshal(pe)
	for _, b := range []string{string(seed), `{"entryUUIDs":["ab"]}`, `{"logIndexes":[0]}`, `{"hash":"sha256:00"}`,
		`{"publicKey":{"format":"x509","content":"AA=="}}`, `{"kind":"dsse","apiVersion":"0.0.1","spec":{"proposedContent":{"envelope":"{}","verifiers":["AA=="]}}}`} {
		for route := range 3 {
			f.Add(uint8(route), []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		fl := &fakeLog{index: map[string][]string{}, pubPEM: s.pem}
		h := NewHandler(fl, WithLogger(slog.New(slog.DiscardHandler)))
		path := []string{"/api/v1/log/entries", "/api/v1/log/entries/retrieve", "/api/v1/index/retrieve"}[route%3]
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", path, bytes.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body)
		}
	})
}
