// Package embedded is Accord's default transparency log: Trillian Tessera's
// POSIX storage used as a library, holding entries in Rekor v1 formats.
//
// Entries are the canonical bodies rekor-server would store for an intoto
// v0.0.2 upload (built with rekor's own types.CreateVersionedEntry and
// types.CanonicalizeEntry), checkpoints are rekor's signed notes
// (util.CreateAndSignCheckpoint) and every returned entry carries a signed
// entry timestamp computed exactly as rekor-server computes it, so rekor's
// pkg/verify.VerifyLogEntry accepts them. The log's own checkpoint key,
// tree ID and index live next to the tiles under one directory:
//
//	dir/log.json     tree ID, checkpoint origin, tessera note verifier key
//	dir/log.key      ECDSA P-256 key signing checkpoints and SETs (0600)
//	dir/note.key     tessera's internal checkpoint note key (0600)
//	dir/index.jsonl  append-only index: entry UUID → log index, time,
//	                 search keys, canonical body, envelope
//	dir/tiles/...    tessera's tlog-tiles (checkpoint, tile/, entries/)
//	dir/lock         held (flock) by the one process that may append
//
// The index is written ahead: a "pending" record before the entry is handed
// to tessera and a "commit" record once a checkpoint covers it. Opening the
// log reconciles pending records with the tree, so a crash between the two
// neither loses an entry nor logs it twice.
package embedded

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/go-openapi/runtime"
	"github.com/go-openapi/swag/conv"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/pki/x509"
	"github.com/sigstore/rekor/pkg/types"
	intotov002 "github.com/sigstore/rekor/pkg/types/intoto/v0.0.2"
	"github.com/sigstore/rekor/pkg/util"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	tclient "github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
)

// DefaultOrigin is the checkpoint origin ("hostname" in rekor-server terms).
const DefaultOrigin = "accord.local"

// ErrLocked: another process has the log open for appending.
var ErrLocked = errors.New("embedded: log is open for appending by another process")

// ErrReadOnly: Upload on a log opened read-only.
var ErrReadOnly = errors.New("embedded: log opened read-only")

// Options tune the log; the zero value is the default.
type Options struct {
	// Origin is the checkpoint origin used when the log is created.
	Origin string
	// ReadOnly opens without taking the append lock: reads, proofs and
	// search work from the files as they are at Open (the index is read once).
	ReadOnly bool
	// CheckpointInterval bounds how often tessera publishes a checkpoint
	// (and so the upload latency). Default and minimum 100ms.
	CheckpointInterval time.Duration
	// BatchMaxAge bounds how long tessera waits to fill a batch. Default 10ms.
	BatchMaxAge time.Duration
}

type config struct {
	TreeID       int64  `json:"treeID"`
	Origin       string `json:"origin"`
	NoteVerifier string `json:"noteVerifier"`
}

type record struct {
	Op       string   `json:"op"` // "pending" | "commit"
	UUID     string   `json:"uuid"`
	Index    int64    `json:"index,omitempty"`
	Time     int64    `json:"time,omitempty"`
	Keys     []string `json:"keys,omitempty"`
	Body     []byte   `json:"body,omitempty"`
	Envelope []byte   `json:"envelope,omitempty"`
}

type item struct {
	uuid     string // leaf hash hex
	index    int64  // -1 while pending
	time     int64
	body     []byte
	envelope []byte
	done     chan struct{} // closed when committed or failed
	err      error
}

// Log is the embedded log. It implements tlog.Log.
type Log struct {
	dir      string
	cfg      config
	key      *provenance.Key
	logID    string
	verifier note.Verifier
	fetch    tclient.FileFetcher
	readOnly bool

	cancel   context.CancelFunc
	appender *tessera.Appender
	shutdown func(context.Context) error
	reader   tessera.LogReader // nil when read-only
	lockFile *os.File

	// Group commit of pending records: written counts records written,
	// synced the count known durable; syncMu serialises fsyncs so that one
	// fsync covers every record written before it.
	syncMu  sync.Mutex
	written uint64
	synced  uint64

	mu      sync.Mutex
	idx     *os.File
	items   map[string]*item // leaf hash hex → item
	byIndex map[int64]string
	keys    map[string][]string // search key → leaf hashes
	cpCache struct {
		size uint64
		cp   string
	}
	rootCache struct {
		size uint64
		root []byte
	}
}

