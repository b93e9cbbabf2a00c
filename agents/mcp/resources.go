package mcp

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/specs"
)

// SpecReference is the spec reference (README's "Spec reference", kept
// equal to it by a test; `go generate ./agents/mcp` copies it again): the
// context of the write_spec prompt and the accord://docs/spec-reference
// resource.
//
//go:generate sh -c "sed -n '/^## Spec reference$DOLLAR/,$DOLLAR{p}' ../../README.md > specref.md"
//go:generate cp ../../examples/quickstart.md example.md
//go:embed specref.md
var SpecReference string

// exampleSpec is examples/quickstart.md, kept equal to it by a test.
//
//go:embed example.md
var exampleSpec string

// Resource URIs.
const (
	URIReference = "accord://docs/spec-reference"
	URIExample   = "accord://docs/example-spec"
	// Templates: {id} is a job ID; {kind} is tenant or provider.
	URIJobSpec    = "accord://jobs/{id}/spec"
	URIJobPlan    = "accord://jobs/{id}/plan"
	URIJobReceipt = "accord://jobs/{id}/receipt"
	URIStatement  = "accord://ledger/{kind}/{name}/statement"
)

func (s *server) addResources(srv *mcp.Server) {
	static := func(text, mime string) mcp.ResourceHandler {
		return func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: mime, Text: text}}}, nil
		}
	}
	srv.AddResource(&mcp.Resource{URI: URIReference, Name: "spec-reference", Title: "Accord spec reference",
		Description: "How to write an Accord spec: sections, keys, units, limits.", MIMEType: "text/markdown"}, static(SpecReference, "text/markdown"))
	srv.AddResource(&mcp.Resource{URI: URIExample, Name: "example-spec", Title: "Example spec (quickstart)",
		Description: "A complete spec that trains a small model on one CPU core.", MIMEType: "text/markdown"}, static(exampleSpec, "text/markdown"))
	for _, t := range []struct{ uri, name, desc, mime string }{
		{URIJobSpec, "job-spec", "The spec document a job was submitted with.", "text/markdown"},
		{URIJobPlan, "job-plan", "A job's execution plan (JSON).", "application/json"},
		{URIJobReceipt, "job-receipt", "A job's receipt: attestations with log proofs (JSON).", "application/json"},
		{URIStatement, "ledger-statement", "A ledger account's statement (JSON): accord://ledger/tenant/NAME/statement or accord://ledger/provider/NAME/statement.", "application/json"},
	} {
		srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: t.uri, Name: t.name, Description: t.desc, MIMEType: t.mime}, s.readResource)
	}
}

// readResource serves the templates: the same checks as the tools (another
// tenant's job is not found).
func (s *server) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	text, mime, err := s.resource(ctx, uri)
	if err != nil {
		var te *ToolError
		if errors.As(toolErr(s.log, "resources/read", err), &te) && te.Class == "not_found" {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		return nil, fmt.Errorf("%s", te.Message)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: mime, Text: text}}}, nil
}

func (s *server) resource(ctx context.Context, uri string) (text, mime string, err error) {
	if len(uri) > 2*maxQuery {
		return "", "", fmt.Errorf("%w: uri", ErrTooLarge)
	}
	if acct, ok := strings.CutPrefix(uri, "accord://ledger/"); ok {
		acct, ok = strings.CutSuffix(acct, "/statement")
		kind, name, ok2 := strings.Cut(acct, "/")
		if !ok || !ok2 || kind != "tenant" && kind != "provider" {
			return "", "", apiserver.ErrNotFound
		}
		if name, err = url.PathUnescape(name); err != nil {
			return "", "", apiserver.ErrNotFound
		}
		st, err := s.statement(ctx, nil, StatementInput{Account: kind + ":" + name})
		return string(st.Statement), "application/json", err
	}
	rest, ok := strings.CutPrefix(uri, "accord://jobs/")
	id, what, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return "", "", apiserver.ErrNotFound
	}
	switch what {
	case "receipt":
		r, err := s.receipt(ctx, nil, JobInput{JobID: id})
		return string(r.Receipt), "application/json", err
	case "spec", "plan":
		name, doc, err := s.document(ctx, id)
		if err != nil || what == "spec" {
			return string(doc), "text/markdown", err
		}
		_, p, err := parse(name, doc)
		if err != nil {
			return "", "", specErr(name, err)
		}
		b, err := json.Marshal(p)
		return string(b), "application/json", err
	}
	return "", "", apiserver.ErrNotFound
}

// document returns a job's submitted spec, for a job the principal may see.
func (s *server) document(ctx context.Context, id string) (string, []byte, error) {
	j, err := s.job(ctx, id)
	if err != nil {
		return "", nil, err
	}
	if s.b.Documents == nil {
		return "", nil, fmt.Errorf("%w: job documents", ErrUnavailable)
	}
	name, doc, err := s.b.Documents.SpecDocument(ctx, j.JobID)
	if err != nil {
		return "", nil, err
	}
	if len(doc) > specs.MaxFileSize {
		return "", nil, fmt.Errorf("mcp: job %s: spec of %d bytes", j.JobID, len(doc))
	}
	return name, doc, nil
}

// maxGoal bounds the write_spec prompt's argument.
const maxGoal = 4096

func (s *server) addPrompts(srv *mcp.Server) {
	srv.AddPrompt(&mcp.Prompt{Name: "write_spec", Title: "Write a spec for …",
		Description: "Write an Accord spec for a goal, with the spec reference and an example as context.",
		Arguments: []*mcp.PromptArgument{
			{Name: "goal", Description: "what the job should do, its budget and deadline (e.g. fine-tune a Spanish legal classifier under 20 USD by Friday)", Required: true},
			{Name: "tenant", Description: "the tenant the job runs for"},
		}},
		func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			goal, tenant := req.Params.Arguments["goal"], req.Params.Arguments["tenant"]
			if strings.TrimSpace(goal) == "" || len(goal) > maxGoal || len(tenant) > maxJobID {
				return nil, fmt.Errorf("goal: want 1 to %d bytes (tenant at most %d)", maxGoal, maxJobID)
			}
			if tenant == "" && s.p.Tenant != "*" {
				tenant = s.p.Tenant
			}
			return &mcp.GetPromptResult{Description: "Write an Accord spec", Messages: []*mcp.PromptMessage{
				{Role: "user", Content: &mcp.TextContent{Text: writeSpecPrompt(goal, tenant)}},
			}}, nil
		})
}

func writeSpecPrompt(goal, tenant string) string {
	var b strings.Builder
	b.WriteString("Write an Accord spec (a Markdown file) for this goal:\n\n" + goal + "\n\n")
	if tenant != "" {
		fmt.Fprintf(&b, "The spec's tenant is %q.\n", tenant)
	}
	b.WriteString("Put the budget in minor units (max_price 2000 with currency USD is 20.00 USD) and turn a date into a deadline. " +
		"The spec must stand alone: no extends or imports, and no host paths (images and inputs are pushed artifacts, `artifact: sha256:…`, " +
		"or registry images pinned by digest). Check it with the spec_lint tool, see its plan with spec_compile and its price with market_quote " +
		"before job_submit.\n\n# The spec reference\n\n")
	b.WriteString(SpecReference)
	b.WriteString("\n\n# An example spec\n\n")
	b.WriteString(exampleSpec)
	return b.String()
}
