// Package tlog puts Accord's transparency-log backends behind one interface.
//
// Two backends implement Log: the embedded log (package
// provenance/tlog/embedded: Trillian Tessera POSIX storage under Accord's
// home directory, entries and checkpoints in Rekor v1 formats) and a real
// Rekor v1 server (package provenance/tlog/rekorv1). Both hand back entries
// as Rekor's generated models.LogEntryAnon, so rekor's
// pkg/verify.VerifyLogEntry accepts entries from either, and an offline
// auditor needs nothing but the entry, the envelope and the log's public key.
//
// Entries are Rekor "intoto" v0.0.2 entries: a DSSE envelope whose payload
// is an in-toto Statement, verified at upload time with the signer's public
// key. Rekor indexes the sha256 digests of every statement subject, the
// envelope payload hash and the signer's public key; Search uses those
// indexes. Accord makes job IDs searchable by adding a subject
// "accord:job/<id>" whose sha256 digest is sha256 of the job ID (see
// provenance.JobDigest).
//
// Every method is safe for concurrent use and takes ctx first. The test suite
// every backend must pass is tlogtest.Run.
package tlog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/sigstore/rekor/pkg/generated/models"
)

// Backend kinds returned by Log.Kind.
const (
	KindEmbedded = "embedded"
	KindRekor    = "rekor"
)

// Sentinel errors shared by all backends; wrap them with %w.
var (
	// ErrNotFound: no entry with that UUID or index.
	ErrNotFound = errors.New("tlog: entry not found")
	// ErrInvalidEntry: the log refused the envelope (bad signature, not a
	// DSSE envelope carrying an in-toto statement, key mismatch). Permanent.
	ErrInvalidEntry = errors.New("tlog: invalid entry")
	// ErrUnavailable: the log could not be reached or answered 5xx. Retry.
	ErrUnavailable = errors.New("tlog: log unavailable")
	// ErrInvalidRange: a consistency proof was asked for sizes that do not
	// satisfy 0 < first <= last <= tree size.
	ErrInvalidRange = errors.New("tlog: invalid proof range")
	// ErrUnauthorized: the log refused the writer (no token, an unknown
	// token, or a signer key the writer may not log for). Permanent until
	// the log's operator changes the writer's grant.
	ErrUnauthorized = errors.New("tlog: writer not authorized")
)

// Log is a Rekor-v1-format transparency log.
type Log interface {
	// Kind is KindEmbedded or KindRekor.
	Kind() string

	// Upload logs a DSSE envelope (JSON) as a Rekor intoto v0.0.2 entry whose
	// signature is verified with publicKeyPEM (PKIX public key PEM). The
	// returned entry carries an inclusion proof with a signed checkpoint and
	// a signed entry timestamp.
	//
	// Idempotent: uploading the same envelope again returns the existing
	// entry (Rekor's 409 Conflict is success), so an activity may retry
	// freely. Note that two signings of one statement with ECDSA give two
	// different envelopes: callers persist the envelope before uploading.
	Upload(ctx context.Context, envelope []byte, publicKeyPEM []byte) (*Entry, error)

	// Get returns an entry by UUID (64 hex leaf hash or 80 hex tree ID +
	// leaf hash), with a fresh inclusion proof.
	Get(ctx context.Context, uuid string) (*Entry, error)

	// GetByIndex returns the entry at a log index, with an inclusion proof.
	GetByIndex(ctx context.Context, index int64) (*Entry, error)

	// Search returns the UUIDs of entries matching q (AND of the set
	// fields), in no particular order. An empty query is an error.
	Search(ctx context.Context, q Query) ([]string, error)

	// Info returns the current tree head and signed checkpoint.
	Info(ctx context.Context) (*Info, error)

	// ConsistencyProof returns the hex-encoded hashes proving that the tree
	// of size first is a prefix of the tree of size last.
	ConsistencyProof(ctx context.Context, first, last int64) ([]string, error)

	// PublicKey returns the PEM (PKIX) of the key that signs checkpoints and
	// signed entry timestamps.
	PublicKey(ctx context.Context) ([]byte, error)
}

// Entry is one log entry as Rekor v1 serves it.
type Entry struct {
	// UUID is the entry UUID as the log reports it (Rekor: 80 hex).
	UUID string `json:"uuid"`
	models.LogEntryAnon
}

// Query selects entries. Set fields are ANDed.
type Query struct {
	// Hash is "sha256:<hex>": a statement subject digest (artifact, spec
	// document, job ID digest) or the envelope payload hash.
	Hash string `json:"hash,omitempty"`
	// PublicKeyPEM selects entries signed by this public key.
	PublicKeyPEM []byte `json:"publicKeyPEM,omitempty"`
}

// Info is the log's current state.
type Info struct {
	TreeSize int64 `json:"treeSize"`
	// RootHash is the hex root hash of the tree of size TreeSize.
	RootHash string `json:"rootHash"`
	// SignedCheckpoint is the signed note (Rekor's signedTreeHead).
	SignedCheckpoint string `json:"signedTreeHead"`
	// TreeID is the log's tree ID as a decimal string.
	TreeID string `json:"treeID"`
}

// Config selects a backend for Open.
type Config struct {
	// Kind is KindEmbedded or KindRekor.
	Kind string
	// Home is Accord's state directory (the embedded log lives in Home/tlog).
	Home string
	// URL is the Rekor server's base URL (KindRekor).
	URL string
	// ReadOnly opens for reading only (CLI queries next to a running worker).
	ReadOnly bool
	// Insecure allows a plain http:// URL (KindRekor; --insecure).
	Insecure bool
	// Token is the writer's bearer token for a log that authenticates
	// uploads (KindRekor against `accord log serve`); empty sends none.
	Token string
}

// Opener opens one kind of backend.
type Opener func(ctx context.Context, cfg Config) (Log, error)

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes a backend kind available to Open; backends call it from
// init. Registering a kind twice panics (programmer error).
func Register(kind string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	if _, dup := openers[kind]; dup {
		panic("tlog: kind registered twice: " + kind)
	}
	openers[kind] = open
}

// Open opens a registered backend (import it for its side effect).
func Open(ctx context.Context, cfg Config) (Log, error) {
	openersMu.RLock()
	open, ok := openers[cfg.Kind]
	openersMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("tlog: unknown log kind %q (registered: %v)", cfg.Kind, Kinds())
	}
	return open(ctx, cfg)
}

// Kinds lists the registered kinds.
func Kinds() []string {
	openersMu.RLock()
	defer openersMu.RUnlock()
	var out []string
	for k := range openers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Close closes l if its backend holds resources (a Close(ctx) error method).
func Close(ctx context.Context, l Log) error {
	if c, ok := l.(interface{ Close(context.Context) error }); ok {
		return c.Close(ctx)
	}
	return nil
}
