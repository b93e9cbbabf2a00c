package provenance

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/sigstore/rekor/pkg/util"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/witness"
)

// WitnessedCheckpoint is a log checkpoint with witnesses' cosignatures and
// the consistency proofs that tie a receipt's entries to it.
type WitnessedCheckpoint struct {
	// Checkpoint is the signed note: the log's signature line followed by
	// the witnesses' tlog-cosignature v1 lines.
	Checkpoint string `json:"checkpoint"`
	// Proofs prove each smaller entry checkpoint a prefix of Checkpoint.
	Proofs []ConsistencyProof `json:"proofs,omitempty"`
}

// ConsistencyProof proves the tree of size From a prefix of the witnessed
// checkpoint's tree (RFC 6962 hashes, hex).
type ConsistencyProof struct {
	From   uint64   `json:"from"`
	Hashes []string `json:"hashes"`
}

// Witness asks each witness (a tlog-witness submission URL) to cosign the
// log's current checkpoint, and attaches the cosigned checkpoint to r with
// consistency proofs from the checkpoints r's entries are proved against.
// Every witness must cosign; the first failure is returned, naming it.
func (r *Receipt) Witness(ctx context.Context, l tlog.Log, witnessURLs []string) error {
	if len(witnessURLs) == 0 {
		return nil
	}
	info, err := l.Info(ctx)
	if err != nil {
		return fmt.Errorf("provenance: log info for witnessing: %w", err)
	}
	cosigned := []byte(info.SignedCheckpoint)
	for _, u := range witnessURLs {
		sigs, _, err := witness.Update(ctx, u, l, info, 0)
		if err != nil {
			return fmt.Errorf("provenance: witness %s: %w", u, err)
		}
		cosigned = witness.AppendSignatures(cosigned, sigs)
	}
	wc := &WitnessedCheckpoint{Checkpoint: string(cosigned)}
	size := uint64(info.TreeSize)
	for _, from := range entryCheckpointSizes(r) {
		switch {
		case from > size:
			return fmt.Errorf("provenance: an entry is proved against size %d, beyond the log's current size %d", from, size)
		case from == size || from == 0:
			continue
		}
		hs, err := l.ConsistencyProof(ctx, int64(from), int64(size))
		if err != nil {
			return fmt.Errorf("provenance: consistency proof %d → %d: %w", from, size, err)
		}
		wc.Proofs = append(wc.Proofs, ConsistencyProof{From: from, Hashes: hs})
	}
	r.Witnessed = wc
	return nil
}

// entryCheckpointSizes lists the distinct sizes of the entries' checkpoints.
func entryCheckpointSizes(r *Receipt) []uint64 {
	seen := map[uint64]bool{}
	var out []uint64
	for _, cp := range entryCheckpoints(r) {
		sc, err := parseCheckpoint(cp)
		if err != nil || seen[sc.Size] {
			continue
		}
		seen[sc.Size] = true
		out = append(out, sc.Size)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func entryCheckpoints(r *Receipt) []string {
	var out []string
	for _, att := range r.Attestations {
		if e := att.Entry; e != nil && e.Verification != nil && e.Verification.InclusionProof != nil && e.Verification.InclusionProof.Checkpoint != nil {
			out = append(out, *e.Verification.InclusionProof.Checkpoint)
		}
	}
	return out
}

// witnessed checks the receipt's witnessed checkpoint and counts its
// cosignatures against opts.
func (a *auditor) witnessed(opts VerifyOptions) {
	fail := func(format string, args ...any) { a.fail("log", "witness", format, args...) }
	w := a.r.Witnessed
	if w == nil {
		if opts.Witnesses > 0 {
			fail("0 valid cosignatures, %d required: the receipt carries no witnessed checkpoint (export it with --witness URL)", opts.Witnesses)
		}
		return
	}
	n, err := witness.ParseNote([]byte(w.Checkpoint))
	if err != nil {
		fail("witnessed checkpoint: %v", err)
		return
	}
	cp, err := witness.ParseCheckpoint(n.Text)
	if err != nil {
		fail("witnessed checkpoint: %v", err)
		return
	}
	logV, ok := a.logNoteVerifier()
	if !ok {
		return // the log key problem is already reported
	}
	if !n.Verified(logV) {
		fail("witnessed checkpoint (size %d) is not signed by the log key %s", cp.Size, a.rep.LogKey)
		return
	}
	a.entriesExtendTo(cp, w.Proofs)
	var trusted []*witness.CosignatureVerifier
	for _, k := range opts.WitnessKeys {
		v, err := witness.NewCosignatureVerifier(k)
		if err != nil {
			fail("trusted witness key: %v", err)
			continue
		}
		trusted = append(trusted, v)
	}
	t := witness.VerifyCosignatures(n, trusted, logV.KeyHash())
	a.rep.Witnesses = t.Valid
	if len(t.Valid) < opts.Witnesses {
		from := "none"
		if len(t.Valid) > 0 {
			from = strings.Join(t.Witnesses(), ", ")
		}
		msg := fmt.Sprintf("%d valid cosignatures from trusted witnesses (%s), %d required, on the checkpoint of size %d", len(t.Valid), from, opts.Witnesses, cp.Size)
		if len(t.Rejected) > 0 {
			msg += "; not counted: " + strings.Join(t.Rejected, ", ")
		}
		fail("%s", msg)
	}
}

// logNoteVerifier verifies the log's note signatures with the receipt's key.
func (a *auditor) logNoteVerifier() (note.Verifier, bool) {
	pub, err := ParsePublicKeyPEM([]byte(a.r.Log.PublicKey))
	if err != nil {
		return nil, false
	}
	v, err := witness.PKIXVerifier(pub)
	if err != nil {
		a.fail("log", "witness", "log key: %v", err)
		return nil, false
	}
	return v, true
}

// entriesExtendTo checks every entry checkpoint is a prefix of cp.
func (a *auditor) entriesExtendTo(cp witness.Checkpoint, proofs []ConsistencyProof) {
	byFrom := map[uint64][]string{}
	for _, p := range proofs {
		byFrom[p.From] = p.Hashes
	}
	done := map[uint64]bool{}
	for _, s := range entryCheckpoints(a.r) {
		sc, err := parseCheckpoint(s)
		if err != nil || done[sc.Size] {
			continue // reported by the entry checks
		}
		done[sc.Size] = true
		if err := extends(sc, cp, byFrom[sc.Size]); err != nil {
			a.fail("log", "witness", "entry checkpoint of size %d is not proven a prefix of the witnessed checkpoint of size %d: %v", sc.Size, cp.Size, err)
		}
	}
}

func extends(sc *util.SignedCheckpoint, cp witness.Checkpoint, hexHashes []string) error {
	if sc.Origin != cp.Origin {
		return fmt.Errorf("origin %q, witnessed origin %q", sc.Origin, cp.Origin)
	}
	if sc.Size == cp.Size {
		if !bytes.Equal(sc.Hash, cp.Hash) {
			return fmt.Errorf("same size, different roots (%x, %x): a fork", sc.Hash, cp.Hash)
		}
		return nil
	}
	if sc.Size > cp.Size {
		return fmt.Errorf("the entry's tree is larger")
	}
	if hexHashes == nil {
		return fmt.Errorf("no consistency proof from size %d", sc.Size)
	}
	hashes := make([][]byte, len(hexHashes))
	for i, h := range hexHashes {
		b, err := hex.DecodeString(h)
		if err != nil {
			return fmt.Errorf("proof hash %q: %v", h, err)
		}
		hashes[i] = b
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, sc.Size, cp.Size, hashes, sc.Hash, cp.Hash)
}
