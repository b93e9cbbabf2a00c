package specs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Document is one file that went into a spec, with the sha256 of its bytes.
type Document struct {
	File   string `json:"file"`
	Digest string `json:"digest"`
}

// Load reads the spec at path, composes it with the files it extends and
// imports, normalises units and validates it. Problems in the spec are
// returned together as an ErrorList (wrapping ErrInvalid); a failure to read
// path itself is returned as a plain wrapped error.
func Load(path string) (*Spec, error) {
	return load(readFile, path)
}

// LoadPlan loads the spec at path and compiles it.
func LoadPlan(path string) (*Plan, error) {
	s, err := Load(path)
	if err != nil {
		return nil, err
	}
	return Compile(s)
}

// Parse reads one spec document from data as if it were the file named
// file. Files it extends or imports are read from disk relative to file.
func Parse(file string, data []byte) (*Spec, error) {
	return load(func(p string) ([]byte, error) {
		if p == filepath.Clean(file) {
			return data, nil
		}
		return readFile(p)
	}, file)
}

// readFile reads at most MaxFileSize+1 bytes, enough to tell that a file is
// too large without reading all of it.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxFileSize+1))
}

type loader struct {
	read func(string) ([]byte, error)
	e    errs
	docs map[string]*document
	list []Document
	// incomplete marks files whose composition could not be completed.
	incomplete map[string]bool
}

func load(read func(string) ([]byte, error), path string) (*Spec, error) {
	path = filepath.Clean(path)
	data, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("specs: read %s: %w", path, err)
	}
	l := &loader{read: func(p string) ([]byte, error) {
		if p == path {
			return data, nil
		}
		return read(p)
	}, docs: map[string]*document{}, incomplete: map[string]bool{}}
	s := l.loadSpec(path, nil, Pos{File: path, Line: 1, Col: 1})
	if err := l.e.err(); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, ErrorList{{Pos: Pos{File: path, Line: 1, Col: 1}, Message: "spec could not be read"}}
	}
	s.Source.Documents = l.list
	return s, nil
}

