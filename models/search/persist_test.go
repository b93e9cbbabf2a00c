package search

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func saved(t *testing.T, ix *Index) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := ix.Save(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSaveLoad(t *testing.T) {
	ix := catalogue(t)
	b := saved(t, ix)
	back, err := Load(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if back.Len() != ix.Len() {
		t.Fatalf("Len %d, want %d", back.Len(), ix.Len())
	}
	if again := saved(t, back); !bytes.Equal(again, b) {
		t.Errorf("saving the loaded index gives other bytes")
	}
	for _, query := range []string{"task:text-classification lang:es domain:legal f1>=0.90 license:open-weights", "legal", ""} {
		q, _ := ParseQuery(query)
		q.AllVersions = true
		if got, want := back.Search(q, 0), ix.Search(q, 0); !reflect.DeepEqual(got, want) {
			t.Errorf("%q after Load:\n%+v\nwant\n%+v", query, got, want)
		}
	}
}

func TestLoadRejects(t *testing.T) {
	b := saved(t, catalogue(t))
	s := string(b)
	n := int64(len(b))
	for _, c := range []struct {
		name string
		in   string
		max  int64
		want error
	}{
		{"truncated", s[:len(s)/2], n, ErrFormat},
		{"truncated by one", s[:len(s)-2], n, ErrFormat},
		{"over the bound", s, n - 1, ErrTooLarge},
		{"empty", "", n, ErrFormat},
		{"trailing data", s + "{}", n + 2, ErrFormat},
		{"other format", strings.Replace(s, Format, "accord.model.search/v9", 1), n, ErrFormat},
		{"unknown field", strings.Replace(s, `"format"`, `"extra":1,"format"`, 1), n + 10, ErrFormat},
		{"null manifest", `{"format":"` + Format + `","entries":[{"manifest":null,"digest":"` + dg("x") + `"}]}`, n, ErrFormat},
		{"duplicate", `{"format":"` + Format + `","entries":[` + entryJSON(t) + "," + entryJSON(t) + `]}`, n, ErrFormat},
		{"invalid manifest", strings.Replace(s, `"version":"1.2.0"`, `"version":"1.2"`, 1), n, ErrEntry},
		{"invalid digest", strings.Replace(s, dg("gamma"), "sha256:GAMMA", 1), n, ErrEntry},
	} {
		_, err := Load(strings.NewReader(c.in), c.max)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if ix, err := Load(bytes.NewReader(b), math.MaxInt64); err != nil || ix.Len() != 6 {
		t.Errorf("the largest bound: %v", err)
	}
	if _, err := Load(bytes.NewReader(b), 0); err == nil {
		t.Error("a zero byte bound was accepted")
	}
}

// entryJSON is one saved entry.
func entryJSON(t *testing.T) string {
	ix := NewIndex()
	if err := ix.Add(Entry{Manifest: manifest("a/b", "1.0.0", "", nil), Digest: dg("ab")}); err != nil {
		t.Fatal(err)
	}
	s := string(saved(t, ix))
	return s[strings.Index(s, "[")+1 : strings.LastIndex(s, "]")]
}