var _ tlog.Log = (*Log)(nil)

// Open opens (creating when missing) the embedded log in dir. Close it.
func Open(ctx context.Context, dir string, o Options) (*Log, error) {
	if o.CheckpointInterval < 100*time.Millisecond {
		o.CheckpointInterval = 100 * time.Millisecond
	}
	if o.BatchMaxAge <= 0 {
		o.BatchMaxAge = 10 * time.Millisecond
	}
	if o.Origin == "" {
		o.Origin = DefaultOrigin
	}
	if o.ReadOnly { // a reader creates nothing: no log yet is an error
		if _, err := os.Stat(filepath.Join(dir, "log.json")); err != nil {
			return nil, fmt.Errorf("embedded: no log in %s (nothing attested yet?): %w", dir, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tiles"), 0o700); err != nil {
		return nil, fmt.Errorf("embedded: create %s: %w", dir, err)
	}
	l := &Log{
		dir:      dir,
		readOnly: o.ReadOnly,
		fetch:    tclient.FileFetcher{Root: filepath.Join(dir, "tiles")},
		items:    map[string]*item{},
		byIndex:  map[int64]string{},
		keys:     map[string][]string{},
	}
	ok := false
	defer func() {
		if !ok {
			l.Close(context.Background())
		}
	}()
	if !o.ReadOnly {
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("embedded: lock: %w", err)
		}
		l.lockFile = f
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return nil, fmt.Errorf("%w (%s): %v", ErrLocked, dir, err)
		}
	}
	noteSigner, err := l.loadOrInit(o)
	if err != nil {
		return nil, err
	}
	if err := l.loadIndex(); err != nil {
		return nil, err
	}
	if o.ReadOnly {
		ok = true
		return l, nil
	}
	bg, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	driver, err := posix.New(bg, posix.Config{Path: filepath.Join(dir, "tiles")})
	if err != nil {
		return nil, fmt.Errorf("embedded: tessera storage: %w", err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(noteSigner).
		WithCheckpointInterval(o.CheckpointInterval).
		WithBatching(tessera.DefaultBatchMaxSize, o.BatchMaxAge)
	app, shutdown, reader, err := tessera.NewAppender(bg, driver, opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: tessera appender: %w", err)
	}
	l.appender, l.shutdown, l.reader = app, shutdown, reader
	if err := l.reconcile(ctx); err != nil {
		return nil, err
	}
	ok = true
	return l, nil
}

func (l *Log) loadOrInit(o Options) (note.Signer, error) {
	cfgPath := filepath.Join(l.dir, "log.json")
	b, err := os.ReadFile(cfgPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if o.ReadOnly {
			return nil, fmt.Errorf("embedded: no log in %s (nothing attested yet?): %w", l.dir, fs.ErrNotExist)
		}
		var rnd [8]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, fmt.Errorf("embedded: tree id: %w", err)
		}
		treeID := int64(binary.BigEndian.Uint64(rnd[:]) >> 1)
		skey, vkey, err := note.GenerateKey(rand.Reader, o.Origin+"-tessera")
		if err != nil {
			return nil, fmt.Errorf("embedded: note key: %w", err)
		}
		if _, err := provenance.LoadOrCreateKey(filepath.Join(l.dir, "log.key"), provenance.AlgECDSAP256); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(l.dir, "note.key"), []byte(skey), 0o600); err != nil {
			return nil, fmt.Errorf("embedded: note key: %w", err)
		}
		l.cfg = config{TreeID: treeID, Origin: o.Origin, NoteVerifier: vkey}
		cb, _ := json.MarshalIndent(l.cfg, "", "  ")
		if err := os.WriteFile(cfgPath, cb, 0o644); err != nil { // written last: its presence means the log exists
			return nil, fmt.Errorf("embedded: write config: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("embedded: read config: %w", err)
	default:
		if err := json.Unmarshal(b, &l.cfg); err != nil {
			return nil, fmt.Errorf("embedded: config %s: %w", cfgPath, err)
		}
	}
	key, err := provenance.LoadKey(filepath.Join(l.dir, "log.key"))
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	l.key = key
	l.logID = strings.TrimPrefix(key.ID(), "sha256:") // rekor: hex sha256 of the DER public key
	if l.verifier, err = note.NewVerifier(l.cfg.NoteVerifier); err != nil {
		return nil, fmt.Errorf("embedded: note verifier: %w", err)
	}
	if o.ReadOnly {
		return nil, nil
	}
	skey, err := os.ReadFile(filepath.Join(l.dir, "note.key"))
	if err != nil {
		return nil, fmt.Errorf("embedded: note key: %w", err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, fmt.Errorf("embedded: note signer: %w", err)
	}
	return s, nil
}

func (l *Log) loadIndex() error {
	path := filepath.Join(l.dir, "index.jsonl")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if l.readOnly && err != nil {
		f, err = os.Open(path)
	}
	if err != nil {
		return fmt.Errorf("embedded: index: %w", err)
	}
	r := bufio.NewReader(f)
	var good int64
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				slog.Warn("embedded: dropping torn index record", "dir", l.dir, "bytes", len(line))
			}
			break
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("embedded: read index: %w", err)
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			f.Close()
			return fmt.Errorf("embedded: index record at byte %d: %w", good, err)
		}
		good += int64(len(line))
		l.apply(rec)
	}
	if !l.readOnly {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return fmt.Errorf("embedded: truncate index: %w", err)
		}
		if _, err := f.Seek(good, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("embedded: seek index: %w", err)
		}
		l.idx = f
	} else {
		f.Close()
	}
	return nil
}

