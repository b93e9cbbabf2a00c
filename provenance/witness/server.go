package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/accordmesh/accord/internal/atomicfile"
)

// MaxRequestSize bounds an add-checkpoint request body.
const MaxRequestSize = 64 << 10

// Server timeouts: a witness answers from memory and one small file write.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

// ErrLocked: another witness holds the state directory.
var ErrLocked = errors.New("witness: state directory is in use by another witness")

// Log is a log the witness follows: its checkpoint origin line and its key
// (a PKIX public key PEM or a note verifier key line; see LogVerifier).
type Log struct {
	Origin string
	Key    []byte
}

// State is what the witness last cosigned for one log.
type State struct {
	Origin     string `json:"origin"`
	Size       uint64 `json:"size"`
	Root       []byte `json:"root"`
	Checkpoint string `json:"checkpoint"`
}

// Witness cosigns checkpoints of its configured logs. Safe for concurrent
// use; one Witness per state directory (New takes a lock on it).
type Witness struct {
	signer *Signer
	dir    string
	logs   map[string]note.Verifier
	lock   *os.File

	// mu makes the check of the old size and the write of the new state
	// one step (tlog-witness requires it: else a slow request for a
	// smaller tree could roll the state back).
	mu    sync.Mutex
	state map[string]State
}