// Composed returns the files composed into a spec besides its root
// document, from docs as Load lists them (Source.Documents or
// Plan.Documents: the root first). Each is named by its path relative to
// the root's directory, slash-separated, so a signature made on one machine
// checks on another; the list is sorted by path. A spec signature covers
// these files.
func Composed(docs []Document) ([]Document, error) {
	if len(docs) == 0 {
		return nil, errors.New("specs: no documents")
	}
	dir, err := filepath.Abs(filepath.Dir(docs[0].File))
	if err != nil {
		return nil, fmt.Errorf("specs: composed files: %w", err)
	}
	out := make([]Document, 0, len(docs)-1)
	for _, d := range docs[1:] {
		abs, err := filepath.Abs(d.File)
		if err != nil {
			return nil, fmt.Errorf("specs: composed files: %w", err)
		}
		rel, err := filepath.Rel(dir, abs)
		if err != nil {
			return nil, fmt.Errorf("specs: composed files: %w", err)
		}
		out = append(out, Document{File: filepath.ToSlash(rel), Digest: d.Digest})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

func digestBytes(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// relTo resolves p, written in file from, against from's directory.
func relTo(from, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(filepath.Dir(from), p)
}

// compose reads path and merges it over the spec it extends, recursively.
// stack holds the files being composed above this one, for cycle reports.
func (l *loader) compose(path string, stack []string, at Pos) *node {
	for i, s := range stack {
		if s == path {
			cycle := append(append([]string{}, stack[i:]...), path)
			l.e.add(at, "composition cycle: %s", strings.Join(cycle, " -> "))
			l.incomplete[stack[len(stack)-1]] = true
			return nil
		}
	}
	if len(stack) > 32 {
		l.e.add(at, "composition nested more than 32 files deep")
		l.incomplete[stack[len(stack)-1]] = true
		return nil
	}
	doc, ok := l.docs[path]
	if !ok {
		data, err := l.read(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				err = os.ErrNotExist
			}
			l.e.add(at, "cannot read %s: %v", path, err)
			if len(stack) > 0 {
				l.incomplete[stack[len(stack)-1]] = true
			}
			return nil
		}
		doc = parseDocument(path, data, &l.e)
		if doc.incomplete {
			l.incomplete[path] = true
		}
		l.docs[path] = doc
		l.list = append(l.list, Document{File: path, Digest: doc.digest})
	}
	ext := doc.root.get("extends")
	if ext == nil || ext.tag == "!!invalid" || ext.kind == kindNull {
		return doc.root
	}
	if ext.kind != kindScalar || ext.value == "" {
		l.e.add(ext.pos, "extends must be the path of a spec file")
		return doc.root
	}
	basePath := relTo(path, ext.value)
	base := l.compose(basePath, append(stack, path), ext.pos)
	if l.incomplete[basePath] {
		l.incomplete[path] = true
	}
	own := &node{kind: kindMap, pos: doc.root.pos}
	for i, k := range doc.root.keys {
		if k.value != "extends" {
			own.set(k, doc.root.vals[i])
		}
	}
	return mergeNodes(base, own)
}

// mergeNodes lays over on top of base: mappings merge key by key
// (recursively), everything else (scalars, lists) is replaced by over.
func mergeNodes(base, over *node) *node {
	if base == nil {
		return over
	}
	if over == nil || over.tag == "!!invalid" {
		return base
	}
	if base.kind != kindMap || over.kind != kindMap {
		return over
	}
	out := &node{kind: kindMap, pos: over.pos}
	for i, k := range base.keys {
		out.set(k, base.vals[i])
	}
	for i, k := range over.keys {
		out.set(k, mergeNodes(base.get(k.value), over.vals[i]))
	}
	return out
}

func (l *loader) loadSpec(path string, stack []string, at Pos) *Spec {
	root := l.compose(path, stack, at)
	if root == nil {
		return nil
	}
	d := &decoder{e: &l.e, pos: map[string]Pos{}, file: path}
	s := d.decodeSpec(root)
	s.Source.File = path
	s.Source.Positions = d.pos
	if doc := l.docs[path]; doc != nil {
		s.Source.DocumentDigest = doc.digest
	}
	failed := map[string]bool{}
	if imp := root.get("imports"); imp != nil && imp.tag != "!!invalid" && imp.kind != kindNull {
		l.imports(s, imp, append(stack, path), failed)
	}
	if !l.incomplete[path] {
		resolve(s)
		validate(s, &l.e, failed)
	}
	normalise(s)
	return s
}

var importKeys = []string{"path", "depends_on"}

// imports loads each imported spec and adds its tasks, tests and
// co-location groups to s under "<alias>.<name>".
func (l *loader) imports(s *Spec, imp *node, stack []string, failed map[string]bool) {
	if imp.kind != kindMap {
		l.e.add(imp.pos, "imports must map a name to a spec file (name: path.md)")
		return
	}
	parent := stack[len(stack)-1]
	d := &decoder{e: &l.e, pos: s.Source.Positions, file: parent}
	taskAt := map[string]Pos{}
	for _, t := range s.Tasks {
		taskAt[t.Name] = s.Source.Positions["tasks."+t.Name]
	}
	for i, k := range imp.keys {
		alias, v := k.value, imp.vals[i]
		if !taskNameRE.MatchString(alias) {
			l.e.add(k.pos, "import name %q must be lower-case letters, digits, - or _ (no dots)", alias)
			continue
		}
		if p, ok := taskAt[alias]; ok {
			l.e.add(k.pos, "import %q conflicts with task %q at %s", alias, alias, p)
			failed[alias] = true
			continue
		}
		var file string
		var deps []string
		if v.kind == kindScalar {
			file = v.value
		} else {
			f := d.fields(v, "imports."+alias, fmt.Sprintf("import %q", alias), importKeys)
			file = d.str(f["path"], "path")
			deps = d.strings(f["depends_on"], "imports."+alias+".depends_on", "depends_on")
			if file == "" {
				l.e.add(v.pos, "import %q needs a path", alias)
			}
		}
		if file == "" {
			failed[alias] = true
			continue
		}
		before := len(l.e.list) + l.e.extra
		child := l.loadSpec(relTo(v.pos.File, file), stack, v.pos)
		if child == nil || len(l.e.list)+l.e.extra != before {
			failed[alias] = true
			continue
		}
		l.checkImportConflicts(s, child, alias, v.pos)
		addImported(s, child, alias, deps, parent)
	}
}

// checkImportConflicts reports placement terms of the child that the
// importing spec would silently drop: imported tasks run under the parent's
// placement, so the parent must be at least as strict.
func (l *loader) checkImportConflicts(s, child *Spec, alias string, at Pos) {
	if child.Placement.TEE != "" && s.Placement.TEE != child.Placement.TEE {
		l.e.add(at, "import %q conflicts: it requires placement.tee %q but this spec has %q", alias, child.Placement.TEE, s.Placement.TEE)
	}
	if child.Placement.RequireAttestation && !s.Placement.RequireAttestation {
		l.e.add(at, "import %q conflicts: it requires attestation but this spec's placement.require_attestation is false", alias)
	}
	if len(child.Placement.Residency) > 0 && len(s.Placement.Residency) > 0 {
		for _, r := range s.Placement.Residency {
			if !contains(child.Placement.Residency, r) {
				l.e.add(at, "import %q conflicts: residency %q is not allowed by it (it allows %s)", alias, r, strings.Join(child.Placement.Residency, ", "))
			}
		}
	} else if len(child.Placement.Residency) > 0 {
		l.e.add(at, "import %q conflicts: it restricts residency to %s but this spec does not", alias, strings.Join(child.Placement.Residency, ", "))
	}
	if child.Budget.Currency != "" && s.Budget.Currency != "" && child.Budget.Currency != s.Budget.Currency {
		l.e.add(at, "import %q conflicts: its budget is in %s, this spec's in %s", alias, child.Budget.Currency, s.Budget.Currency)
	}
}

func addImported(s, child *Spec, alias string, deps []string, parent string) {
	pre := alias + "."
	rebase := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		abs := relTo(child.Source.File, p)
		if r, err := filepath.Rel(filepath.Dir(parent), abs); err == nil {
			return r
		}
		return abs
	}
	for _, t := range child.Tasks {
		t.Name = pre + t.Name
		if ap, ok := strings.CutPrefix(t.Image, "oci-archive:"); ok {
			t.Image = "oci-archive:" + rebase(ap)
		}
		root := len(t.DependsOn) == 0
		for i := range t.DependsOn {
			t.DependsOn[i] = pre + t.DependsOn[i]
		}
		if root {
			t.DependsOn = append(t.DependsOn, deps...)
		}
		t.Inputs = append([]Input(nil), t.Inputs...)
		for i := range t.Inputs {
			if t.Inputs[i].From != "" {
				t.Inputs[i].From = pre + t.Inputs[i].From
			}
			if t.Inputs[i].Path != "" {
				t.Inputs[i].Path = rebase(t.Inputs[i].Path)
			}
		}
		t.Group = "" // recomputed from the prefixed colocate groups
		s.Tasks = append(s.Tasks, t)
	}
	nTests, nGroups := len(s.Verification.Tests), len(s.Placement.Colocate)
	// A composed job is spot-checked at least as often as any part asks.
	s.Verification.SpotCheck = max(s.Verification.SpotCheck, child.Verification.SpotCheck)
	for _, t := range child.Verification.Tests {
		t.Name, t.Task = pre+t.Name, pre+t.Task
		if ap, ok := strings.CutPrefix(t.Image, "oci-archive:"); ok {
			t.Image = "oci-archive:" + rebase(ap)
		}
		s.Verification.Tests = append(s.Verification.Tests, t)
	}
	for _, g := range child.Placement.Colocate {
		ng := make([]string, len(g))
		for i, n := range g {
			ng[i] = pre + n
		}
		s.Placement.Colocate = append(s.Placement.Colocate, ng)
	}
	for k, p := range child.Source.Positions {
		switch {
		case strings.HasPrefix(k, "tasks."):
			s.Source.Positions["tasks."+pre+k[len("tasks."):]] = p
		case strings.HasPrefix(k, "verification.tests["):
			s.Source.Positions[shiftIndex(k, "verification.tests[", nTests)] = p
		case strings.HasPrefix(k, "placement.colocate["):
			s.Source.Positions[shiftIndex(k, "placement.colocate[", nGroups)] = p
		}
	}
}

// shiftIndex rewrites "prefix<i>]rest" to "prefix<i+by>]rest".
func shiftIndex(key, prefix string, by int) string {
	rest := key[len(prefix):]
	num, tail, ok := strings.Cut(rest, "]")
	i, err := strconv.Atoi(num)
	if !ok || err != nil {
		return key
	}
	return prefix + strconv.Itoa(i+by) + "]" + tail
}

// normalise puts every set-like list in a canonical order so that the
// contract digest does not depend on how the author ordered them.
func normalise(s *Spec) {
	s.Tags = sortedSet(s.Tags)
	sort.Slice(s.Tasks, func(i, j int) bool { return s.Tasks[i].Name < s.Tasks[j].Name })
	for i := range s.Tasks {
		t := &s.Tasks[i]
		t.DependsOn = sortedSet(t.DependsOn)
		sort.SliceStable(t.Inputs, func(a, b int) bool { return t.Inputs[a].Name < t.Inputs[b].Name })
		sort.SliceStable(t.Outputs, func(a, b int) bool { return t.Outputs[a].Path < t.Outputs[b].Path })
	}
	p := &s.Placement
	p.Regions, p.Residency = sortedSet(p.Regions), sortedSet(p.Residency)
	p.AllowProviders, p.DenyProviders = sortedSet(p.AllowProviders), sortedSet(p.DenyProviders)
	for i := range p.Colocate {
		p.Colocate[i] = sortedSet(p.Colocate[i])
	}
	sort.SliceStable(p.Colocate, func(i, j int) bool {
		return strings.Join(p.Colocate[i], "\x00") < strings.Join(p.Colocate[j], "\x00")
	})
	sort.SliceStable(s.Verification.Tests, func(i, j int) bool { return s.Verification.Tests[i].Name < s.Verification.Tests[j].Name })
	for i := range s.Verification.Tests {
		m := s.Verification.Tests[i].Metrics
		sort.SliceStable(m, func(a, b int) bool {
			if m[a].File != m[b].File {
				return m[a].File < m[b].File
			}
			if m[a].Metric != m[b].Metric {
				return m[a].Metric < m[b].Metric
			}
			if m[a].Op != m[b].Op {
				return m[a].Op < m[b].Op
			}
			return m[a].Value < m[b].Value
		})
	}
	sort.SliceStable(s.Settlement.Royalties, func(i, j int) bool {
		return s.Settlement.Royalties[i].Account < s.Settlement.Royalties[j].Account
	})
	s.Approval.Approvers = sortedSet(s.Approval.Approvers)
}

func sortedSet(in []string) []string {
	if len(in) == 0 {
		return in
	}
	out := append([]string(nil), in...)
	sort.Strings(out)
	n := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[n-1] {
			out[n] = out[i]
			n++
		}
	}
	return out[:n]
}

// Resolve returns p, a path written in the spec (an oci-archive image or an
// input path), relative to the directory of the spec file.
func (s *Spec) Resolve(p string) string {
	return relTo(s.Source.File, p)
}

// ArchivePath returns the resolved local archive path of an
// "oci-archive:PATH" image, and false for a registry reference.
func (s *Spec) ArchivePath(image string) (string, bool) {
	p, ok := strings.CutPrefix(image, "oci-archive:")
	if !ok {
		return "", false
	}
	return s.Resolve(p), true
}
