package artifacts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"
)

// TreeMediaType names a tree manifest: the blob a pushed directory becomes.
const TreeMediaType = "application/vnd.accord.tree.v1+json"

// Kinds of artifact, as Kind reports them.
const (
	KindFile = "file"
	KindTree = "tree"
)

// Bounds on a tree, checked when one is stored and again, as hostile input,
// before one is materialized.
const (
	// MaxTreeEntries bounds a tree's files and directories together.
	MaxTreeEntries = 100_000
	// MaxManifestSize bounds a manifest blob (100,000 entries of long paths).
	MaxManifestSize = 32 << 20
	// MaxTreeBytes bounds the sum of a manifest's file sizes, so that it
	// cannot overflow; the store's own limits are far below it.
	MaxTreeBytes = 1 << 50
	// MaxPathLen bounds an entry's path, and maxElemLen each of its names.
	MaxPathLen = 1024
	maxElemLen = 255
)

// maxEntries is MaxTreeEntries, lowered by tests.
var maxEntries = MaxTreeEntries

// treePrefix starts every manifest: a blob is a tree exactly when its bytes
// start with it, and then it must be a valid, canonical manifest. Deciding
// by the bytes, not by how a blob was pushed, means there is one answer for
// every digest: a tenant cannot push a file that another party reads as a
// tree without that tree being checked (see Local.Claim).
var treePrefix = []byte(`{"mediaType":"` + TreeMediaType + `",`)

// Tree is a directory as a manifest: every file by digest, and every
// directory (so empty ones survive). Both lists are sorted by path; paths
// are slash-separated and relative, with no ".", ".." or empty names.
type Tree struct {
	MediaType string      `json:"mediaType"`
	Entries   []TreeEntry `json:"entries"`
	Dirs      []string    `json:"dirs"`
}

// TreeEntry is one regular file of a tree.
type TreeEntry struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Mode   string `json:"mode"` // "0644" or "0755"
}

// Size is the sum of the tree's file sizes.
func (t Tree) Size() int64 {
	var n int64
	for _, e := range t.Entries {
		n += e.Size
	}
	return n
}

// Encode returns the manifest's canonical bytes (what its digest names).
func (t Tree) Encode() ([]byte, error) {
	t.MediaType = TreeMediaType
	if t.Entries == nil {
		t.Entries = []TreeEntry{}
	}
	if t.Dirs == nil {
		t.Dirs = []string{}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("artifacts: encode tree: %w", err)
	}
	return b, nil
}

