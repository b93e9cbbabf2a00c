// Package witness is a C2SP transparency-log witness for Accord's logs: it
// cosigns a log's checkpoint only after checking that the checkpoint is
// signed by the log and consistent with every checkpoint of that log it
// cosigned before, so a log that shows one party a different history than
// another (a fork) or takes entries back (a rollback) is caught by anyone
// who asks for cosignatures from witnesses they trust.
//
// Formats, all C2SP:
//
//   - Checkpoints are tlog-checkpoint signed notes: an origin line, the tree
//     size, the base64 root hash, optional extension lines, a blank line and
//     signature lines "— <name> base64(key hash || signature)". Rekor v1 and
//     Accord's embedded log sign them with an ECDSA P-256 (or Ed25519) PKIX
//     key, key hash = SHA-256(DER public key)[:4], ECDSA over SHA-256 of the
//     note text; LogVerifier accepts such a key (PEM) or a note verifier key.
//   - Cosignatures are tlog-cosignature v1 (Ed25519): key ID =
//     SHA-256(name || "\n" || 0x04 || public key)[:4]; the signed message is
//     "cosignature/v1\ntime <unix seconds>\n" followed by the whole note text;
//     the signature line is "— <name> base64(key ID || timestamp as big-endian
//     uint64 || Ed25519 signature)".
//   - The witness speaks tlog-witness: POST /add-checkpoint with a body of
//     "old <size>\n", at most 63 base64 consistency proof lines, an empty
//     line and the checkpoint. Answers: 200 with cosignature lines; 400 for a
//     malformed request; 404 for an unknown origin; 403 when no signature of
//     the log verifies; 409 (Content-Type text/x.tlog.size, body "<size>\n")
//     when old is not the size the witness last cosigned, or the sizes match
//     and the roots do not (a fork); 422 when the consistency proof fails.
//
// The witness persists, per log, the latest cosigned size, root and
// checkpoint (one JSON file per origin, replaced atomically) before it
// answers, and holds a lock on its state directory, so a restarted witness
// never cosigns a smaller tree or another branch. The first checkpoint it
// sees of a log is trusted on first use (old 0, empty proof).
//
// A client brings a witness up to date with Cosign (one request) or Update
// (from a tlog.Log: the proof from the witness's size to the log's current
// size, retried once with the size a 409 reports). VerifyCosignatures counts
// the valid cosignatures on a checkpoint from a set of trusted witness keys.
package witness

import "errors"

// Sentinel errors; wrapped with %w and detail.
var (
	// ErrMalformed: a note, checkpoint, key or request that does not parse.
	ErrMalformed = errors.New("witness: malformed input")
	// ErrUnknownLog: the checkpoint's origin is not configured (404).
	ErrUnknownLog = errors.New("witness: unknown log")
	// ErrLogSignature: no signature of the log's key verifies (403).
	ErrLogSignature = errors.New("witness: checkpoint not signed by the log")
	// ErrConflict: the old size is not what the witness cosigned last, or
	// the same size carries another root (409). See ConflictError.
	ErrConflict = errors.New("witness: conflict with the witness's state")
	// ErrProof: the consistency proof does not verify (422).
	ErrProof = errors.New("witness: consistency proof does not verify")
	// ErrUnavailable: the witness could not be reached or answered 5xx.
	ErrUnavailable = errors.New("witness: unavailable")
)

// ConflictError is a 409: the witness's latest cosigned size for the log.
type ConflictError struct {
	Size uint64
}

func (e *ConflictError) Error() string {
	return "witness: conflict: the witness's latest cosigned size is " + uitoa(e.Size)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }
