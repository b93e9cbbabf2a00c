package search

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/accordmesh/accord/models"
)

// Entry is one published model version as the caller knows it.
type Entry struct {
	Manifest *models.Manifest
	// Digest is the OCI manifest digest the model is pulled by.
	Digest string
	// Signed and Logged are provenance facts the caller has established:
	// the model signature verified, and its entry found in the
	// transparency log.
	Signed, Logged bool
}

// Index is an in-memory search index over model versions. It is safe for
// concurrent use.
type Index struct {
	mu    sync.RWMutex
	docs  []*doc           // by id; replaced entries are overwritten in place
	byRef map[string]int32 // name@version → id
	// The inverted lists are rebuilt by the first Search after an Add.
	dirty   bool
	tokens  map[string][]int32  // name or description token → ids
	tags    map[string][]int32  // tag (and lang:xx for lang:xx-YY) → ids
	metrics map[string][]scored // metric → results ordered by value
	latest  map[string]models.Version
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{byRef: map[string]int32{}}
}

// Add validates the entry and indexes it, replacing an entry with the same
// name@version. The index keeps e.Manifest: the caller must not change it
// afterwards. The inverted lists are rebuilt by the next Search, so adding
// in bulk and then searching costs one rebuild.
func (ix *Index) Add(e Entry) error {
	if err := e.Manifest.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrEntry, err)
	}
	if err := models.CheckDigest(e.Digest); err != nil {
		return fmt.Errorf("%w: %s: digest: %v", ErrEntry, e.Manifest.Ref(), err)
	}
	d := newDoc(e)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if id, ok := ix.byRef[d.ref]; ok {
		ix.docs[id] = d
	} else {
		ix.byRef[d.ref] = int32(len(ix.docs))
		ix.docs = append(ix.docs, d)
	}
	ix.dirty = true
	return nil
}

// Entries returns the indexed entries in the order they were added.
func (ix *Index) Entries() []Entry {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]Entry, len(ix.docs))
	for i, d := range ix.docs {
		out[i] = d.entry
	}
	return out
}

// Len is the number of indexed model versions.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.docs)
}

// reindex rebuilds the inverted lists; ids are appended in increasing order.
func (ix *Index) reindex() {
	ix.tokens = map[string][]int32{}
	ix.tags = map[string][]int32{}
	ix.metrics = map[string][]scored{}
	ix.latest = map[string]models.Version{}
	for i, d := range ix.docs {
		id := int32(i)
		for t := range d.words {
			ix.tokens[t] = append(ix.tokens[t], id)
		}
		for t := range d.tags {
			ix.tags[t] = append(ix.tags[t], id)
		}
		for m, bs := range d.benches {
			for _, b := range bs {
				ix.metrics[m] = append(ix.metrics[m], scored{b.Value, id})
			}
		}
		if v, ok := ix.latest[d.name]; !ok || d.version.Compare(v) > 0 {
			ix.latest[d.name] = d.version
		}
	}
	for _, l := range ix.metrics {
		slices.SortFunc(l, func(a, b scored) int { return cmp.Compare(a.value, b.value) })
	}
	ix.dirty = false
}

// scored is one benchmark result of a doc.
type scored struct {
	value float64
	id    int32
}

// within returns the results of l (ordered by value) that meet t's bound.
func within(l []scored, t BenchTerm) []scored {
	lo, _ := slices.BinarySearchFunc(l, t.Bound, func(s scored, b float64) int { return cmp.Compare(s.value, b) })
	hi := lo
	for hi < len(l) && l[hi].value == t.Bound {
		hi++
	}
	switch t.Op {
	case OpGE:
		return l[lo:]
	case OpGT:
		return l[hi:]
	case OpLE:
		return l[:hi]
	case OpLT:
		return l[:lo]
	}
	return l[lo:hi]
}

// Where a token occurs.
const (
	inName uint8 = 1 << iota
	inDesc
)

// doc is an entry prepared for search: tokens, tags and benchmarks looked
// up by key.
type doc struct {
	entry    Entry
	ref      string
	name     string
	version  models.Version
	nameToks []string // the name's hyphen parts in order, across segments
	descToks []string
	words    map[string]uint8 // every token, segment and the name → inName|inDesc
	tags     map[string]tagHit
	benches  map[string][]models.Benchmark
	verified string // the first verified benchmark's metric, if any
}