// New opens a witness keeping its state in dir (created when missing).
// Close it to release the directory.
func New(signer *Signer, dir string, logs ...Log) (*Witness, error) {
	if signer == nil || len(logs) == 0 {
		return nil, fmt.Errorf("%w: a witness needs a key and at least one log", ErrMalformed)
	}
	w := &Witness{signer: signer, dir: dir, logs: map[string]note.Verifier{}, state: map[string]State{}}
	for _, l := range logs {
		if l.Origin == "" || strings.Contains(l.Origin, "\n") {
			return nil, fmt.Errorf("%w: log origin %q", ErrMalformed, l.Origin)
		}
		v, err := LogVerifier(l.Key)
		if err != nil {
			return nil, fmt.Errorf("witness: log %q: %w", l.Origin, err)
		}
		w.logs[l.Origin] = v
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("witness: state directory: %w", err)
	}
	if err := w.takeLock(); err != nil {
		return nil, err
	}
	for origin := range w.logs {
		if err := w.load(origin); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

func (w *Witness) takeLock() error {
	f, err := os.OpenFile(filepath.Join(w.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("witness: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("%w: %s: %v", ErrLocked, w.dir, err)
	}
	w.lock = f
	return nil
}

// Close releases the state directory.
func (w *Witness) Close() error {
	if w.lock == nil {
		return nil
	}
	err := w.lock.Close()
	w.lock = nil
	return err
}

// Signer is the witness's key.
func (w *Witness) Signer() *Signer { return w.signer }

func (w *Witness) statePath(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return filepath.Join(w.dir, "log-"+hex.EncodeToString(sum[:16])+".json")
}

func (w *Witness) load(origin string) error {
	b, err := os.ReadFile(w.statePath(origin))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("witness: state of %q: %w", origin, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil || st.Origin != origin || len(st.Root) != sha256.Size {
		return fmt.Errorf("witness: state of %q in %s is corrupt (refusing to start: a witness that forgot what it cosigned could cosign a fork)", origin, w.statePath(origin))
	}
	w.state[origin] = st
	return nil
}

// Latest returns what the witness last cosigned for origin.
func (w *Witness) Latest(origin string) (State, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.state[origin]
	return st, ok
}

// AddCheckpoint is tlog-witness add-checkpoint: it checks checkpoint (a
// signed note) against the log's key and the consistency proof from old,
// which must be the size the witness last cosigned, records it and returns
// the witness's cosignature.
func (w *Witness) AddCheckpoint(old uint64, consistency [][]byte, checkpoint []byte) ([]Signature, error) {
	n, err := ParseNote(checkpoint)
	if err != nil {
		return nil, err
	}
	cp, err := ParseCheckpoint(n.Text)
	if err != nil {
		return nil, err
	}
	v, ok := w.logs[cp.Origin]
	if !ok {
		return nil, fmt.Errorf("%w: origin %q", ErrUnknownLog, clip(cp.Origin))
	}
	if !n.Verified(v) {
		return nil, fmt.Errorf("%w: no signature on the checkpoint of %q verifies with the log's key", ErrLogSignature, cp.Origin)
	}
	switch {
	case old > cp.Size:
		return nil, fmt.Errorf("%w: old size %d is beyond the checkpoint's size %d", ErrMalformed, old, cp.Size)
	case len(consistency) > MaxProofHashes:
		return nil, fmt.Errorf("%w: %d proof hashes, at most %d", ErrMalformed, len(consistency), MaxProofHashes)
	case old == 0 && len(consistency) > 0:
		return nil, fmt.Errorf("%w: a proof from size 0 must be empty", ErrMalformed)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.state[cp.Origin]
	if err := checkConsistency(st, old, consistency, cp); err != nil {
		return nil, err
	}
	next := State{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Checkpoint: string(checkpoint)}
	if err := w.save(next); err != nil {
		return nil, err
	}
	w.state[cp.Origin] = next
	return []Signature{w.signer.Cosign(n.Text)}, nil
}

// checkConsistency applies tlog-witness's checks against the stored state.
func checkConsistency(st State, old uint64, consistency [][]byte, cp Checkpoint) error {
	if old != st.Size {
		return &ConflictError{Size: st.Size}
	}
	if old == cp.Size {
		root := st.Root
		if root == nil { // never cosigned: a size-0 tree has one root
			root = rfc6962.DefaultHasher.EmptyRoot()
		}
		if !bytes.Equal(root, cp.Hash) {
			slog.Warn("witness: refused a fork: same size, another root", "origin", cp.Origin, "size", cp.Size, "root", base64.StdEncoding.EncodeToString(cp.Hash), "cosigned", base64.StdEncoding.EncodeToString(root))
			return &ConflictError{Size: st.Size}
		}
		return nil
	}
	if old == 0 {
		return nil // first sight of this log: trusted on first use
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, cp.Size, consistency, st.Root, cp.Hash); err != nil {
		slog.Warn("witness: refused an inconsistent checkpoint", "origin", cp.Origin, "old", old, "size", cp.Size, "error", err)
		return fmt.Errorf("%w: %d → %d: %v", ErrProof, old, cp.Size, err)
	}
	return nil
}

func (w *Witness) save(st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("witness: encode state: %w", err)
	}
	if err := atomicfile.WriteFile(w.statePath(st.Origin), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("witness: save state of %q: %w", st.Origin, err)
	}
	return nil
}

// Handler serves POST /add-checkpoint.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.serveAdd)
	return mux
}

// Server returns an HTTP server for Handler on addr with bounded timeouts
// and header size.
func (w *Witness) Server(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           w.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

func (w *Witness) serveAdd(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxRequestSize))
	if err != nil {
		http.Error(rw, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	old, hashes, cp, err := ParseRequest(body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	sigs, err := w.AddCheckpoint(old, hashes, cp)
	var conflict *ConflictError
	switch {
	case errors.As(err, &conflict):
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", conflict.Size)
		return
	case err != nil:
		http.Error(rw, err.Error(), statusOf(err))
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, s := range sigs {
		io.WriteString(rw, s.Line())
	}
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownLog):
		return http.StatusNotFound
	case errors.Is(err, ErrLogSignature):
		return http.StatusForbidden
	case errors.Is(err, ErrProof):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// ParseRequest reads an add-checkpoint body: "old N", proof lines, an
// empty line, the checkpoint. Lines end in "\n" alone.
func ParseRequest(body []byte) (old uint64, consistency [][]byte, checkpoint []byte, err error) {
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	n, isOld := strings.CutPrefix(string(line), "old ")
	if !ok || !isOld || n == "" || (n != "0" && n[0] == '0') {
		return 0, nil, nil, fmt.Errorf("%w: first line must be \"old <size>\"", ErrMalformed)
	}
	if old, err = strconv.ParseUint(n, 10, 64); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: old size %q", ErrMalformed, clip(n))
	}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		switch {
		case !ok:
			return 0, nil, nil, fmt.Errorf("%w: no empty line before the checkpoint", ErrMalformed)
		case len(line) == 0:
			return old, consistency, rest, nil
		case len(consistency) == MaxProofHashes:
			return 0, nil, nil, fmt.Errorf("%w: more than %d proof lines", ErrMalformed, MaxProofHashes)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(h) != sha256.Size {
			return 0, nil, nil, fmt.Errorf("%w: proof line %q is not a base64 SHA-256 hash", ErrMalformed, clip(string(line)))
		}
		consistency = append(consistency, h)
	}
}

// FormatRequest writes an add-checkpoint body.
func FormatRequest(old uint64, consistency [][]byte, checkpoint []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range consistency {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(checkpoint)
	return b.Bytes()
}
