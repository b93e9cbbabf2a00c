package search

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/accordmesh/accord/models"
)

// Bounds on a query, so that a hostile one costs little to reject.
const (
	MaxQueryLen   = 512
	MaxQueryTerms = 32
)

// Op is a benchmark comparison.
type Op string

// Comparisons, longest first so that ">=" is not read as ">".
const (
	OpGE Op = ">="
	OpGT Op = ">"
	OpLE Op = "<="
	OpLT Op = "<"
	OpEQ Op = "="
)

var ops = []Op{OpGE, OpLE, OpGT, OpLT, OpEQ}

// holds reports whether value v meets the bound b.
func (o Op) holds(v, b float64) bool {
	switch o {
	case OpGE:
		return v >= b
	case OpGT:
		return v > b
	case OpLE:
		return v <= b
	case OpLT:
		return v < b
	}
	return v == b
}

// better reports whether v is a better result than w under o: higher for
// lower bounds, lower for upper bounds, never for equality.
func (o Op) better(v, w float64) bool {
	switch o {
	case OpGE, OpGT:
		return v > w
	case OpLE, OpLT:
		return v < w
	}
	return false
}

// TagTerm is a key:value term.
type TagTerm struct{ Key, Value string }

func (t TagTerm) String() string { return t.Key + ":" + t.Value }

// BenchTerm is a metric OP number term. Raw is the number as written, kept
// for reasons and String.
type BenchTerm struct {
	Metric string
	Op     Op
	Bound  float64
	Raw    string
}

func (t BenchTerm) String() string { return t.Metric + string(t.Op) + t.Raw }

// TextTerm is a free-text word or quoted phrase: its case-folded tokens in
// order. A word with several tokens (legal-es) is matched as a phrase.
type TextTerm struct {
	Tokens []string
	Quoted bool
}

func (t TextTerm) String() string {
	if t.Quoted {
		return `"` + strings.Join(t.Tokens, " ") + `"`
	}
	return strings.Join(t.Tokens, "-")
}

// Query is a parsed search query. The zero Query matches every entry.
type Query struct {
	Tags       []TagTerm
	Benchmarks []BenchTerm
	Text       []TextTerm
	// AllVersions returns every matching version rather than only the
	// highest matching version of each name.
	AllVersions bool
}

// String is the query in canonical form: tag terms, benchmark terms, then
// text terms, each in the order written. ParseQuery(q.String()) is q.
func (q Query) String() string {
	var parts []string
	for _, t := range q.Tags {
		parts = append(parts, t.String())
	}
	for _, t := range q.Benchmarks {
		parts = append(parts, t.String())
	}
	for _, t := range q.Text {
		parts = append(parts, t.String())
	}
	return strings.Join(parts, " ")
}

// QueryError names the term a query was refused at: its 1-based number, its
// byte offset in the query and its text.
type QueryError struct {
	Term int
	Pos  int
	Text string
	Msg  string
}

func (e *QueryError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("search: query at byte %d: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("search: query term %d at byte %d %q: %s", e.Term, e.Pos, clip(e.Text), e.Msg)
}

// Unwrap makes errors.Is(err, ErrQuery) hold.
func (e *QueryError) Unwrap() error { return ErrQuery }

// metricRE is the models package's metric rule (manifest benchmarks).
var (
	metricRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.@-]{0,63}$`)
	numberRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$`)
)

// ParseQuery parses a query: at most MaxQueryLen bytes of valid UTF-8
// without control characters (space and tab separate terms), at most
// MaxQueryTerms terms, no term twice.
func ParseQuery(s string) (Query, error) {
	if len(s) > MaxQueryLen {
		return Query{}, &QueryError{Pos: MaxQueryLen, Msg: fmt.Sprintf("query longer than %d bytes", MaxQueryLen)}
	}
	if err := checkChars(s); err != nil {
		return Query{}, err
	}
	raw, err := splitTerms(s)
	if err != nil {
		return Query{}, err
	}
	var q Query
	seen := map[string]bool{}
	for i, r := range raw {
		canon, err := q.addTerm(r.text)
		if err != nil {
			return Query{}, &QueryError{Term: i + 1, Pos: r.pos, Text: r.text, Msg: err.Error()}
		}
		if seen[canon] {
			return Query{}, &QueryError{Term: i + 1, Pos: r.pos, Text: r.text, Msg: "term given twice"}
		}
		seen[canon] = true
	}
	return q, nil
}

