package rekorv1

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// testSigner is a throwaway ECDSA P-256 key for DSSE envelopes.
type testSigner struct {
	priv *ecdsa.PrivateKey
	pem  []byte
}

func newTestSigner(t testing.TB) *testSigner {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{priv: priv, pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
}

func (s *testSigner) Sign(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return ecdsa.SignASN1(rand.Reader, s.priv, sum[:])
}

func (s *testSigner) KeyID() (string, error) { return "", nil }

// envelope signs an in-toto Statement v1 with one subject per digest and
// returns the DSSE envelope JSON.
func (s *testSigner) envelope(t testing.TB, subjects ...string) []byte {
	t.Helper()
	type subject struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	}
	st := struct {
		Type          string         `json:"_type"`
		Subject       []subject      `json:"subject"`
		PredicateType string         `json:"predicateType"`
		Predicate     map[string]any `json:"predicate"`
	}{Type: "https://in-toto.io/Statement/v1", PredicateType: "https://accord.dev/test/v1", Predicate: map[string]any{"n": len(subjects)}}
	for i, d := range subjects {
		st.Subject = append(st.Subject, subject{Name: fmt.Sprintf("s%d", i), Digest: map[string]string{"sha256": d}})
	}
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	es, err := dsse.NewEnvelopeSigner(s)
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(context.Background(), "application/vnd.in-toto+json", body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// randomDigest is a fresh sha256 hex digest, so entries never collide with
// earlier runs against a persistent log.
func randomDigest(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
