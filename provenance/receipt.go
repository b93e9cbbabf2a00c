package provenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/accordmesh/accord/provenance/tlog"
)

// ReceiptVersion identifies the receipt format.
const ReceiptVersion = "https://accord.dev/receipt/v1"

// Receipt is everything an auditor needs to check a job offline: every
// stage's envelope with its log entry (inclusion proof, checkpoint, signed
// entry timestamp) and the log's public key.
type Receipt struct {
	Version      string         `json:"version"`
	JobID        string         `json:"job_id"`
	Log          ReceiptLog     `json:"log"`
	Attestations []*Attestation `json:"attestations"`
	// Witnessed is the log's checkpoint cosigned by witnesses, with proofs
	// that every entry's checkpoint is a prefix of it. Optional: receipts
	// without it verify as before (unless VerifyOptions.Witnesses > 0).
	Witnessed *WitnessedCheckpoint `json:"witnessed,omitempty"`
}

// ReceiptLog identifies the log the entries are in.
type ReceiptLog struct {
	Kind      string `json:"kind"`
	PublicKey string `json:"public_key"`
	TreeID    string `json:"tree_id,omitempty"`
	URL       string `json:"url,omitempty"`
}

// BuildReceipt assembles a job's receipt from the store. Entries are
// re-read from the log (fresh proofs against one recent checkpoint); a stage
// whose upload never completed is uploaded now (idempotent). When the log
// cannot be read the stored entries are used.
func BuildReceipt(ctx context.Context, jobID string, store *Store, l tlog.Log) (*Receipt, error) {
	atts, err := store.List(jobID)
	if err != nil {
		return nil, err
	}
	pub, err := l.PublicKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("provenance: log public key: %w", err)
	}
	r := &Receipt{Version: ReceiptVersion, JobID: jobID, Log: ReceiptLog{Kind: l.Kind(), PublicKey: string(pub)}}
	if info, err := l.Info(ctx); err == nil {
		r.Log.TreeID = info.TreeID
	}
	for _, a := range atts {
		switch {
		case a.Entry == nil:
			e, err := l.Upload(ctx, a.Envelope, []byte(a.SignerPublicKey))
			if err != nil {
				return nil, fmt.Errorf("provenance: stage %s was never logged and uploading it failed: %w", a.Stage, err)
			}
			a.Entry = e
			if err := store.Put(a); err != nil {
				return nil, err
			}
		default:
			e, err := l.Get(ctx, a.Entry.UUID)
			if err != nil {
				slog.Warn("provenance: using the stored entry", "stage", a.Stage, "error", err)
				break
			}
			a.Entry = e
		}
		r.Attestations = append(r.Attestations, a)
	}
	return r, nil
}

// WriteFile writes the receipt as indented JSON.
func (r *Receipt) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("provenance: encode receipt: %w", err)
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}

// ReadReceipt reads a receipt file.
func ReadReceipt(path string) (*Receipt, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("provenance: read receipt: %w", err)
	}
	return ParseReceipt(b)
}

// ParseReceipt decodes a receipt.
func ParseReceipt(b []byte) (*Receipt, error) {
	var r Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("provenance: receipt: %w", err)
	}
	if r.Version != ReceiptVersion {
		return nil, fmt.Errorf("provenance: receipt version %q, want %q", r.Version, ReceiptVersion)
	}
	if r.JobID == "" || len(r.Attestations) == 0 {
		return nil, errors.New("provenance: receipt has no job ID or no attestations")
	}
	return &r, nil
}
