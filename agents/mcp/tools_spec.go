package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/specs"
)

// SpecInput is a spec sent as text: its exact Markdown, and a plain file
// name for positions in messages (default spec.md). Never a path.
type SpecInput struct {
	Spec string `json:"spec" jsonschema:"the spec's Markdown text (at most 4 MiB), never a path"`
	Name string `json:"name,omitempty" jsonschema:"a plain file name used in error positions, such as job.md (default spec.md)"`
}

// Problem is one finding in a spec, positioned in the document sent.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
}

// LintResult is spec_lint's answer, as `accord spec lint --json` gives it
// for one file.
type LintResult struct {
	File     string    `json:"file"`
	OK       bool      `json:"ok"`
	Errors   []Problem `json:"errors"`
	Warnings []Problem `json:"warnings"`
}

// PlanResult is spec_compile's answer: the plan's headline figures and the
// whole plan as `accord spec compile --json` prints it.
type PlanResult struct {
	Name           string   `json:"name"`
	Version        string   `json:"version"`
	Tenant         string   `json:"tenant"`
	DocumentDigest string   `json:"document_digest"`
	ContractDigest string   `json:"contract_digest"`
	CriticalPath   []string `json:"critical_path"`
	// CriticalSeconds is the critical path's length at each task's
	// maximum duration.
	CriticalSeconds float64         `json:"critical_path_seconds"`
	MaxCost         int64           `json:"max_cost" jsonschema:"upper estimate in minor units of currency"`
	ReferenceCost   int64           `json:"reference_cost" jsonschema:"the worst-case envelope at reference rates, minor units"`
	Currency        string          `json:"currency"`
	Tasks           int             `json:"tasks"`
	Plan            json.RawMessage `json:"plan" jsonschema:"the whole plan, as accord spec compile --json prints it"`
}

// QuoteResult is market_quote's answer: the award the spec would get now
// and the market's whole record (offers, bids, diagnostics).
type QuoteResult struct {
	Provider string          `json:"provider"`
	Price    int64           `json:"price" jsonschema:"what the job would pay the provider, minor units"`
	Currency string          `json:"currency"`
	Protocol string          `json:"protocol"`
	Offers   int             `json:"offers"`
	Record   json.RawMessage `json:"record" jsonschema:"the market's record: offers, bids, awards, diagnostics"`
}

func (s *server) addSpecTools(srv *mcp.Server) {
	add(s, srv, &mcp.Tool{Name: "spec_lint", Annotations: readOnly(),
		Description: "Check a spec sent as Markdown text: every problem with line:col, and warnings. ok is false when it has problems (a spec sent to Accord must stand alone: no extends, imports or host paths)."},
		func(_ context.Context, _ *mcp.CallToolRequest, in SpecInput) (LintResult, error) { return lint(in) })
	add(s, srv, &mcp.Tool{Name: "spec_compile", Annotations: readOnly(),
		Description: "Compile a spec sent as Markdown text into its execution plan: tasks in order, the critical path, the maximum and reference cost, and its digests."},
		func(_ context.Context, _ *mcp.CallToolRequest, in SpecInput) (PlanResult, error) { return compile(in) })
	add(s, srv, &mcp.Tool{Name: "market_quote", Annotations: readOnly(),
		Description: "Quote a spec sent as Markdown text: the offers and the clearing it would get on the market now, committing nothing (no job, no escrow)."},
		s.quote)
}

// readSpec checks a SpecInput's bounds and name.
func readSpec(in SpecInput) (string, []byte, error) {
	if len(in.Spec) > specs.MaxFileSize {
		return "", nil, fmt.Errorf("%w: spec: %d bytes, more than the %d-byte limit", ErrTooLarge, len(in.Spec), specs.MaxFileSize)
	}
	if strings.TrimSpace(in.Spec) == "" {
		return "", nil, usagef("spec: want the spec's Markdown text")
	}
	name := in.Name
	if name == "" {
		name = "spec.md"
	}
	if err := apiserver.CheckName(name); err != nil {
		return "", nil, err
	}
	return name, []byte(in.Spec), nil
}

// parse reads a spec as an upload: standalone, and without host paths.
func parse(name string, doc []byte) (*specs.Spec, *specs.Plan, error) {
	s, err := specs.ParseStandalone(name, doc)
	if err != nil {
		return nil, nil, err
	}
	if paths := specs.HostInputs(s); len(paths) > 0 {
		return s, nil, hostPathsError("a spec sent to Accord cannot name host paths; push the file with `accord data push FILE` " +
			"and use `artifact: sha256:…` (or `image: artifact:sha256:…`): " + strings.Join(paths, "; "))
	}
	p, err := specs.Compile(s)
	return s, p, err
}

