package provenance

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// PayloadTypeInToto is the DSSE payload type of in-toto statements.
const PayloadTypeInToto = "application/vnd.in-toto+json"

// SignEnvelope signs payload into a DSSE envelope and returns its JSON. ECDSA
// signatures are randomised: keep the returned bytes rather than signing again.
func SignEnvelope(ctx context.Context, key *Key, payloadType string, payload []byte) ([]byte, error) {
	es, err := dsse.NewEnvelopeSigner(dsseSigner{k: key})
	if err != nil {
		return nil, fmt.Errorf("provenance: dsse signer: %w", err)
	}
	env, err := es.SignPayload(ctx, payloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("provenance: dsse sign: %w", err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("provenance: encode envelope: %w", err)
	}
	return b, nil
}

// ParseEnvelope decodes a DSSE envelope and its payload.
func ParseEnvelope(b []byte) (*dsse.Envelope, []byte, error) {
	var env dsse.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadEnvelope, err)
	}
	if env.PayloadType == "" || env.Payload == "" {
		return nil, nil, fmt.Errorf("%w: missing payloadType or payload", ErrBadEnvelope)
	}
	if len(env.Signatures) == 0 {
		return nil, nil, fmt.Errorf("%w: no signatures", ErrBadEnvelope)
	}
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: payload: %v", ErrBadEnvelope, err)
	}
	return &env, payload, nil
}

// VerifyEnvelope checks that at least one signature on the envelope verifies
// with one of pubs, and returns the payload and the fingerprint of the key
// that verified it.
func VerifyEnvelope(ctx context.Context, envelope []byte, pubs ...crypto.PublicKey) (payload []byte, keyID string, err error) {
	env, _, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, "", err
	}
	if len(pubs) == 0 {
		return nil, "", fmt.Errorf("%w: no candidate keys", ErrUntrusted)
	}
	vs := make([]dsse.Verifier, 0, len(pubs))
	for _, p := range pubs {
		v, err := newDSSEVerifier(p)
		if err != nil {
			return nil, "", err
		}
		vs = append(vs, v)
	}
	ev, err := dsse.NewEnvelopeVerifier(vs...)
	if err != nil {
		return nil, "", fmt.Errorf("provenance: dsse verifier: %w", err)
	}
	accepted, payload, err := ev.VerifyAndDecode(ctx, env)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrSignature, err)
	}
	id, err := Fingerprint(accepted[0].Public)
	if err != nil {
		return nil, "", err
	}
	return payload, id, nil
}

// EnvelopeSignerIDs returns the key IDs the envelope's signatures claim.
func EnvelopeSignerIDs(envelope []byte) ([]string, error) {
	env, _, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(env.Signatures))
	for _, s := range env.Signatures {
		ids = append(ids, s.KeyID)
	}
	return ids, nil
}

// Digest returns "sha256:<hex>" of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// hexDigest returns the bare hex sha256 of b.
func hexDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