// tagHit is a tag of the manifest that a tag term can match.
type tagHit struct {
	tag  string   // the manifest's tag (lang:es-419 for a lang:es term)
	conf float64  // the author's confidence
	acc  *float64 // Accord's confidence, when checked
}

// newDoc prepares a validated entry.
func newDoc(e Entry) *doc {
	m := e.Manifest
	v, _ := models.ParseVersion(m.Version) // validated
	d := &doc{
		entry:   e,
		ref:     m.Ref(),
		name:    m.Name,
		version: v,
		words:   map[string]uint8{},
		tags:    make(map[string]tagHit, len(m.Tags)),
		benches: map[string][]models.Benchmark{},
	}
	d.words[m.Name] |= inName
	for _, seg := range strings.Split(m.Name, "/") {
		d.words[seg] |= inName
		d.nameToks = tokenize(seg, d.nameToks)
	}
	for _, t := range d.nameToks {
		d.words[t] |= inName
	}
	d.descToks = tokenize(m.Description, nil)
	for _, t := range d.descToks {
		d.words[t] |= inDesc
	}
	d.addTags(m.Tags)
	for _, b := range m.Benchmarks {
		d.benches[b.Metric] = append(d.benches[b.Metric], b)
		if b.Verified && d.verified == "" {
			d.verified = b.Metric
		}
	}
	return d
}

// addTags indexes each tag under itself and a regional or scripted lang tag
// also under its bare language, so that lang:es finds lang:es-419. An
// exact tag wins over a variant; among variants the most confident wins.
func (d *doc) addTags(tags []models.Tag) {
	for _, t := range tags {
		d.tags[t.Tag] = tagHit{tag: t.Tag, conf: t.AuthorConfidence, acc: t.AccordConfidence}
	}
	for _, t := range tags {
		base, _, variant := strings.Cut(t.Tag, "-")
		if !strings.HasPrefix(t.Tag, "lang:") || !variant {
			continue
		}
		h := tagHit{tag: t.Tag, conf: t.AuthorConfidence, acc: t.AccordConfidence}
		old, ok := d.tags[base]
		if !ok || (old.tag != base && (h.confidence() > old.confidence() ||
			h.confidence() == old.confidence() && h.tag < old.tag)) {
			d.tags[base] = h
		}
	}
}

// confidence is Accord's confidence when present, else the author's
// discounted by AuthorDiscount.
func (h tagHit) confidence() float64 {
	if h.acc != nil {
		return *h.acc
	}
	return h.conf * AuthorDiscount
}

// allIDs returns the id of every doc.
func (ix *Index) allIDs() []int32 {
	ids := make([]int32, len(ix.docs))
	for i := range ids {
		ids[i] = int32(i)
	}
	return ids
}

// candidates returns the ids worth evaluating: those on the shortest list
// that every match must be on (a text token, or the results meeting a
// benchmark term's bound), else those with at least one of the query's
// tags, else all. The order does not matter: rank sorts.
func (ix *Index) candidates(q Query) []int32 {
	var tokens []int32
	var results []scored
	n, isText := -1, false
	for _, t := range q.Text {
		for _, tok := range t.Tokens {
			if l := ix.tokens[tok]; n < 0 || len(l) < n {
				tokens, n, isText = l, len(l), true
			}
		}
	}
	for _, b := range q.Benchmarks {
		if l := within(ix.metrics[b.Metric], b); n < 0 || len(l) < n {
			results, n, isText = l, len(l), false
		}
	}
	switch {
	case isText:
		return tokens
	case n >= 0:
		// A doc may hold several results for a metric: list it once.
		ids := make([]int32, len(results))
		for i, r := range results {
			ids[i] = r.id
		}
		slices.Sort(ids)
		return slices.Compact(ids)
	case len(q.Tags) == 0:
		return ix.allIDs()
	}
	var ids []int32
	for _, t := range q.Tags {
		ids = append(ids, ix.tags[t.String()]...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
