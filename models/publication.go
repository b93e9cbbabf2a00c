package models

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"

	"github.com/accordmesh/accord/provenance"
	ita "github.com/in-toto/attestation/go/v1"
)

// PredicateTypePublication is Accord's statement that a publisher put a
// model version in the registry under the terms of its Accord manifest:
// owner, lineage, licence, prices and royalties. The model-signing
// statement (Sign) covers the files; this one covers the terms, and ties
// both to the OCI artifact.
const PredicateTypePublication = "https://accord.dev/model-publication/v1"

// Publication is the publication statement's predicate.
type Publication struct {
	// Artifact is the digest of the model's OCI manifest in the registry.
	Artifact string `json:"artifact"`
	// Files is the model-signing root digest over the files (bare hex).
	Files    string   `json:"files"`
	Manifest Manifest `json:"manifest"`
}

// SignPublication returns the DSSE envelope of the publication statement
// for m pushed as artifact (an OCI manifest digest). Its subject is the
// model's name@version with the artifact's digest, so a transparency-log
// search by that digest finds it.
func SignPublication(ctx context.Context, key *provenance.Key, m *Manifest, artifact string) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := CheckDigest(artifact); err != nil {
		return nil, fmt.Errorf("models: artifact: %w", err)
	}
	root, err := RootDigest(ResourcesOf(m))
	if err != nil {
		return nil, err
	}
	pred, err := json.Marshal(Publication{Artifact: artifact, Files: root, Manifest: *m})
	if err != nil {
		return nil, fmt.Errorf("models: encode publication: %w", err)
	}
	st, err := json.Marshal(provenance.Statement{
		Type:          ita.StatementTypeUri,
		Subject:       []provenance.RawSubject{{Name: m.Ref(), Digest: map[string]string{HashSHA256: artifact[len("sha256:"):]}}},
		PredicateType: PredicateTypePublication,
		Predicate:     pred,
	})
	if err != nil {
		return nil, fmt.Errorf("models: encode statement: %w", err)
	}
	env, err := provenance.SignEnvelope(ctx, key, provenance.PayloadTypeInToto, st)
	if err != nil {
		return nil, fmt.Errorf("models: sign publication of %s: %w", m.Ref(), err)
	}
	return env, nil
}

// VerifiedPublication is what a verified publication statement says.
type VerifiedPublication struct {
	Publication
	KeyID string
}

// VerifyPublication checks the envelope's signature against the trusted
// keys and the statement's shape: one subject naming the manifest's
// name@version with the artifact digest, a valid manifest whose files
// have the root digest the statement claims.
func VerifyPublication(ctx context.Context, envelope []byte, trusted ...crypto.PublicKey) (*VerifiedPublication, error) {
	if len(envelope) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope larger than %d bytes", ErrVerify, MaxEnvelopeSize)
	}
	payload, keyID, err := provenance.VerifyEnvelope(ctx, envelope, trusted...)
	if err != nil {
		return nil, fmt.Errorf("models: publication: %w", err)
	}
	var st struct {
		Type          string                  `json:"_type"`
		Subject       []provenance.RawSubject `json:"subject"`
		PredicateType string                  `json:"predicateType"`
		Predicate     json.RawMessage         `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: publication statement: %v", ErrVerify, err)
	}
	if st.Type != ita.StatementTypeUri || st.PredicateType != PredicateTypePublication || len(st.Subject) != 1 {
		return nil, fmt.Errorf("%w: not an Accord model publication statement", ErrVerify)
	}
	var p Publication
	dec := json.NewDecoder(bytes.NewReader(st.Predicate))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: publication predicate: %v", ErrVerify, err)
	}
	if err := p.Manifest.Validate(); err != nil {
		return nil, fmt.Errorf("%w: published manifest: %v", ErrVerify, err)
	}
	if err := CheckDigest(p.Artifact); err != nil {
		return nil, fmt.Errorf("%w: artifact: %v", ErrVerify, err)
	}
	s := st.Subject[0]
	if s.Name != p.Manifest.Ref() || "sha256:"+s.Digest[HashSHA256] != p.Artifact {
		return nil, fmt.Errorf("%w: subject %q does not name the published %s", ErrVerify, clip(s.Name), p.Manifest.Ref())
	}
	root, err := RootDigest(ResourcesOf(&p.Manifest))
	if err != nil {
		return nil, err
	}
	if root != p.Files {
		return nil, fmt.Errorf("%w: publication's files digest is not its manifest's", ErrVerify)
	}
	return &VerifiedPublication{Publication: p, KeyID: keyID}, nil
}