// ParseTree decodes and validates a manifest as hostile input: the exact
// media type, canonical encoding (so JSON's leniencies, such as duplicate or
// differently cased keys, cannot make two readers disagree), valid relative
// paths in strict order (no duplicates), every parent directory listed, no
// path under a file, valid digests, modes 0644 or 0755, bounded counts and
// sizes.
func ParseTree(b []byte) (Tree, error) {
	var t Tree
	if len(b) > MaxManifestSize {
		return t, fmt.Errorf("%w: over %d bytes", ErrManifest, MaxManifestSize)
	}
	if !bytes.HasPrefix(b, treePrefix) {
		return t, fmt.Errorf("%w: does not start with mediaType %s", ErrManifest, TreeMediaType)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if err := t.validate(); err != nil {
		return t, err
	}
	canon, err := t.Encode()
	if err != nil || !bytes.Equal(canon, b) {
		return t, fmt.Errorf("%w: not in canonical form (compact JSON, fields in order)", ErrManifest)
	}
	return t, nil
}

func (t Tree) validate() error {
	if t.MediaType != TreeMediaType {
		return fmt.Errorf("%w: mediaType %q", ErrManifest, t.MediaType)
	}
	if len(t.Entries)+len(t.Dirs) > maxEntries {
		return fmt.Errorf("%w: over %d entries", ErrManifest, maxEntries)
	}
	dirs := make(map[string]bool, len(t.Dirs))
	for i, d := range t.Dirs {
		if err := checkPath(d); err != nil {
			return err
		}
		if i > 0 && t.Dirs[i-1] >= d {
			return fmt.Errorf("%w: dirs not sorted or duplicated at %q", ErrManifest, d)
		}
		dirs[d] = true
	}
	for _, d := range t.Dirs {
		if p := parent(d); p != "" && !dirs[p] {
			return fmt.Errorf("%w: %q: parent directory not listed", ErrManifest, d)
		}
	}
	var total int64
	for i, e := range t.Entries {
		if err := checkPath(e.Path); err != nil {
			return err
		}
		switch {
		case i > 0 && t.Entries[i-1].Path >= e.Path:
			return fmt.Errorf("%w: entries not sorted or duplicated at %q", ErrManifest, e.Path)
		case dirs[e.Path]:
			return fmt.Errorf("%w: %q is both a file and a directory", ErrManifest, e.Path)
		case parent(e.Path) != "" && !dirs[parent(e.Path)]:
			return fmt.Errorf("%w: %q: parent directory not listed", ErrManifest, e.Path)
		case e.Mode != "0644" && e.Mode != "0755":
			return fmt.Errorf("%w: %q: mode %q (want 0644 or 0755)", ErrManifest, e.Path, e.Mode)
		case e.Size < 0 || e.Size > MaxTreeBytes-total:
			return fmt.Errorf("%w: %q: size %d out of bounds", ErrManifest, e.Path, e.Size)
		}
		if _, err := hexOf(e.Digest); err != nil {
			return fmt.Errorf("%w: %q: %w", ErrManifest, e.Path, err)
		}
		total += e.Size
	}
	return nil
}

// checkPath accepts a relative slash-separated path that every file system
// Accord runs on can hold as is: valid UTF-8, no control characters or
// backslashes, no ".", ".." or empty names, bounded lengths.
func checkPath(p string) error {
	bad := !fs.ValidPath(p) || p == "." || len(p) > MaxPathLen || !utf8.ValidString(p) ||
		strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' || r == utf8.RuneError })
	if !bad {
		for elem := range strings.SplitSeq(p, "/") {
			bad = bad || len(elem) > maxElemLen
		}
	}
	if bad {
		return fmt.Errorf("%w: path %q is not a plain relative path (no /, ., .., control characters or backslashes; at most %d bytes)", ErrManifest, p, MaxPathLen)
	}
	return nil
}

func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

// Kind says whether the blob with digest is a tree or a file, by its first
// bytes (see treePrefix); it does not validate a tree.
func (l Local) Kind(_ context.Context, digest string) (string, error) {
	h, err := hexOf(digest)
	if err != nil {
		return "", err
	}
	f, err := os.Open(l.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	if err != nil {
		return "", fmt.Errorf("artifacts: kind of %s: %w", digest, err)
	}
	defer f.Close()
	head := make([]byte, len(treePrefix))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("artifacts: kind of %s: %w", digest, err)
	}
	if bytes.Equal(head[:n], treePrefix) {
		return KindTree, nil
	}
	return KindFile, nil
}

// ReadTree returns the validated manifest with digest.
func (l Local) ReadTree(ctx context.Context, digest string) (Tree, error) {
	b, err := l.Get(ctx, digest, MaxManifestSize)
	if err != nil {
		return Tree{}, err
	}
	t, err := ParseTree(b)
	if err != nil {
		return Tree{}, fmt.Errorf("%s: %w", digest, err)
	}
	return t, nil
}

// PutTree stores the directory dir: each regular file as a blob, then the
// tree's manifest, whose digest it returns. It reads through an os.Root, so
// nothing outside dir is read, and refuses symbolic links, devices, FIFOs,
// sockets, names checkPath refuses, more than MaxTreeEntries entries and
// more than limit bytes of files in total. Files stored before a refusal
// stay in the store, ungranted.
func (l Local) PutTree(ctx context.Context, dir string, limit int64) (digest string, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("artifacts: put tree: %w", err)
	}
	defer root.Close()
	var t Tree
	var total int64
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if err := checkPath(p); err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		if len(t.Entries)+len(t.Dirs) >= maxEntries {
			return fmt.Errorf("%w: more than %d files and directories", ErrRefused, maxEntries)
		}
		switch {
		case d.IsDir():
			t.Dirs = append(t.Dirs, p)
		case d.Type().IsRegular():
			e, err := l.putTreeFile(ctx, root, p, total, limit)
			if err != nil {
				return err
			}
			t.Entries = append(t.Entries, e)
			total += e.Size
		default:
			return fmt.Errorf("%w: %s is a %s, not a regular file or directory", ErrRefused, p, typeName(d.Type()))
		}
		return nil
	})
	if errors.Is(err, ErrRefused) || errors.Is(err, ErrTooLarge) {
		return "", err // already says what and where
	}
	if err != nil {
		return "", fmt.Errorf("artifacts: put tree: %w", err)
	}
	slices.Sort(t.Dirs)
	slices.SortFunc(t.Entries, func(a, b TreeEntry) int { return strings.Compare(a.Path, b.Path) })
	b, err := t.Encode()
	if err != nil {
		return "", err
	}
	if len(b) > MaxManifestSize {
		return "", fmt.Errorf("artifacts: put tree: %w: manifest over %d bytes", ErrRefused, MaxManifestSize)
	}
	digest, _, err = Local{Dir: l.Dir}.PutReader(ctx, bytes.NewReader(b), MaxManifestSize)
	return digest, err
}

// putTreeFile stores one file of a tree, which has stored done bytes of its
// limit so far.
func (l Local) putTreeFile(ctx context.Context, root *os.Root, p string, done, limit int64) (TreeEntry, error) {
	// O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a FIFO after
	// the walk saw it is refused, not followed or waited on.
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return TreeEntry{}, fmt.Errorf("%w: %s: %w", ErrRefused, p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return TreeEntry{}, err
	}
	if !fi.Mode().IsRegular() {
		return TreeEntry{}, fmt.Errorf("%w: %s is not a regular file", ErrRefused, p)
	}
	one := Local{Dir: l.Dir}
	if l.Progress != nil {
		one.Progress = func(n int64) { l.Progress(done + n) }
	}
	d, n, err := one.PutReader(ctx, f, limit-done)
	if errors.Is(err, ErrTooLarge) {
		return TreeEntry{}, fmt.Errorf("%w: the tree is over the %d-byte limit", ErrTooLarge, limit)
	}
	if err != nil {
		return TreeEntry{}, fmt.Errorf("%s: %w", p, err)
	}
	mode := "0644"
	if fi.Mode()&0o111 != 0 {
		mode = "0755"
	}
	return TreeEntry{Path: p, Digest: d, Size: n, Mode: mode}, nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// Stat returns a stored artifact's kind and size: a file's bytes, or the
// sum of a tree's files.
func (l Local) Stat(ctx context.Context, digest string) (kind string, size int64, err error) {
	kind, err = l.Kind(ctx, digest)
	if err != nil {
		return "", 0, err
	}
	if kind == KindTree {
		t, err := l.ReadTree(ctx, digest)
		if err != nil {
			return "", 0, err
		}
		return kind, t.Size(), nil
	}
	fi, err := os.Stat(l.path(digest[len("sha256:"):]))
	if err != nil {
		return "", 0, fmt.Errorf("artifacts: stat %s: %w", digest, err)
	}
	return kind, fi.Size(), nil
}