// apply folds one index record into memory; l.mu held or single-threaded.
func (l *Log) apply(rec record) {
	switch rec.Op {
	case "pending":
		it := &item{uuid: rec.UUID, index: -1, time: rec.Time, body: rec.Body, envelope: rec.Envelope, done: make(chan struct{})}
		l.items[rec.UUID] = it
		for _, k := range rec.Keys {
			l.keys[k] = append(l.keys[k], rec.UUID)
		}
	case "commit":
		if it := l.items[rec.UUID]; it != nil {
			it.index = rec.Index
			l.byIndex[rec.Index] = rec.UUID
			select {
			case <-it.done:
			default:
				close(it.done)
			}
		}
	}
}

// writeRecord appends one index record and applies it; l.mu held. It does
// not sync: pending records are synced by the caller (outside the lock, so
// that concurrent uploads share one fsync); commit records need no sync
// because reconcile recovers a lost commit from the tree.
func (l *Log) writeRecord(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("embedded: encode index record: %w", err)
	}
	b = append(b, '\n')
	if _, err := l.idx.Write(b); err != nil {
		return fmt.Errorf("embedded: write index: %w", err)
	}
	l.written++
	l.apply(rec)
	return nil
}

// syncThrough makes the index durable through record number n.
func (l *Log) syncThrough(n uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= n {
		return nil
	}
	l.mu.Lock()
	f, upto := l.idx, l.written
	l.mu.Unlock()
	if f == nil {
		return fmt.Errorf("embedded: log closed")
	}
	if err := f.Sync(); err != nil {
		return err
	}
	l.synced = upto
	return nil
}

