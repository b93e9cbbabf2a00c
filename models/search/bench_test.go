package search

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/models"
)

// benchCatalogue is the number of generated manifests searched.
const benchCatalogue = 10000

var benchWords = strings.Fields(`model classifier legal contract medical clinical finance retail news code
	spanish english german french portuguese chinese italian small large fast distilled quantized tuned
	sentiment review tweet invoice report summary translation speech image vision audio embedding search
	question answer table entity token named recognition court law patient note bank risk fraud product
	catalogue query document page chat assistant instruct base adapter merged compact robust multilingual`)

// generate returns n valid entries, the same for the same n: about three
// versions per name, tags, benchmarks and lineage drawn from a seeded
// source.
func generate(n int) []Entry {
	r := rand.New(rand.NewPCG(22, 10000))
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	langs := []string{"es", "en", "de", "fr", "pt-BR", "es-419", "zh-Hant-TW", "it"}
	domains := []string{"legal", "medical", "finance", "retail", "news", "code"}
	out := make([]Entry, n)
	for i := range out {
		id := i / 3
		name := fmt.Sprintf("org%d/%s-%s-%d", id%40, pick(benchWords), pick(benchWords), id)
		desc := make([]string, 8+r.IntN(16))
		for j := range desc {
			desc[j] = pick(benchWords)
		}
		m := manifest(name, fmt.Sprintf("1.%d.0", i%3), strings.Join(desc, " ")+".", nil)
		for _, tag := range []string{"task:" + pick(models.TagTasks), "lang:" + pick(langs), "domain:" + pick(domains),
			"license:" + pick(models.TagLicenses), "modality:text"} {
			t := models.Tag{Tag: tag, AuthorConfidence: float64(r.IntN(11)) / 10}
			if r.IntN(2) == 0 {
				t.AccordConfidence = conf(float64(r.IntN(11)) / 10)
			}
			m.Tags = append(m.Tags, t)
		}
		for _, metric := range []string{"f1", "accuracy", "latency_ms"} {
			v := 0.5 + float64(r.IntN(50))/100
			if metric == "latency_ms" {
				v = float64(5 + r.IntN(200))
			}
			if r.IntN(5) < 2 {
				m.Benchmarks = append(m.Benchmarks, verified(metric, v))
			} else {
				m.Benchmarks = append(m.Benchmarks, unverified(metric, v, "author"))
			}
		}
		if r.IntN(5) < 3 {
			m = withLineage(m)
			if r.IntN(2) == 0 {
				m.Lineage.Receipt = nil
			}
		}
		out[i] = Entry{Manifest: m, Digest: dg(fmt.Sprint(i)), Signed: r.IntN(5) < 3, Logged: r.IntN(2) == 0}
	}
	return out
}

var benchQueries = []string{
	"task:text-classification lang:es domain:legal f1>=0.90 license:open-weights",
	"legal contract",
	`"named entity" lang:de`,
	"task:translation lang:fr latency_ms<=50",
	"f1>=0.95 accuracy>=0.9",
	"domain:finance license:commercial",
}

// naive is the peer: a search that walks every stored manifest per query,
// as a registry-walking search would, decoding and tokenising each one
// again (it skips Validate, which such a search would also have to run, so
// the ratio understates). It ranks with the same rules, so the results are
// the same.
type naive struct {
	raw []json.RawMessage
	ent []Entry // the provenance facts, which live beside the manifest
}

func newNaive(tb testing.TB, es []Entry) *naive {
	n := &naive{ent: es}
	for _, e := range es {
		b, err := json.Marshal(e.Manifest)
		if err != nil {
			tb.Fatal(err)
		}
		n.raw = append(n.raw, b)
	}
	return n
}

func (n *naive) search(q Query, limit int) []Result {
	docs := make([]*doc, len(n.raw))
	latest := map[string]models.Version{}
	for i, b := range n.raw {
		var m models.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			panic(err)
		}
		e := n.ent[i]
		e.Manifest = &m
		docs[i] = newDoc(e)
		if v, ok := latest[m.Name]; !ok || docs[i].version.Compare(v) > 0 {
			latest[m.Name] = docs[i].version
		}
	}
	return rank(docs, q, limit, latest)
}

func parsedBenchQueries(tb testing.TB) []Query {
	qs := make([]Query, len(benchQueries))
	for i, s := range benchQueries {
		q, err := ParseQuery(s)
		if err != nil {
			tb.Fatal(err)
		}
		qs[i] = q
	}
	return qs
}

// BenchmarkSearch measures ns/query over benchCatalogue generated
// manifests for the index and for the naive peer in the same run, after
// checking that both return the same results, and prints the ratio.
// make bench-models-search runs it.
func BenchmarkSearch(b *testing.B) {
	es := generate(benchCatalogue)
	ix := NewIndex()
	for _, e := range es {
		if err := ix.Add(e); err != nil {
			b.Fatal(err)
		}
	}
	peer := newNaive(b, es)
	qs := parsedBenchQueries(b)
	for i, q := range qs {
		got, want := ix.Search(q, 20), peer.search(q, 20)
		if len(got) == 0 || !reflect.DeepEqual(got, want) {
			b.Fatalf("%q: index and peer disagree (%d and %d results)", benchQueries[i], len(got), len(want))
		}
	}
	perQuery := map[string]float64{}
	for _, c := range []struct {
		name   string
		search func(Query, int) []Result
	}{{"index", ix.Search}, {"naive", peer.search}} {
		b.Run(c.name, func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				for _, q := range qs {
					c.search(q, 20)
				}
			}
			ns := float64(time.Since(start).Nanoseconds()) / float64(b.N*len(qs))
			perQuery[c.name] = ns
			b.ReportMetric(ns, "ns/query")
		})
	}
	if perQuery["index"] > 0 {
		fmt.Printf("search over %d manifests, %d queries: index %.0f ns/query, naive scan %.0f ns/query, naive/index %.1fx\n",
			benchCatalogue, len(qs), perQuery["index"], perQuery["naive"], perQuery["naive"]/perQuery["index"])
	}
}

// TestGenerateDeterministic: the benchmark's catalogue is the same every
// run, valid, and every benchmark query finds something.
func TestGenerateDeterministic(t *testing.T) {
	a, b := generate(300), generate(300)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("generate is not deterministic")
	}
	ix := NewIndex()
	for _, e := range a {
		if err := ix.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	peer := newNaive(t, a)
	for i, q := range parsedBenchQueries(t) {
		got, want := ix.Search(q, 20), peer.search(q, 20)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: index and naive peer disagree:\n%v\n%v", benchQueries[i], refs(got), refs(want))
		}
	}
}
