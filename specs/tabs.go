package specs

import "strings"

// tabIndent finds the tab behind a YAML error at line (1-based) of src and
// returns its line and column: one in the indentation of that line, or of
// the next when the parser's message mentions a tab (it reports some a
// line early). YAML indents with spaces only, and the parser's messages do
// not always say so ("found character that cannot start any token").
func tabIndent(src string, line int, msg string) (int, int, bool) {
	lines := strings.Split(src, "\n")
	try := []int{line}
	if strings.Contains(msg, "tab") {
		try = append(try, line+1)
	}
	for _, n := range try {
		if n < 1 || n > len(lines) {
			continue
		}
		l := lines[n-1]
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if i := strings.IndexByte(indent, '\t'); i >= 0 {
			return n, i + 1, true
		}
	}
	return 0, 0, false
}

// tabMessage is the error for a YAML line indented with a tab.
const tabMessage = "yaml: tab character in indentation (YAML indents with spaces only)"