// reconcile commits pending records whose leaves are in the tree and drops
// the rest (their uploads never reached tessera and will be retried).
func (l *Log) reconcile(ctx context.Context) error {
	var pending []*item
	for _, it := range l.items {
		if it.index < 0 {
			pending = append(pending, it)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	size, _, err := l.treeHead(ctx)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Commit records are written unsynced and possibly out of index order:
	// scan from the first index without one.
	var first uint64
	for l.byIndex[int64(first)] != "" {
		first++
	}
	found := map[string]int64{}
	if size > first {
		hashes, err := tclient.FetchLeafHashes(ctx, l.fetch.ReadTile, first, size-first, size)
		if err != nil {
			return fmt.Errorf("embedded: reconcile: %w", err)
		}
		for i, h := range hashes {
			found[hex.EncodeToString(h)] = int64(first) + int64(i)
		}
	}
	l.mu.Lock()
	defer func() {
		l.idx.Sync()
		l.mu.Unlock()
	}()
	for _, it := range pending {
		if idx, ok := found[it.uuid]; ok {
			if err := l.writeRecord(record{Op: "commit", UUID: it.uuid, Index: idx}); err != nil {
				return err
			}
			continue
		}
		slog.Warn("embedded: dropping index record of an upload that never reached the log", "uuid", it.uuid)
		delete(l.items, it.uuid)
		for k, us := range l.keys {
			for i, u := range us {
				if u == it.uuid {
					l.keys[k] = append(us[:i:i], us[i+1:]...)
					break
				}
			}
		}
	}
	return nil
}

// Close stops the appender and releases the lock. Safe to call twice.
func (l *Log) Close(ctx context.Context) error {
	var errs []error
	if l.shutdown != nil {
		if err := l.shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("embedded: shutdown: %w", err))
		}
		l.shutdown = nil
	}
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
	}
	l.mu.Lock()
	if l.idx != nil {
		errs = append(errs, l.idx.Close())
		l.idx = nil
	}
	l.mu.Unlock()
	if l.lockFile != nil {
		errs = append(errs, l.lockFile.Close())
		l.lockFile = nil
	}
	return errors.Join(errs...)
}

// Kind implements tlog.Log.
func (l *Log) Kind() string { return tlog.KindEmbedded }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// TreeID is the log's tree ID.
func (l *Log) TreeID() int64 { return l.cfg.TreeID }

// Upload implements tlog.Log: the envelope is verified and canonicalised by
// rekor's intoto v0.0.2 type exactly as rekor-server does, and appended
// unless an entry with the same leaf hash exists (then that entry is
// returned: idempotent).
func (l *Log) Upload(ctx context.Context, envelope []byte, publicKeyPEM []byte) (*tlog.Entry, error) {
	if l.readOnly {
		return nil, ErrReadOnly
	}
	body, keys, err := canonicalize(ctx, envelope, publicKeyPEM)
	if err != nil {
		return nil, err
	}
	leaf := hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(body))

	l.mu.Lock()
	if l.idx == nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("embedded: log closed")
	}
	it, exists := l.items[leaf]
	if !exists {
		rec := record{Op: "pending", UUID: leaf, Time: time.Now().Unix(), Keys: keys, Body: body, Envelope: envelope}
		if err := l.writeRecord(rec); err != nil {
			l.mu.Unlock()
			return nil, err
		}
		it = l.items[leaf]
	}
	mine := l.written
	l.mu.Unlock()
	if !exists {
		// Durable before tessera sees the entry: a crash after the append
		// then finds the pending record and commits it on reopen.
		if err := l.syncThrough(mine); err != nil {
			return nil, l.failPending(it, fmt.Errorf("embedded: sync index: %w", err))
		}
	}

	if exists {
		select {
		case <-it.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if it.err != nil {
			return nil, it.err
		}
		return l.published(ctx, it)
	}

	// Sequencing makes the entry durable in tessera and fixes its index;
	// publication (a checkpoint covering it) follows within a checkpoint
	// interval.
	index, err := l.appender.Add(ctx, tessera.NewEntry(body))()
	if err != nil {
		return nil, l.failPending(it, fmt.Errorf("%w: append: %v", tlog.ErrUnavailable, err))
	}
	l.mu.Lock()
	err = l.writeRecord(record{Op: "commit", UUID: leaf, Index: int64(index.Index)})
	l.mu.Unlock()
	if err != nil {
		return nil, err // reconcile commits it on reopen
	}
	return l.published(ctx, it)
}

// published returns the entry of a committed item. Tessera's POSIX storage
// integrates a batch into the tiles as it sequences it, so a sequenced entry
// is provable at once against the integrated tree (see treeHead).
func (l *Log) published(ctx context.Context, it *item) (*tlog.Entry, error) {
	return l.entry(ctx, it)
}

// failPending releases waiters on a pending item that could not be
// appended and forgets it in memory, so that a later Upload tries again (the
// pending record on disk is reconciled on reopen: committed if the entry did
// reach the tree, dropped otherwise).
func (l *Log) failPending(it *item, err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	it.err = err
	delete(l.items, it.uuid)
	close(it.done)
	return err
}

