package search

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/accordmesh/accord/models"
)

// Ranking weights. A result's score is the sum of its contributions; the
// weights are chosen so that the order of the questions a user asks holds:
// a verified benchmark outweighs an unverified one whatever the margin, a
// confidently matched tag outweighs a single provenance fact, and text in
// the name outweighs text in the description.
const (
	// VerifiedWeight and UnverifiedWeight score a benchmark term met by a
	// verified and an unverified result.
	VerifiedWeight   = 3.0
	UnverifiedWeight = 1.0
	// MarginWeight is the most a result's margin over the bound adds: the
	// margin |value-bound| / max(|bound|, 1), capped at 1, times this.
	// Below VerifiedWeight-UnverifiedWeight, so a margin never lifts an
	// unverified result over a verified one.
	MarginWeight = 0.5
	// TagWeight times the tag's confidence is what a matched tag adds.
	TagWeight = 2.0
	// AuthorDiscount scales an author's confidence that Accord has not
	// checked.
	AuthorDiscount = 0.5
	// NameWeight and DescriptionWeight score a text term found in the name
	// and (only) in the description.
	NameWeight        = 1.0
	DescriptionWeight = 0.5
	// ProvenanceWeight is what each provenance fact adds (six in all).
	ProvenanceWeight = 0.5
)

// Result is one ranked model version. Reasons has one line per
// contribution to Score, highest first; facts that scored nothing (a
// missing receipt, an unmatched tag) come last.
type Result struct {
	Ref     string   `json:"ref"`
	Digest  string   `json:"digest"`
	Score   float64  `json:"score"`
	Reasons []string `json:"reasons"`
}

// contribution is one part of a score and, when explaining, why.
type contribution struct {
	pts    float64
	reason string
}

// scorer accumulates a score and, when explain is set, its reasons.
type scorer struct {
	explain bool
	score   float64
	parts   []contribution
}

// add adds pts and reports whether the caller should say why (with why):
// the reasons are formatted only when explaining, so that scoring a
// candidate allocates nothing.
func (s *scorer) add(pts float64) bool {
	s.score += pts
	if s.explain {
		s.parts = append(s.parts, contribution{pts: pts})
	}
	return s.explain
}

// why sets the reason of the last contribution.
func (s *scorer) why(format string, args ...any) {
	s.parts[len(s.parts)-1].reason = fmt.Sprintf(format, args...)
}

// reasons orders the contributions by points, highest first, keeping the
// order they were added in among equals.
func (s *scorer) reasons() []string {
	slices.SortStableFunc(s.parts, func(a, b contribution) int { return cmp.Compare(b.pts, a.pts) })
	out := make([]string, len(s.parts))
	for i, p := range s.parts {
		out[i] = fmt.Sprintf("%s: %+.2f", p.reason, p.pts)
	}
	return out
}

// evaluate scores d against q, whose tag terms are tagKeys; ok is false
// when d fails a filter.
func evaluate(d *doc, q Query, tagKeys []string, s *scorer) (ok bool) {
	for _, b := range q.Benchmarks {
		if !scoreBench(d, b, s) {
			return false
		}
	}
	for _, t := range q.Text {
		if !scoreText(d, t, s) {
			return false
		}
	}
	matched := 0
	for _, key := range tagKeys {
		if scoreTag(d, key, s) {
			matched++
		}
	}
	if matched == 0 && len(q.Tags) > 0 && len(q.Benchmarks) == 0 && len(q.Text) == 0 {
		return false
	}
	scoreProvenance(d, s)
	return true
}

// scoreBench finds the result for b's metric that counts: verified before
// unverified, then the best value; it must meet the bound.
func scoreBench(d *doc, t BenchTerm, s *scorer) bool {
	var best *models.Benchmark
	for i := range d.benches[t.Metric] {
		b := &d.benches[t.Metric][i]
		if !t.Op.holds(b.Value, t.Bound) {
			continue
		}
		if best == nil || b.Verified && !best.Verified ||
			b.Verified == best.Verified && t.Op.better(b.Value, best.Value) {
			best = b
		}
	}
	if best == nil {
		return false
	}
	margin := min(math.Abs(best.Value-t.Bound)/max(math.Abs(t.Bound), 1), 1)
	if best.Verified {
		if s.add(VerifiedWeight + MarginWeight*margin) {
			s.why("%s %s %s %s, verified", t.Metric, num(best.Value), t.Op, t.Raw)
		}
	} else if s.add(UnverifiedWeight + MarginWeight*margin) {
		s.why("%s %s %s %s, unverified, measured by %s", t.Metric, num(best.Value), t.Op, t.Raw, best.MeasuredBy)
	}
	return true
}

// scoreText finds a word or phrase in the name, else the description.
func scoreText(d *doc, t TextTerm, s *scorer) bool {
	where := uint8(0)
	if len(t.Tokens) == 1 {
		where = d.words[t.Tokens[0]]
	} else {
		if contains(d.nameToks, t.Tokens) {
			where |= inName
		}
		if where == 0 && contains(d.descToks, t.Tokens) {
			where |= inDesc
		}
	}
	switch {
	case where&inName != 0:
		if s.add(NameWeight) {
			s.why("text %s in name", quote(t))
		}
	case where&inDesc != 0:
		if s.add(DescriptionWeight) {
			s.why("text %s in description", quote(t))
		}
	default:
		return false
	}
	return true
}

