package specs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// MaxFileSize is the largest spec file Accord reads (4 MiB).
const MaxFileSize = 4 << 20

// maxDepth bounds how deeply YAML values may nest. The deepest legitimate
// path (verification.tests[].metrics[].value) is six levels down.
const maxDepth = 32

// sectionNames are the well-known level-2 headings whose fenced yaml blocks
// are machine content, keyed by their lower-case heading text.
var sectionNames = []string{"tasks", "defaults", "placement", "budget", "negotiation", "verification", "settlement", "approval", "service"}

// frontKeys are the keys the YAML front matter may hold.
var frontKeys = []string{"accord", "name", "version", "tenant", "owner", "description", "labels", "tags", "extends", "imports"}

// document is one spec file split into its machine content: a root mapping
// whose keys are the front-matter keys and the section names.
type document struct {
	file   string
	digest string
	root   *node
	// incomplete is set when part of the file could not be read at all
	// (bad encoding, YAML syntax errors, unclosed blocks); checks for
	// missing content are then skipped, as they would only add noise.
	incomplete bool
}

var (
	headingRE  = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	fenceRE    = regexp.MustCompile("^( {0,3})(`{3,}|~{3,})(.*)$")
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// parseDocument splits a Markdown spec into front matter and sections and
// parses their YAML. Problems go to e; what could be read is returned.
func parseDocument(file string, data []byte, e *errs) *document {
	doc := &document{file: file, digest: digestBytes(data), root: &node{kind: kindMap, pos: Pos{File: file, Line: 1, Col: 1}}}
	if len(data) > MaxFileSize {
		e.add(Pos{File: file}, "spec is larger than the %d-byte (4 MiB) limit", MaxFileSize)
		doc.incomplete = true
		return doc
	}
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, size := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			off += size
		}
		line := 1 + bytes.Count(data[:off], []byte("\n"))
		col := off - bytes.LastIndexByte(data[:off], '\n')
		e.add(Pos{File: file, Line: line, Col: col}, "spec is not valid UTF-8 (invalid byte 0x%02x at offset %d)", data[off], off)
		doc.incomplete = true
		return doc
	}
	if bytes.IndexByte(data, 0) >= 0 {
		off := bytes.IndexByte(data, 0)
		line := 1 + bytes.Count(data[:off], []byte("\n"))
		e.add(Pos{File: file, Line: line, Col: off - bytes.LastIndexByte(data[:off], '\n')}, "spec contains a NUL byte")
		doc.incomplete = true
		return doc
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}

	i := 0
	if len(lines) > 0 && strings.TrimRight(lines[0], " \t") == "---" {
		end := -1
		for j := 1; j < len(lines); j++ {
			if t := strings.TrimRight(lines[j], " \t"); t == "---" || t == "..." {
				end = j
				break
			}
		}
		if end < 0 {
			e.add(Pos{File: file, Line: 1, Col: 1}, "front matter is not closed (no --- line after it)")
			doc.incomplete = true
			return doc
		}
		fm := parseYAML(file, strings.Join(lines[1:end], "\n"), 1, 0, e, &doc.incomplete)
		if fm != nil {
			if fm.kind != kindMap {
				e.add(fm.pos, "front matter must be a mapping of keys to values")
			} else {
				for k, key := range fm.keys {
					if isSection(key.value) {
						e.add(key.pos, "%q belongs in a \"## %s\" section, not in the front matter", key.value, title(key.value))
						continue
					}
					if !contains(frontKeys, key.value) {
						e.add(key.pos, "unknown front matter key %q%s", key.value, suggest(key.value, frontKeys))
						continue
					}
					doc.root.set(key, fm.vals[k])
				}
			}
		}
		i = end + 1
	}

	section := ""        // current well-known section, "" outside one
	unknownHeading := "" // text of the current unknown level-2 heading
	var headingPos Pos
	sections := map[string]*node{}
	for ; i < len(lines); i++ {
		line := lines[i]
		if m := fenceRE.FindStringSubmatch(line); m != nil && !(m[2][0] == '`' && strings.Contains(m[3], "`")) {
			indent, fence, info := len(m[1]), m[2], strings.TrimSpace(m[3])
			start := i
			end := -1
			for j := i + 1; j < len(lines); j++ {
				t := strings.TrimLeft(lines[j], " ")
				if len(lines[j])-len(t) <= 3 && strings.HasPrefix(t, fence) && strings.Trim(strings.TrimRight(t, " \t"), fence[:1]) == "" {
					end = j
					break
				}
			}
			lang := strings.ToLower(strings.Fields(info + " x")[0])
			isYAML := lang == "yaml" || lang == "yml"
			if end < 0 {
				if isYAML && section != "" {
					e.add(Pos{File: file, Line: start + 1, Col: indent + 1}, "unclosed %s%s fence", fence, lang)
					doc.incomplete = true
				}
				break
			}
			i = end
			if !isYAML {
				continue
			}
			if section == "" {
				if unknownHeading != "" {
					if s := suggest(unknownHeading, sectionTitles()); s != "" {
						e.add(headingPos, "yaml block under unknown section %q%s", unknownHeading, s)
					}
				}
				continue
			}
			body := make([]string, 0, end-start-1)
			for _, l := range lines[start+1 : end] {
				n := 0
				for n < indent && n < len(l) && l[n] == ' ' {
					n++
				}
				body = append(body, l[n:])
			}
			v := parseYAML(file, strings.Join(body, "\n"), start+1, indent, e, &doc.incomplete)
			if v == nil {
				continue
			}
			if v.kind != kindMap {
				e.add(v.pos, "a yaml block under \"## %s\" must be a mapping", title(section))
				continue
			}
			s := sections[section]
			if s == nil {
				s = &node{kind: kindMap, pos: v.pos}
				sections[section] = s
				doc.root.set(&node{kind: kindScalar, tag: "!!str", value: section, pos: headingPos}, s)
			}
			for k, key := range v.keys {
				if prev := s.get(key.value); prev != nil {
					what := "key"
					if section == "tasks" {
						what = "task"
					}
					e.add(key.pos, "duplicate %s %q (first defined at %s)", what, key.value, s.keyPos(key.value))
					continue
				}
				s.set(key, v.vals[k])
			}
			continue
		}
		if m := headingRE.FindStringSubmatch(line); m != nil {
			level := len(m[1])
			if level > 2 {
				continue
			}
			section, unknownHeading = "", ""
			if level == 2 {
				text := strings.TrimSpace(m[2])
				headingPos = Pos{File: file, Line: i + 1, Col: strings.Index(line, "#") + 1}
				if isSection(text) {
					section = strings.ToLower(text)
				} else {
					unknownHeading = text
				}
			}
		}
	}
	return doc
}

