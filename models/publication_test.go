package models

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance"
)

func TestPublicationSignVerify(t *testing.T) {
	ctx := context.Background()
	key, other := testKey(t, "ecdsa-p256"), testKey(t, "ed25519")
	m := validManifest()
	art := dg("artifact")
	env, err := SignPublication(ctx, key, m, art)
	if err != nil {
		t.Fatal(err)
	}
	v, err := VerifyPublication(ctx, env, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if v.Artifact != art || v.Manifest.Ref() != m.Ref() || v.KeyID != key.ID() || v.Manifest.Economics.Currency != m.Economics.Currency {
		t.Fatalf("verified %+v", v)
	}
	if _, err := VerifyPublication(ctx, env, other.Public()); !errors.Is(err, provenance.ErrUntrusted) && !errors.Is(err, provenance.ErrSignature) {
		t.Fatalf("wrong signer: %v", err)
	}
	// A statement re-signed with edited terms but the old files digest, or
	// naming another artifact in its subject, is refused even when the
	// signature is good.
	for name, edit := range map[string]func(map[string]any){
		"files digest": func(st map[string]any) { st["predicate"].(map[string]any)["files"] = strings.Repeat("0", 64) },
		"subject": func(st map[string]any) {
			st["subject"].([]any)[0].(map[string]any)["digest"] = map[string]any{"sha256": strings.Repeat("1", 64)}
		},
		"unknown field": func(st map[string]any) { st["predicate"].(map[string]any)["extra"] = 1 },
	} {
		st := decodePayload(t, env)
		edit(st)
		b, _ := json.Marshal(st)
		forged, err := provenance.SignEnvelope(ctx, key, provenance.PayloadTypeInToto, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyPublication(ctx, forged, key.Public()); !errors.Is(err, ErrVerify) {
			t.Errorf("%s: got %v, want ErrVerify", name, err)
		}
	}
	if _, err := SignPublication(ctx, key, m, "sha256:XYZ"); err == nil {
		t.Fatal("signed a publication of a malformed artifact digest")
	}
}

func decodePayload(t *testing.T, env []byte) map[string]any {
	t.Helper()
	var e struct{ Payload string }
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}
