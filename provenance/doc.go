// Package provenance makes every stage of an Accord job provable after the
// fact, without trusting Accord's operator.
//
// Each stage (spec → admission → negotiation → placement → execution →
// verification → settlement) emits an in-toto Statement v1 whose predicate
// carries the job ID and the digest of the previous stage's DSSE envelope, so
// a job's attestations form a hash chain. Statements are signed into DSSE
// envelopes by ECDSA P-256 or ed25519 keys (identities are key fingerprints,
// sha256 of the DER public key), and logged as Rekor "intoto" v0.0.2 entries
// in a transparency log (package tlog: an embedded Tessera-backed log or a
// Rekor v1 server). A Receipt bundles a job's envelopes with their log
// entries, inclusion proofs, checkpoints and signed entry timestamps; Verify
// checks a receipt offline against a TrustStore and names the stage and the
// mismatch of every failure.
//
// Signed bytes are kept as signed: protojson output of a Statement is not
// byte-stable, so envelopes are stored and shipped verbatim, never re-encoded.
package provenance

import "errors"

// Sentinel errors; wrapped with %w and detail.
var (
	ErrKeyAlgorithm = errors.New("provenance: unsupported key algorithm")
	ErrBadKey       = errors.New("provenance: malformed key")
	ErrBadEnvelope  = errors.New("provenance: malformed DSSE envelope")
	ErrSignature    = errors.New("provenance: signature does not verify")
	ErrUntrusted    = errors.New("provenance: signer not trusted")
	ErrDigest       = errors.New("provenance: digest mismatch")
	ErrBadStatement = errors.New("provenance: malformed statement")
	ErrNotFound     = errors.New("provenance: not found")
	ErrAudit        = errors.New("provenance: audit failed")
)
