package rekorapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/provenance"
)

// Writer errors. The handler answers ErrNoToken with 401, ErrBadToken and
// ErrKeyNotAllowed with 403; the Rekor client (rekorv1) turns both into
// tlog.ErrUnauthorized.
var (
	// ErrNoToken: an upload without "Authorization: Bearer <token>".
	ErrNoToken = errors.New("rekorapi: no writer token")
	// ErrBadToken: a token that no writer holds.
	ErrBadToken = errors.New("rekorapi: unknown writer token")
	// ErrKeyNotAllowed: the writer may not log envelopes signed by this key.
	ErrKeyNotAllowed = errors.New("rekorapi: signer key not allowed for this writer")
	// ErrWriterExists: AddWriter with a name already in the file.
	ErrWriterExists = errors.New("rekorapi: writer exists")
	// ErrNoWriter: RemoveWriter of a name not in the file.
	ErrNoWriter = errors.New("rekorapi: no such writer")
	// ErrWriterName: a writer name outside WriterNamePattern.
	ErrWriterName = errors.New("rekorapi: invalid writer name")
)

// WriterNamePattern: 1-63 lower-case letters, digits, '.', '_' or '-',
// starting with a letter or digit.
var WriterNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// tokenPrefix marks Accord log tokens, so a leaked one is recognisable.
const tokenPrefix = "acclog_"

// maxWritersFile bounds the writers file (it is re-read when it changes).
const maxWritersFile = 1 << 20

// Writer is one authenticated uploader as the writers file stores it. The
// token itself is never stored: only its SHA-256 (tokens are 256 random
// bits, so a fast hash loses nothing to guessing).
type Writer struct {
	Name string `json:"name"`
	// TokenSHA256 is the hex SHA-256 of the whole token string.
	TokenSHA256 string `json:"token_sha256"`
	// Keys, when set, are the only signer keys this writer may log
	// envelopes for, as provenance.Fingerprint ("sha256:<hex of DER>").
	Keys    []string  `json:"keys,omitempty"`
	Created time.Time `json:"created"`
}

type writersFile struct {
	Writers []Writer `json:"writers"`
}

// Writers checks upload credentials against a writers file. The file is
// re-read when its size or modification time changes, so `accord log token
// add` and `remove` take effect on a running server. A missing file is an
// empty set: every upload is refused.
type Writers struct {
	path string

	mu     sync.Mutex
	stamp  string // size and mtime of the file last read
	byHash map[string]*Writer
}

// OpenWriters reads the writers file at path (missing is empty).
func OpenWriters(path string) (*Writers, error) {
	w := &Writers{path: path}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.reload(); err != nil {
		return nil, err
	}
	return w, nil
}

// Authorize returns the name of the writer holding token, when that writer
// may log envelopes signed by publicKeyPEM (nil: check the token only).
func (w *Writers) Authorize(token string, publicKeyPEM []byte) (string, error) {
	if token == "" {
		return "", ErrNoToken
	}
	w.mu.Lock()
	if err := w.reload(); err != nil {
		w.mu.Unlock()
		return "", err
	}
	wr := w.byHash[tokenHash(token)]
	w.mu.Unlock()
	if wr == nil {
		return "", ErrBadToken
	}
	if publicKeyPEM == nil || len(wr.Keys) == 0 {
		return wr.Name, nil
	}
	fp, err := KeyFingerprint(publicKeyPEM)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrKeyNotAllowed, err)
	}
	if !slices.Contains(wr.Keys, fp) {
		return "", fmt.Errorf("%w: writer %s, key %s", ErrKeyNotAllowed, wr.Name, fp)
	}
	return wr.Name, nil
}