// canonicalize builds the rekor intoto v0.0.2 leaf for an envelope and the
// search keys rekor-server would index for it.
func canonicalize(ctx context.Context, envelope, publicKeyPEM []byte) ([]byte, []string, error) {
	pe, err := intotov002.V002Entry{}.CreateFromArtifactProperties(ctx, types.ArtifactProperties{
		ArtifactBytes:  envelope,
		PublicKeyBytes: [][]byte{publicKeyPEM},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", tlog.ErrInvalidEntry, err)
	}
	// Round-trip through JSON: exactly what rekor-server receives.
	raw, err := json.Marshal(pe)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded: encode proposed entry: %w", err)
	}
	pe2, err := models.UnmarshalProposedEntry(bytes.NewReader(raw), runtime.JSONConsumer())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", tlog.ErrInvalidEntry, err)
	}
	impl, err := types.CreateVersionedEntry(pe2)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", tlog.ErrInvalidEntry, err)
	}
	body, err := types.CanonicalizeEntry(ctx, impl)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: canonicalize: %v", tlog.ErrInvalidEntry, err)
	}
	keys, err := impl.IndexKeys()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: index keys: %v", tlog.ErrInvalidEntry, err)
	}
	for i := range keys {
		keys[i] = strings.ToLower(keys[i])
	}
	return body, dedupe(keys), nil
}

