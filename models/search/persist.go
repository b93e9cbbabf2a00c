package search

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/accordmesh/accord/models"
)

// Format identifies the saved index format.
const Format = "accord.model.search/v1"

// savedIndex is the saved form: every entry, ordered by ref so that the
// same catalogue always saves to the same bytes.
type savedIndex struct {
	Format  string       `json:"format"`
	Entries []savedEntry `json:"entries"`
}

type savedEntry struct {
	Manifest *models.Manifest `json:"manifest"`
	Digest   string           `json:"digest"`
	Signed   bool             `json:"signed,omitempty"`
	Logged   bool             `json:"logged,omitempty"`
}

// Save writes every entry as one JSON document, ordered by ref.
func (ix *Index) Save(w io.Writer) error {
	ix.mu.RLock()
	docs := slices.Clone(ix.docs)
	ix.mu.RUnlock()
	slices.SortFunc(docs, func(a, b *doc) int { return strings.Compare(a.ref, b.ref) })
	s := savedIndex{Format: Format, Entries: make([]savedEntry, len(docs))}
	for i, d := range docs {
		e := d.entry
		s.Entries[i] = savedEntry{Manifest: e.Manifest, Digest: e.Digest, Signed: e.Signed, Logged: e.Logged}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("search: save: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("search: save: %w", err)
	}
	return nil
}

// Load reads an index written by Save, at most maxBytes of it: a longer
// input is ErrTooLarge, a truncated or malformed one ErrFormat, and every
// entry is validated again as Add does (ErrEntry).
func Load(r io.Reader, maxBytes int64) (*Index, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("search: load: byte bound %d is not positive", maxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(r, min(maxBytes, math.MaxInt64-1)+1))
	if err != nil {
		return nil, fmt.Errorf("search: load: %w", err)
	}
	if int64(len(b)) > maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	var s savedIndex
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the index", ErrFormat)
	}
	if s.Format != Format {
		return nil, fmt.Errorf("%w: format %q is not %q", ErrFormat, clip(s.Format), Format)
	}
	ix := NewIndex()
	for i, e := range s.Entries {
		if e.Manifest == nil {
			return nil, fmt.Errorf("%w: entries[%d]: no manifest", ErrFormat, i)
		}
		if _, dup := ix.byRef[e.Manifest.Ref()]; dup {
			return nil, fmt.Errorf("%w: entries[%d]: %s saved twice", ErrFormat, i, clip(e.Manifest.Ref()))
		}
		if err := ix.Add(Entry{Manifest: e.Manifest, Digest: e.Digest, Signed: e.Signed, Logged: e.Logged}); err != nil {
			return nil, fmt.Errorf("search: load: entries[%d]: %w", i, err)
		}
	}
	return ix, nil
}
