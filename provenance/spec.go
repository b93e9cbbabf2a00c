package provenance

import (
	"context"
	"encoding/json"
	"fmt"

	ita "github.com/in-toto/attestation/go/v1"
)

// SpecSignaturePredicateType is the predicate type of a spec signature: an
// in-toto statement whose subject is the spec document's digest.
const SpecSignaturePredicateType = PredicateTypePrefix + "spec-signature/v1"

// SpecSignatureExt is the conventional suffix of a spec's signature file
// ("job.md" → "job.md.sig"), written by `accord spec sign`.
const SpecSignatureExt = ".sig"

// SpecSignaturePredicate is what a spec signer asserts.
type SpecSignaturePredicate struct {
	DocumentDigest string `json:"document_digest"`
	Name           string `json:"name,omitempty"`
}

// SignSpec signs the digest of a spec document (its exact bytes) and returns
// the DSSE envelope (JSON). name is informative (e.g. the file name).
func SignSpec(ctx context.Context, doc []byte, name string, key *Key) ([]byte, error) {
	d := Digest(doc)
	pred, err := json.Marshal(SpecSignaturePredicate{DocumentDigest: d, Name: name})
	if err != nil {
		return nil, fmt.Errorf("provenance: encode spec signature: %w", err)
	}
	subjName := name
	if subjName == "" {
		subjName = "spec"
	}
	st := Statement{
		Type:          ita.StatementTypeUri,
		Subject:       []RawSubject{jsonSubject(Subject{Name: subjName, Digest: d})},
		PredicateType: SpecSignaturePredicateType,
		Predicate:     pred,
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("provenance: encode spec statement: %w", err)
	}
	return SignEnvelope(ctx, key, PayloadTypeInToto, payload)
}

// VerifySpecSignature checks that sig (a DSSE envelope from SignSpec) signs
// exactly doc and was made by a key trusted for "spec:<tenant>" (or
// "spec:*"). It returns the signing key's ID. Errors wrap ErrSignature,
// ErrUntrusted, ErrDigest or ErrBadEnvelope/ErrBadStatement.
func VerifySpecSignature(ctx context.Context, doc, sig []byte, trust *TrustStore, tenant string) (keyID string, err error) {
	if tenant == "" {
		return "", fmt.Errorf("%w: no tenant", ErrUntrusted)
	}
	scope := ScopeSpecPrefix + tenant
	keys := trust.KeysFor(scope)
	if len(keys) == 0 {
		return "", fmt.Errorf("%w: no key is trusted to sign specs of tenant %q", ErrUntrusted, tenant)
	}
	payload, id, err := VerifyEnvelope(ctx, sig, keys...)
	if err != nil {
		ids, _ := EnvelopeSignerIDs(sig)
		return "", fmt.Errorf("spec signature by %v: not from a key trusted for %s: %w", ids, scope, err)
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return "", err
	}
	if st.PredicateType != SpecSignaturePredicateType {
		return "", fmt.Errorf("%w: predicate type %s is not a spec signature", ErrBadStatement, st.PredicateType)
	}
	want := Digest(doc)
	if !subjectsHaveDigest(st, want) {
		got := st.Subjects()
		return "", fmt.Errorf("%w: signature covers %v, the document is %s", ErrDigest, got, want)
	}
	return id, nil
}