func quote(t TextTerm) string { return `"` + strings.Join(t.Tokens, " ") + `"` }

// contains reports whether seq occurs in toks as a consecutive run.
func contains(toks, seq []string) bool {
	for i := 0; i+len(seq) <= len(toks); i++ {
		if slices.Equal(toks[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

func scoreTag(d *doc, key string, s *scorer) bool {
	h, ok := d.tags[key]
	if !ok {
		if s.add(0) {
			s.why("tag %s not matched", key)
		}
		return false
	}
	via := ""
	if h.tag != key {
		via = " via " + h.tag
	}
	if h.acc != nil {
		if s.add(TagWeight * *h.acc) {
			s.why("tag %s matched%s (accord %s)", key, via, num(*h.acc))
		}
	} else {
		if s.add(TagWeight * h.conf * AuthorDiscount) {
			s.why("tag %s matched%s (author %s, unchecked)", key, via, num(h.conf))
		}
	}
	return true
}

// scoreProvenance adds ProvenanceWeight for each fact present and a
// zero-point "missing:" reason for each one absent.
func scoreProvenance(d *doc, s *scorer) {
	e, l := d.entry, d.entry.Manifest.Lineage
	switch {
	case e.Signed && e.Logged:
		if s.add(2 * ProvenanceWeight) {
			s.why("signed and logged")
		}
	case e.Signed:
		if s.add(ProvenanceWeight) {
			s.why("signed")
		}
		if s.add(0) {
			s.why("missing: transparency-log entry")
		}
	case e.Logged:
		if s.add(ProvenanceWeight) {
			s.why("logged")
		}
		if s.add(0) {
			s.why("missing: signature")
		}
	default:
		if s.add(0) {
			s.why("missing: signature and transparency-log entry")
		}
	}
	// Validate requires every parent's digest, so this always holds; it
	// is listed so that a reader sees it was checked.
	if n := len(l.Parents); n > 0 {
		if s.add(ProvenanceWeight) {
			s.why("%d parent(s) pinned by digest", n)
		}
	} else {
		if s.add(ProvenanceWeight) {
			s.why("base model, no parents to pin")
		}
	}
	if l.Receipt != nil {
		if s.add(ProvenanceWeight) {
			s.why("training receipt %s", l.Receipt.JobID)
		}
	} else {
		if s.add(0) {
			s.why("missing: training receipt")
		}
	}
	if n := len(l.Datasets); n > 0 {
		if s.add(ProvenanceWeight) {
			s.why("%d dataset(s) listed", n)
		}
	} else {
		if s.add(0) {
			s.why("missing: datasets")
		}
	}
	if d.verified != "" {
		if s.add(ProvenanceWeight) {
			s.why("verified benchmark %s", d.verified)
		}
	} else {
		if s.add(0) {
			s.why("missing: verified benchmark")
		}
	}
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// Search returns the best matches for q (from ParseQuery), at most limit
// of them (all when limit <= 0), best first.
func (ix *Index) Search(q Query, limit int) []Result {
	ix.mu.RLock()
	if ix.dirty {
		ix.mu.RUnlock()
		ix.mu.Lock()
		if ix.dirty {
			ix.reindex()
		}
		ix.mu.Unlock()
		ix.mu.RLock()
	}
	defer ix.mu.RUnlock()
	ids := ix.candidates(q)
	docs := make([]*doc, len(ids))
	for i, id := range ids {
		docs[i] = ix.docs[id]
	}
	return rank(docs, q, limit, ix.latest)
}

type hit struct {
	d     *doc
	score float64
}

// rank evaluates the candidates, keeps the highest matching version of
// each name unless q.AllVersions, orders them and explains the first
// limit. latest is the highest indexed version of each name.
func rank(docs []*doc, q Query, limit int, latest map[string]models.Version) []Result {
	tagKeys := make([]string, len(q.Tags))
	for i, t := range q.Tags {
		tagKeys[i] = t.String()
	}
	var hits []hit
	best := map[string]int{} // name → index in hits, without AllVersions
	for _, d := range docs {
		s := scorer{}
		if !evaluate(d, q, tagKeys, &s) {
			continue
		}
		h := hit{d, s.score}
		if q.AllVersions {
			hits = append(hits, h)
			continue
		}
		if i, ok := best[d.name]; !ok {
			best[d.name] = len(hits)
			hits = append(hits, h)
		} else if d.version.Compare(hits[i].d.version) > 0 {
			hits[i] = h
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := strings.Compare(a.d.name, b.d.name); c != 0 {
			return c
		}
		return b.d.version.Compare(a.d.version)
	})
	if limit > 0 && len(hits) > limit {
		hits = hits[:limit]
	}
	out := make([]Result, len(hits))
	for i, h := range hits {
		s := scorer{explain: true}
		evaluate(h.d, q, tagKeys, &s)
		if v := latest[h.d.name]; !q.AllVersions && v != h.d.version {
			if s.add(0) {
				s.why("not the latest version: %s does not match", v)
			}
		}
		out[i] = Result{Ref: h.d.ref, Digest: h.d.entry.Digest, Score: s.score, Reasons: s.reasons()}
	}
	return out
}