// hostPathsError refuses a spec that names host paths (its own words).
type hostPathsError string

func (e hostPathsError) Error() string { return string(e) }

func lint(in SpecInput) (LintResult, error) {
	name, doc, err := readSpec(in)
	if err != nil {
		return LintResult{}, err
	}
	res := LintResult{File: name, Errors: []Problem{}, Warnings: []Problem{}}
	s, p, err := parse(name, doc)
	if err != nil {
		res.Errors = problems(name, err)
		return res, nil
	}
	res.OK = true
	res.Warnings = listProblems(specs.Warnings(s, p))
	return res, nil
}

// problems turns a parse error into positioned problems; an error without
// positions is one problem at line 0.
func problems(name string, err error) []Problem {
	if l := specs.Errors(err); l != nil {
		return listProblems(l)
	}
	return []Problem{{File: name, Message: strings.TrimPrefix(err.Error(), "specs: ")}}
}

func listProblems(l specs.ErrorList) []Problem {
	out := []Problem{}
	for _, e := range l {
		out = append(out, Problem{File: e.Pos.File, Line: e.Pos.Line, Col: e.Pos.Col, Message: e.Message})
	}
	return out
}

// specErr is a spec's failure to parse or compile as the CLI reports it:
// class invalid_spec, the problems as file:line:col lines.
func specErr(name string, err error) error {
	var lines []string
	for _, p := range problems(name, err) {
		if p.Line == 0 {
			lines = append(lines, p.File+": "+p.Message)
		} else {
			lines = append(lines, fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Message))
		}
	}
	return public(cli.ClassInvalidSpec, cli.ExitInvalidSpec, "%s", strings.Join(lines, "\n"))
}

// plan parses and compiles a SpecInput; a bad spec is an invalid_spec
// tool error.
func plan(in SpecInput) (*specs.Plan, error) {
	name, doc, err := readSpec(in)
	if err != nil {
		return nil, err
	}
	_, p, err := parse(name, doc)
	if err != nil {
		return nil, specErr(name, err)
	}
	return p, nil
}

func compile(in SpecInput) (PlanResult, error) {
	p, err := plan(in)
	if err != nil {
		return PlanResult{}, err
	}
	return planResult(p)
}

func planResult(p *specs.Plan) (PlanResult, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return PlanResult{}, fmt.Errorf("mcp: encode plan: %w", err)
	}
	return PlanResult{Name: p.Name, Version: p.Version, Tenant: p.Tenant, DocumentDigest: p.DocumentDigest,
		ContractDigest: p.ContractDigest, CriticalPath: p.CriticalPath, CriticalSeconds: p.CriticalTime.Seconds(),
		MaxCost: p.MaxCost, ReferenceCost: p.ReferenceCost, Currency: p.Currency, Tasks: len(p.Tasks), Plan: raw}, nil
}

// quote clears the market for the spec among the providers its tenant's
// placement policies allow, as a negotiation would now; the caller must be
// able to see the spec's tenant (placement rules are the tenant's).
func (s *server) quote(ctx context.Context, req *mcp.CallToolRequest, in SpecInput) (QuoteResult, error) {
	if s.b.Quoter == nil {
		return QuoteResult{}, fmt.Errorf("%w: market_quote: no market", ErrUnavailable)
	}
	p, err := plan(in)
	if err != nil {
		return QuoteResult{}, err
	}
	if !s.p.CanRead(p.Tenant) {
		return QuoteResult{}, public(cli.ClassPolicy, cli.ExitPolicy, "token may not quote jobs for tenant %q", p.Tenant)
	}
	progress(ctx, req, 0, 2, "compiled "+p.Name+"; clearing the market")
	res, err := s.b.Quoter.Quote(ctx, p)
	if err != nil {
		return QuoteResult{}, err
	}
	progress(ctx, req, 1, 2, fmt.Sprintf("market cleared: %d offers", len(res.Offers)))
	raw, err := json.Marshal(res)
	if err != nil {
		return QuoteResult{}, fmt.Errorf("mcp: encode quote: %w", err)
	}
	out := QuoteResult{Currency: res.Currency, Protocol: res.Protocol, Offers: len(res.Offers), Record: raw}
	if len(res.Awards) > 0 {
		out.Provider, out.Price = res.Awards[0].Provider, res.Awards[0].Price
	}
	progress(ctx, req, 2, 2, "quoted")
	return out, nil
}
