package specs

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalid is wrapped by every error that reports a problem in a spec
// document (as opposed to an I/O failure); check it with errors.Is.
var ErrInvalid = errors.New("specs: invalid spec")

// Error is one problem at one place in a spec file.
type Error struct {
	Pos     Pos    `json:"-"`
	Message string `json:"message"`
}

// Error formats the problem as "file:line:col: message".
func (e Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Pos.File, e.Pos.Line, e.Pos.Col, e.Message)
}

// ErrorList is every problem found in a spec and the files it composes,
// sorted by file, line and column. It wraps ErrInvalid.
type ErrorList []Error

// Error joins the problems, one per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is(err, ErrInvalid) succeed.
func (l ErrorList) Unwrap() error { return ErrInvalid }

// Errors returns the problems in err if it is (or wraps) an ErrorList, or nil.
func Errors(err error) ErrorList {
	var l ErrorList
	if errors.As(err, &l) {
		return l
	}
	return nil
}

// maxErrors bounds how many problems one load reports, so that a hostile
// document cannot make the error list itself enormous.
const maxErrors = 200

// errs collects problems while a spec is read.
type errs struct {
	list  ErrorList
	seen  map[Error]bool
	extra int
}

func (e *errs) add(p Pos, format string, a ...any) {
	er := Error{Pos: p, Message: fmt.Sprintf(format, a...)}
	if p.Line < 1 {
		er.Pos.Line = 1
	}
	if p.Col < 1 {
		er.Pos.Col = 1
	}
	if e.seen == nil {
		e.seen = map[Error]bool{}
	}
	if e.seen[er] {
		return
	}
	e.seen[er] = true
	if len(e.list) >= maxErrors {
		e.extra++
		return
	}
	e.list = append(e.list, er)
}

// err returns the sorted list, or nil when there is no problem.
func (e *errs) err() error {
	if len(e.list) == 0 {
		return nil
	}
	l := append(ErrorList(nil), e.list...)
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return l[i].Message < l[j].Message
	})
	if e.extra > 0 {
		last := l[len(l)-1].Pos
		l = append(l, Error{Pos: last, Message: fmt.Sprintf("too many errors (%d more not shown)", e.extra)})
	}
	return l
}

// suggest returns ` (did you mean "x"?)` for the closest candidate within a
// small edit distance of s, or "".
func suggest(s string, candidates []string) string {
	if len(candidates) > maxSuggestCandidates {
		return "" // keep error reporting linear on huge specs
	}
	best, bestD := "", 1<<30
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) > 8 {
		limit = 3
	}
	if best == "" || bestD > limit || bestD >= len(s) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// maxSuggestCandidates bounds the names "did you mean" compares against.
const maxSuggestCandidates = 1000

// editDistance is the Levenshtein distance between a and b, computed on
// bytes; inputs are short keys, and long ones are cut off for cost.
func editDistance(a, b string) int {
	const maxLen = 64
	if len(a) > maxLen {
		a = a[:maxLen]
	}
	if len(b) > maxLen {
		b = b[:maxLen]
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
