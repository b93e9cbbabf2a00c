package search

import (
	"reflect"
	"sync"
	"testing"
)

var (
	fuzzOnce  sync.Once
	fuzzIndex *Index
)

// FuzzParseQuery: no input panics; an accepted query is within the bounds,
// its canonical String parses back to the same query, and searching with it
// never panics and returns every result with reasons.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"task:text-classification lang:es domain:legal f1>=0.90 license:open-weights",
		`legal "contract law" lang:pt-BR acc<.5 loss<=1e-3 x=0`,
		"f1>=NaN", "a\x00", `"unterminated`, "lang:es-419 Español", "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			return
		}
		if n := len(q.Tags) + len(q.Benchmarks) + len(q.Text); n > MaxQueryTerms || len(s) > MaxQueryLen {
			t.Fatalf("accepted %d terms, %d bytes", n, len(s))
		}
		again, err := ParseQuery(q.String())
		if err != nil || !reflect.DeepEqual(again, q) {
			t.Fatalf("%q: canonical %q parses to %+v, %v", s, q.String(), again, err)
		}
		fuzzOnce.Do(func() { fuzzIndex = catalogue(t) })
		for _, r := range fuzzIndex.Search(q, 0) {
			if len(r.Reasons) == 0 {
				t.Fatalf("%s without reasons", r.Ref)
			}
		}
	})
}