// parseYAML parses one YAML document whose first line is line lineOff+1 of
// the file and whose columns are shifted by colOff.
func parseYAML(file, src string, lineOff, colOff int, e *errs, incomplete *bool) (out *node) {
	defer func() {
		if r := recover(); r != nil {
			*incomplete = true
			e.add(Pos{File: file, Line: lineOff + 1, Col: colOff + 1}, "yaml: cannot parse: %v", r)
			out = nil
		}
	}()
	dec := yaml.NewDecoder(strings.NewReader(src))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		msg := err.Error()
		p := Pos{File: file, Line: lineOff + 1, Col: colOff + 1}
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			l, _ := strconv.Atoi(m[1])
			msg = m[2]
			if zeroBasedYAMLError(msg) {
				l++
			}
			p.Line = lineOff + l
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		if line, col, ok := tabIndent(src, p.Line-lineOff, msg); ok {
			e.add(Pos{File: file, Line: lineOff + line, Col: colOff + col}, tabMessage)
			*incomplete = true
			return nil
		}
		e.add(p, "yaml: %s", msg)
		*incomplete = true
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		e.add(Pos{File: file, Line: lineOff + extra.Line, Col: 1}, "yaml: only one YAML document is allowed per block")
	}
	c := converter{file: file, lineOff: lineOff, colOff: colOff, e: e}
	y := &n
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		y = n.Content[0]
	}
	out = c.convert(y, 1)
	if c.deep {
		*incomplete = true
		return nil
	}
	return out
}

func isSection(heading string) bool {
	return contains(sectionNames, strings.ToLower(strings.TrimSpace(heading)))
}

func sectionTitles() []string {
	t := make([]string, len(sectionNames))
	for i, s := range sectionNames {
		t[i] = title(s)
	}
	return t
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// zeroBasedYAMLError reports whether yaml.v3 gives the line of this error
// 0-based: it adds one only for scanner errors, not for parser errors.
func zeroBasedYAMLError(msg string) bool {
	for _, p := range []string{
		"did not find expected key", "did not find expected '-' indicator",
		"did not find expected node content", "did not find expected ',' or",
		"did not find expected <document start>", "found duplicate %", "found incompatible YAML document",
		"found undefined tag handle",
	} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
