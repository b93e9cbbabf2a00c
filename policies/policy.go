package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
	"gopkg.in/yaml.v3"
)

// Sentinel errors.
var (
	// ErrCompile: a policy file does not parse or a rule does not compile.
	ErrCompile = errors.New("policies: compile error")
	// ErrDenied: a rule denied the subject.
	ErrDenied = errors.New("policies: denied")
)

// Stage names the point a rule applies at.
type Stage string

const (
	StageAdmission Stage = "admission"
	StagePlacement Stage = "placement"
	StageAudit     Stage = "audit"
)

// Stages lists every stage, in the order a job meets them.
var Stages = []Stage{StageAdmission, StagePlacement, StageAudit}

// ParseStage returns the stage named s, or an error naming the valid ones.
func ParseStage(s string) (Stage, error) {
	for _, st := range Stages {
		if string(st) == s {
			return st, nil
		}
	}
	names := make([]string, len(Stages))
	for i, st := range Stages {
		names[i] = string(st)
	}
	return "", fmt.Errorf("policies: unknown stage %q (want one of: %s)", s, strings.Join(names, ", "))
}

// Variables returns the names of the variables rules of stage st may read.
func (st Stage) Variables() []string {
	env, ok := envs[st]
	if !ok {
		return nil
	}
	var names []string
	for _, v := range env.Variables() {
		names = append(names, v.Name())
	}
	sort.Strings(names)
	return names
}

// Policy is one compiled policy file.
type Policy struct {
	Name    string
	Version int
	Tenant  string // empty: organisation-wide
	File    string
	Digest  string // sha256:<hex> of the file bytes
	Rules   []*Rule
}

// Rule is one compiled CEL rule.
type Rule struct {
	Name    string
	Stage   Stage
	Expr    string
	Message string
	Line    int // line of the expression in the policy file
	prg     cel.Program
}

// CompileError is one compile problem, positioned in the policy file.
type CompileError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e CompileError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// CompileErrors is every problem found in one policy file.
type CompileErrors []CompileError

func (es CompileErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es CompileErrors) Unwrap() error { return ErrCompile }

type fileRule struct {
	Name    string    `yaml:"name"`
	On      string    `yaml:"on"`
	Expr    yaml.Node `yaml:"expr"`
	Message string    `yaml:"message"`
}

type file struct {
	Policy  string     `yaml:"policy"`
	Version int        `yaml:"version"`
	Tenant  string     `yaml:"tenant"`
	Rules   []fileRule `yaml:"rules"`
}

// maxPolicySize bounds a policy file; policies are short.
const maxPolicySize = 1 << 20

// Load reads and compiles one policy file.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policies: read %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse compiles a policy from its bytes; name is used in positions.
func Parse(name string, data []byte) (*Policy, error) {
	if len(data) > maxPolicySize {
		return nil, CompileErrors{{name, 1, 1, fmt.Sprintf("policy is %d bytes, limit %d", len(data), maxPolicySize)}}
	}
	var f file
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		line := 1
		var te *yaml.TypeError
		msg := err.Error()
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = te.Errors[0]
		}
		fmt.Sscanf(strings.TrimPrefix(msg, "yaml: "), "line %d:", &line)
		return nil, CompileErrors{{name, line, 1, strings.TrimPrefix(msg, "yaml: ")}}
	}
	sum := sha256.Sum256(data)
	p := &Policy{Name: f.Policy, Version: f.Version, Tenant: f.Tenant, File: name, Digest: "sha256:" + hex.EncodeToString(sum[:])}
	var errs CompileErrors
	if p.Name == "" {
		errs = append(errs, CompileError{name, 1, 1, "missing policy name (policy: NAME)"})
	}
	if p.Version < 1 {
		errs = append(errs, CompileError{name, 1, 1, "missing or non-positive version"})
	}
	seen := map[string]bool{}
	for _, fr := range f.Rules {
		line, col := fr.Expr.Line, fr.Expr.Column
		if line == 0 {
			line, col = 1, 1
		}
		r := &Rule{Name: fr.Name, Stage: Stage(fr.On), Expr: fr.Expr.Value, Message: fr.Message, Line: line}
		switch {
		case r.Name == "":
			errs = append(errs, CompileError{name, line, col, "rule without a name"})
			continue
		case seen[r.Name]:
			errs = append(errs, CompileError{name, line, col, fmt.Sprintf("duplicate rule %q", r.Name)})
			continue
		}
		seen[r.Name] = true
		env, ok := envs[r.Stage]
		if !ok {
			errs = append(errs, CompileError{name, line, col, fmt.Sprintf("rule %q: on must be admission, placement or audit, not %q", r.Name, fr.On)})
			continue
		}
		ast, iss := env.Compile(r.Expr)
		if iss != nil && iss.Err() != nil {
			for _, e := range iss.Errors() {
				// CEL lines are 1-based within the expression, columns 0-based.
				el, ec := e.Location.Line(), e.Location.Column()+1
				pl, pc := line+el-1, ec
				if el == 1 && fr.Expr.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
					pc = col + ec - 1
				} else if fr.Expr.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
					pl = line + el // block scalars start on the next line
				}
				errs = append(errs, CompileError{name, pl, pc, fmt.Sprintf("rule %q: %s", r.Name, e.Message)})
			}
			continue
		}
		if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
			errs = append(errs, CompileError{name, line, col, fmt.Sprintf("rule %q: expression is %s, want bool", r.Name, ast.OutputType())})
			continue
		}
		prg, err := env.Program(ast, cel.CostLimit(costLimit))
		if err != nil {
			errs = append(errs, CompileError{name, line, col, fmt.Sprintf("rule %q: %v", r.Name, err)})
			continue
		}
		r.prg = prg
		p.Rules = append(p.Rules, r)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// costLimit bounds the work one rule evaluation may do, so a policy cannot
// stall admission with an exponential comprehension.
const costLimit = 1_000_000

// Set is the policies that apply to one organisation.
type Set struct {
	Policies []*Policy
}

// LoadDir compiles every *.yaml / *.yml file under dir (recursively). A
// missing directory is an empty set. Every file's errors are reported.
func LoadDir(dir string) (*Set, error) {
	s := &Set{}
	if dir == "" {
		return s, nil
	}
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			paths = append(paths, p)
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("policies: walk %s: %w", dir, err)
	}
	sort.Strings(paths)
	var errs CompileErrors
	for _, p := range paths {
		pol, err := Load(p)
		var ce CompileErrors
		switch {
		case errors.As(err, &ce):
			errs = append(errs, ce...)
		case err != nil:
			return nil, err
		default:
			s.Policies = append(s.Policies, pol)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// For returns the policies that apply to tenant: organisation-wide ones and
// the tenant's own.
func (s *Set) For(tenant string) []*Policy {
	var out []*Policy
	for _, p := range s.Policies {
		if p.Tenant == "" || p.Tenant == tenant {
			out = append(out, p)
		}
	}
	return out
}
