package search

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Query
	}{
		{"", Query{}},
		{"  \t ", Query{}},
		{"task:text-classification lang:es domain:legal f1>=0.90 license:open-weights", Query{
			Tags:       []TagTerm{{"task", "text-classification"}, {"lang", "es"}, {"domain", "legal"}, {"license", "open-weights"}},
			Benchmarks: []BenchTerm{{Metric: "f1", Op: OpGE, Bound: 0.9, Raw: "0.90"}},
		}},
		{"acc>.5 loss<1e-3 latency_ms<=20 bleu=30 x@k>-2", Query{Benchmarks: []BenchTerm{
			{"acc", OpGT, 0.5, ".5"}, {"loss", OpLT, 1e-3, "1e-3"}, {"latency_ms", OpLE, 20, "20"},
			{"bleu", OpEQ, 30, "30"}, {"x@k", OpGT, -2, "-2"},
		}}},
		{`Legal "Contract  Law" lang:pt-BR legal-ES`, Query{
			Tags: []TagTerm{{"lang", "pt-BR"}},
			Text: []TextTerm{{Tokens: []string{"legal"}}, {Tokens: []string{"contract", "law"}, Quoted: true}, {Tokens: []string{"legal", "es"}}},
		}},
		{"Español ÉTÉ", Query{Text: []TextTerm{{Tokens: []string{"español"}}, {Tokens: []string{"été"}}}}},
	} {
		got, err := ParseQuery(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.in, got, c.want)
		}
		again, err := ParseQuery(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("%q: String %q does not parse back: %v %+v", c.in, got.String(), err, again)
		}
	}
}

func TestParseQueryRejects(t *testing.T) {
	terms := func(n int) string { return strings.Repeat("a ", n) }
	for _, c := range []struct {
		in        string
		term, pos int
		msg       string
	}{
		{strings.Repeat("a", MaxQueryLen+1), 0, MaxQueryLen, "longer than 512 bytes"},
		{strings.Repeat("legal ", 100)[:MaxQueryLen+1], 0, MaxQueryLen, "longer than"},
		{terms(MaxQueryTerms) + "zz", 33, 64, "more than 32 terms"},
		{"lang:es foo:bar", 2, 8, `unknown tag key "foo" (want one of domain, framework, lang, license, modality, task)`},
		{"http://example.com", 1, 0, `unknown tag key "http"`},
		{"Task:translation", 1, 0, `unknown tag key "Task"`},
		{"task:nope", 1, 0, `"nope" is not a known task`},
		{"lang:ES", 1, 0, "not a language tag"},
		{"domain:", 1, 0, "not 1-40 lowercase"},
		{"a\x00b", 0, 1, "control character U+0000"},
		{"a\nb", 0, 1, "control character U+000A"},
		{"ok \x7f", 0, 3, "control character U+007F"},
		{"x \u0085", 0, 2, "control character U+0085"},
		{"x \u2028", 0, 2, "control character U+2028"},
		{"ab \xff\xfe", 0, 3, "invalid UTF-8"},
		{"f1>=NaN", 1, 0, `"NaN" is not a decimal number`},
		{"f1>=Inf", 1, 0, `"Inf" is not a decimal number`},
		{"f1<=-infinity", 1, 0, "not a decimal number"},
		{"f1>=1e999", 1, 0, `"1e999" is not a finite number`},
		{"f1>=1e9999", 1, 0, "not a decimal number"},
		{"f1>=0x1p-2", 1, 0, "not a decimal number"},
		{"f1>=1_0", 1, 0, "not a decimal number"},
		{"f1>=", 1, 0, `"" is not a decimal number`},
		{"f1=>0.9", 1, 0, `">0.9" is not a decimal number`},
		{"f1==0.9", 1, 0, "not a decimal number"},
		{">=0.9", 1, 0, `metric "" is not`},
		{"F1>=0.9", 1, 0, `metric "F1" is not`},
		{"_f1>=0.9", 1, 0, `metric "_f1"`},
		{strings.Repeat("m", 65) + ">1", 1, 0, "is not 1-64"},
		{`legal "contract law`, 2, 6, "unterminated quoted phrase"},
		{`"a"b`, 1, 0, "must be followed by a space"},
		{`a"b`, 1, 0, "a double quote may only open a phrase"},
		{`""`, 1, 0, "no letters or digits"},
		{`" - "`, 1, 0, "no letters or digits"},
		{"---", 1, 0, "no letters or digits"},
		{"lang:es lang:es", 2, 8, "term given twice"},
		{"f1>=0.9 f1>=0.90", 2, 8, "term given twice"},
		{`Legal "legal"`, 2, 6, "term given twice"},
	} {
		_, err := ParseQuery(c.in)
		var qe *QueryError
		if !errors.As(err, &qe) || !errors.Is(err, ErrQuery) {
			t.Errorf("%q: %v, want a *QueryError", clip(c.in), err)
			continue
		}
		if qe.Term != c.term || qe.Pos != c.pos || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: term %d pos %d %q, want term %d pos %d containing %q", clip(c.in), qe.Term, qe.Pos, err, c.term, c.pos, c.msg)
		}
		if len(err.Error()) > 700 {
			t.Errorf("%q: error of %d bytes echoes the input", clip(c.in), len(err.Error()))
		}
	}
}

func TestQueryErrorText(t *testing.T) {
	_, err := ParseQuery("lang:es foo:bar")
	want := `search: query term 2 at byte 8 "foo:bar": unknown tag key "foo" (want one of domain, framework, lang, license, modality, task)`
	if err == nil || err.Error() != want {
		t.Errorf("%v\nwant %s", err, want)
	}
}