func dedupe(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// treeHead returns the tree the log commits to: the integrated tree
// (durable tiles, root computed from the tiles' compact range). Accord signs
// its own Rekor checkpoint for it, so nothing waits for tessera's periodic
// checkpoint publication.
func (l *Log) treeHead(ctx context.Context) (uint64, []byte, error) {
	var size uint64
	if l.reader != nil {
		n, err := l.reader.IntegratedSize(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("embedded: tree size: %w", err)
		}
		size = n
	} else {
		// Read-only: tessera's published checkpoint may lag the tiles (it is
		// published on an interval); every committed index is integrated.
		raw, err := l.fetch.ReadCheckpoint(ctx)
		if err == nil {
			cp, _, _, perr := log.ParseCheckpoint(raw, l.verifier.Name(), l.verifier)
			if perr != nil {
				return 0, nil, fmt.Errorf("embedded: parse checkpoint: %w", perr)
			}
			size = cp.Size
		} else if !errors.Is(err, os.ErrNotExist) {
			return 0, nil, fmt.Errorf("embedded: read checkpoint: %w", err)
		}
		l.mu.Lock()
		for i := range l.byIndex {
			size = max(size, uint64(i)+1)
		}
		l.mu.Unlock()
	}
	if size == 0 {
		return 0, rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	l.mu.Lock()
	if l.rootCache.size == size {
		root := l.rootCache.root
		l.mu.Unlock()
		return size, root, nil
	}
	l.mu.Unlock()
	nodes, err := tclient.FetchRangeNodes(ctx, size, l.fetch.ReadTile)
	if err != nil {
		return 0, nil, fmt.Errorf("embedded: compact range: %w", err)
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r, err := rf.NewRange(0, size, nodes)
	if err != nil {
		return 0, nil, fmt.Errorf("embedded: compact range: %w", err)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return 0, nil, fmt.Errorf("embedded: root: %w", err)
	}
	l.mu.Lock()
	if size > l.rootCache.size {
		l.rootCache.size, l.rootCache.root = size, root
	}
	l.mu.Unlock()
	return size, root, nil
}

// signedCheckpoint returns rekor's signed checkpoint for a tree head.
func (l *Log) signedCheckpoint(ctx context.Context, size uint64, root []byte) (string, error) {
	l.mu.Lock()
	if l.cpCache.size == size && l.cpCache.cp != "" {
		cp := l.cpCache.cp
		l.mu.Unlock()
		return cp, nil
	}
	l.mu.Unlock()
	b, err := util.CreateAndSignCheckpoint(ctx, l.cfg.Origin, l.cfg.TreeID, size, root, l.key.Signer())
	if err != nil {
		return "", fmt.Errorf("embedded: sign checkpoint: %w", err)
	}
	l.mu.Lock()
	l.cpCache.size, l.cpCache.cp = size, string(b)
	l.mu.Unlock()
	return string(b), nil
}

func (l *Log) entryID(leaf string) string {
	return fmt.Sprintf("%016x", l.cfg.TreeID) + leaf
}

// leafOf returns the leaf hash part of a 64- or 80-hex entry UUID (rekor's
// sharding.GetUUIDFromIDString, without pulling in rekor's server packages).
func leafOf(uuid string) (string, error) {
	uuid = strings.ToLower(uuid)
	switch len(uuid) {
	case 80:
		uuid = uuid[16:]
	case 64:
	default:
		return "", fmt.Errorf("want 64 or 80 hex characters, got %d", len(uuid))
	}
	if _, err := hex.DecodeString(uuid); err != nil {
		return "", err
	}
	return uuid, nil
}

// entry builds the Rekor response for a committed item: SET, inclusion
// proof against the latest checkpoint, and the stored attestation.
func (l *Log) entry(ctx context.Context, it *item) (*tlog.Entry, error) {
	size, root, err := l.treeHead(ctx)
	if err != nil {
		return nil, err
	}
	if uint64(it.index) >= size {
		return nil, fmt.Errorf("embedded: entry %d not yet covered by checkpoint of size %d", it.index, size)
	}
	pb, err := tclient.NewProofBuilder(ctx, size, l.fetch.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("embedded: proof builder: %w", err)
	}
	proof, err := pb.InclusionProof(ctx, uint64(it.index))
	if err != nil {
		return nil, fmt.Errorf("embedded: inclusion proof: %w", err)
	}
	hashes := make([]string, len(proof))
	for i, h := range proof {
		hashes[i] = hex.EncodeToString(h)
	}
	cp, err := l.signedCheckpoint(ctx, size, root)
	if err != nil {
		return nil, err
	}
	anon := models.LogEntryAnon{
		LogID:          conv.Pointer(l.logID),
		LogIndex:       conv.Pointer(it.index),
		Body:           base64.StdEncoding.EncodeToString(it.body),
		IntegratedTime: conv.Pointer(it.time),
	}
	set, err := l.signEntry(anon)
	if err != nil {
		return nil, err
	}
	anon.Verification = &models.LogEntryAnonVerification{
		InclusionProof: &models.InclusionProof{
			TreeSize:   conv.Pointer(int64(size)),
			RootHash:   conv.Pointer(hex.EncodeToString(root)),
			LogIndex:   conv.Pointer(it.index),
			Hashes:     hashes,
			Checkpoint: conv.Pointer(cp),
		},
		SignedEntryTimestamp: set,
	}
	if len(it.envelope) > 0 {
		if _, payload, err := provenance.ParseEnvelope(it.envelope); err == nil {
			anon.Attestation = &models.LogEntryAnonAttestation{Data: payload}
		}
	}
	return &tlog.Entry{UUID: l.entryID(it.uuid), LogEntryAnon: anon}, nil
}

// signEntry is rekor-server's signEntry: the canonical JSON of
// {body, integratedTime, logID, logIndex} signed by the log key.
func (l *Log) signEntry(e models.LogEntryAnon) ([]byte, error) {
	payload, err := e.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("embedded: marshal entry: %w", err)
	}
	canon, err := jsoncanonicalizer.Transform(payload)
	if err != nil {
		return nil, fmt.Errorf("embedded: canonicalize entry: %w", err)
	}
	return l.key.Sign(canon)
}

// Envelope returns the DSSE envelope stored for an entry UUID.
func (l *Log) Envelope(uuid string) ([]byte, error) {
	it, err := l.lookup(uuid)
	if err != nil {
		return nil, err
	}
	return it.envelope, nil
}

func (l *Log) lookup(uuid string) (*item, error) {
	leaf, err := leafOf(uuid)
	if err != nil {
		return nil, fmt.Errorf("%w: uuid %q: %v", tlog.ErrNotFound, uuid, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	it, ok := l.items[leaf]
	if !ok || it.index < 0 {
		return nil, fmt.Errorf("%w: uuid %s", tlog.ErrNotFound, uuid)
	}
	return it, nil
}

// Get implements tlog.Log.
func (l *Log) Get(ctx context.Context, uuid string) (*tlog.Entry, error) {
	it, err := l.lookup(uuid)
	if err != nil {
		return nil, err
	}
	return l.entry(ctx, it)
}

// GetByIndex implements tlog.Log.
func (l *Log) GetByIndex(ctx context.Context, index int64) (*tlog.Entry, error) {
	l.mu.Lock()
	leaf, ok := l.byIndex[index]
	var it *item
	if ok {
		it = l.items[leaf]
	}
	l.mu.Unlock()
	if it == nil {
		return nil, fmt.Errorf("%w: index %d", tlog.ErrNotFound, index)
	}
	return l.entry(ctx, it)
}

// SearchKeyForPublicKey is the index key rekor-server stores for an intoto
// signer: "sha256:" + hex sha256 of the canonical public key PEM.
func SearchKeyForPublicKey(publicKeyPEM []byte) (string, error) {
	k, err := x509.NewPublicKey(bytes.NewReader(publicKeyPEM))
	if err != nil {
		return "", fmt.Errorf("%w: public key: %v", tlog.ErrInvalidEntry, err)
	}
	canon, err := k.CanonicalValue()
	if err != nil {
		return "", fmt.Errorf("%w: public key: %v", tlog.ErrInvalidEntry, err)
	}
	return provenance.Digest(canon), nil
}

// Search implements tlog.Log.
func (l *Log) Search(_ context.Context, q tlog.Query) ([]string, error) {
	var want []string
	if q.Hash != "" {
		h := strings.ToLower(q.Hash)
		if !strings.Contains(h, ":") {
			h = "sha256:" + h
		}
		want = append(want, h)
	}
	if len(q.PublicKeyPEM) > 0 {
		k, err := SearchKeyForPublicKey(q.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		want = append(want, k)
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("embedded: empty search query")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	count := map[string]int{}
	for _, k := range want {
		seen := map[string]bool{}
		for _, u := range l.keys[k] {
			if it := l.items[u]; it != nil && it.index >= 0 && !seen[u] {
				seen[u] = true
				count[u]++
			}
		}
	}
	out := []string{}
	for u, n := range count {
		if n == len(want) {
			out = append(out, l.entryID(u))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Info implements tlog.Log.
func (l *Log) Info(ctx context.Context) (*tlog.Info, error) {
	size, root, err := l.treeHead(ctx)
	if errors.Is(err, os.ErrNotExist) {
		size, root = 0, rfc6962.DefaultHasher.EmptyRoot()
	} else if err != nil {
		return nil, err
	}
	cp, err := l.signedCheckpoint(ctx, size, root)
	if err != nil {
		return nil, err
	}
	return &tlog.Info{
		TreeSize:         int64(size),
		RootHash:         hex.EncodeToString(root),
		SignedCheckpoint: cp,
		TreeID:           strconv.FormatInt(l.cfg.TreeID, 10),
	}, nil
}

// ConsistencyProof implements tlog.Log.
func (l *Log) ConsistencyProof(ctx context.Context, first, last int64) ([]string, error) {
	size, _, err := l.treeHead(ctx)
	if err != nil {
		return nil, err
	}
	if first < 1 || first > last || uint64(last) > size {
		return nil, fmt.Errorf("%w: first %d, last %d, tree size %d", tlog.ErrInvalidRange, first, last, size)
	}
	if first == last {
		return []string{}, nil
	}
	pb, err := tclient.NewProofBuilder(ctx, uint64(last), l.fetch.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("embedded: proof builder: %w", err)
	}
	p, err := pb.ConsistencyProof(ctx, uint64(first), uint64(last))
	if err != nil {
		return nil, fmt.Errorf("embedded: consistency proof: %w", err)
	}
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = hex.EncodeToString(h)
	}
	return out, nil
}

// PublicKey implements tlog.Log.
func (l *Log) PublicKey(context.Context) ([]byte, error) { return l.key.PublicPEM(), nil }

func init() {
	tlog.Register(tlog.KindEmbedded, func(ctx context.Context, cfg tlog.Config) (tlog.Log, error) {
		if cfg.Home == "" {
			return nil, fmt.Errorf("embedded: no home directory")
		}
		return Open(ctx, filepath.Join(cfg.Home, "tlog"), Options{ReadOnly: cfg.ReadOnly})
	})
}