// checkChars refuses invalid UTF-8 and control characters other than the
// space and tab separators.
func checkChars(s string) error {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return &QueryError{Pos: i, Msg: "invalid UTF-8"}
		case r == '\t':
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			return &QueryError{Pos: i, Msg: fmt.Sprintf("control character %U", r)}
		}
	}
	return nil
}

type rawTerm struct {
	text string
	pos  int
}

// splitTerms splits at spaces and tabs; a term that starts with a double
// quote runs to the next double quote. A quote anywhere else is refused.
func splitTerms(s string) ([]rawTerm, error) {
	var out []rawTerm
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		start := i
		if s[i] == '"' {
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return nil, &QueryError{Term: len(out) + 1, Pos: start, Text: s[start:], Msg: "unterminated quoted phrase"}
			}
			i += end + 2
			if i < len(s) && s[i] != ' ' && s[i] != '\t' {
				return nil, &QueryError{Term: len(out) + 1, Pos: start, Text: s[start:], Msg: "a quoted phrase must be followed by a space"}
			}
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' {
				i++
			}
		}
		if len(out) == MaxQueryTerms {
			return nil, &QueryError{Term: len(out) + 1, Pos: start, Text: s[start:i], Msg: fmt.Sprintf("more than %d terms", MaxQueryTerms)}
		}
		out = append(out, rawTerm{text: s[start:i], pos: start})
	}
	return out, nil
}

// addTerm classifies one term, adds it to q and returns its canonical form.
func (q *Query) addTerm(t string) (string, error) {
	switch {
	case t[0] == '"':
		return q.addText(t[1:len(t)-1], true)
	case strings.ContainsRune(t, '"'):
		return "", fmt.Errorf("a double quote may only open a phrase")
	case strings.ContainsRune(t, ':'):
		return q.addTag(t)
	case strings.ContainsAny(t, "<>="):
		return q.addBench(t)
	}
	return q.addText(t, false)
}

func (q *Query) addTag(t string) (string, error) {
	key, value, _ := strings.Cut(t, ":")
	if _, ok := models.TagKeys[key]; !ok {
		return "", fmt.Errorf("unknown tag key %q (want one of %s)", clip(key), strings.Join(tagKeyNames(), ", "))
	}
	if _, _, err := models.ParseTag(t); err != nil {
		return "", err
	}
	tt := TagTerm{Key: key, Value: value}
	q.Tags = append(q.Tags, tt)
	return tt.String(), nil
}

func (q *Query) addBench(t string) (string, error) {
	at := strings.IndexAny(t, "<>=")
	metric, rest := t[:at], t[at:]
	var op Op
	for _, o := range ops {
		if strings.HasPrefix(rest, string(o)) {
			op = o
			break
		}
	}
	if op == "" {
		return "", fmt.Errorf("want metric>=number, >, <=, < or =")
	}
	if !metricRE.MatchString(metric) {
		return "", fmt.Errorf("metric %q is not 1-64 lowercase letters, digits and _.@- starting with a letter or digit", clip(metric))
	}
	num := rest[len(op):]
	if !numberRE.MatchString(num) {
		return "", fmt.Errorf("%q is not a decimal number", clip(num))
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return "", fmt.Errorf("%q is not a finite number", clip(num))
	}
	bt := BenchTerm{Metric: metric, Op: op, Bound: v, Raw: num}
	q.Benchmarks = append(q.Benchmarks, bt)
	return bt.Metric + string(bt.Op) + strconv.FormatFloat(v, 'g', -1, 64), nil
}

func (q *Query) addText(t string, quoted bool) (string, error) {
	toks := tokenize(t, nil)
	if len(toks) == 0 {
		return "", fmt.Errorf("no letters or digits to search for")
	}
	q.Text = append(q.Text, TextTerm{Tokens: toks, Quoted: quoted})
	// legal and "legal" search for the same thing: one key for both.
	return strings.Join(toks, " "), nil
}

// tokenize appends the case-folded runs of letters and digits of s to out.
func tokenize(s string, out []string) []string {
	start := -1
	for i, r := range s {
		alnum := unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case alnum && start < 0:
			start = i
		case !alnum && start >= 0:
			out = append(out, fold(s[start:i]))
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, fold(s[start:]))
	}
	return out
}

// fold lower-cases a token, without allocating when it is already lower
// case ASCII (names always are).
func fold(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
			return strings.ToLower(s)
		}
	}
	return s
}

func tagKeyNames() []string {
	ks := make([]string, 0, len(models.TagKeys))
	for k := range models.TagKeys {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// clip shortens hostile strings echoed in errors.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return "…"
}