// reload re-reads the file when it changed; w.mu is held.
func (w *Writers) reload() error {
	st, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		w.stamp, w.byHash = "", map[string]*Writer{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("rekorapi: writers file: %w", err)
	}
	// The file is replaced, never edited in place: a new inode is a change.
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	stamp := fmt.Sprintf("%d/%d/%d", ino, st.Size(), st.ModTime().UnixNano())
	if stamp == w.stamp && w.byHash != nil {
		return nil
	}
	f, err := readWriters(w.path)
	if err != nil {
		return err
	}
	by := make(map[string]*Writer, len(f.Writers))
	for i := range f.Writers {
		by[f.Writers[i].TokenSHA256] = &f.Writers[i]
	}
	w.stamp, w.byHash = stamp, by
	return nil
}

func readWriters(path string) (*writersFile, error) {
	b, err := bounded.ReadFile(path, maxWritersFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &writersFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rekorapi: writers file: %w", err)
	}
	var f writersFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("rekorapi: writers file %s: %w", path, err)
	}
	for _, wr := range f.Writers {
		if !WriterNamePattern.MatchString(wr.Name) || len(wr.TokenSHA256) != 64 {
			return nil, fmt.Errorf("rekorapi: writers file %s: malformed writer %q", path, wr.Name)
		}
	}
	return &f, nil
}

// KeyFingerprint is the allow-list form of a signer key:
// provenance.Fingerprint of the PEM's public key.
func KeyFingerprint(publicKeyPEM []byte) (string, error) {
	pub, err := provenance.ParsePublicKeyPEM(publicKeyPEM)
	if err != nil {
		return "", err
	}
	return provenance.Fingerprint(pub)
}

// AddWriter adds a writer named name to the writers file at path (created
// 0600 when missing) and returns its new token, which is stored only
// hashed: the caller shows it once. keys (PEM public keys), when given,
// are the only signers the writer may log for. A name already present is
// ErrWriterExists: remove it first to rotate.
func AddWriter(path, name string, keys [][]byte) (string, error) {
	if !WriterNamePattern.MatchString(name) {
		return "", fmt.Errorf("%w: %q (lower-case letters, digits, . _ -; at most 63)", ErrWriterName, name)
	}
	var fps []string
	for i, k := range keys {
		fp, err := KeyFingerprint(k)
		if err != nil {
			return "", fmt.Errorf("rekorapi: writer %s: key %d: %w", name, i+1, err)
		}
		if !slices.Contains(fps, fp) {
			fps = append(fps, fp)
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("rekorapi: new token: %w", err)
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	err := editWriters(path, func(f *writersFile) error {
		for _, wr := range f.Writers {
			if wr.Name == name {
				return fmt.Errorf("%w: %s", ErrWriterExists, name)
			}
		}
		f.Writers = append(f.Writers, Writer{Name: name, TokenSHA256: tokenHash(token), Keys: fps, Created: time.Now().UTC()})
		return nil
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// RemoveWriter deletes the writer named name: its token stops working on
// the next upload.
func RemoveWriter(path, name string) error {
	return editWriters(path, func(f *writersFile) error {
		i := slices.IndexFunc(f.Writers, func(w Writer) bool { return w.Name == name })
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrNoWriter, name)
		}
		f.Writers = slices.Delete(f.Writers, i, i+1)
		return nil
	})
}

// ListWriters returns the writers in the file at path (missing: none).
func ListWriters(path string) ([]Writer, error) {
	f, err := readWriters(path)
	if err != nil {
		return nil, err
	}
	return f.Writers, nil
}

// editWriters applies edit to the file under an exclusive lock, so two
// `accord log token` commands do not lose each other's writers, and
// replaces it atomically, so a serving log never reads half a file.
func editWriters(path string, edit func(*writersFile) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("rekorapi: writers file: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("rekorapi: writers file lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("rekorapi: writers file lock: %w", err)
	}
	f, err := readWriters(path)
	if err != nil {
		return err
	}
	if err := edit(f); err != nil {
		return err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("rekorapi: writers file: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("rekorapi: writers file: %w", err)
	}
	return nil
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(h string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
