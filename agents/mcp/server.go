package mcp

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/specs"
)

// Version is the server's version in the MCP handshake.
const Version = "1.0.0"

// Backend is what the tools call. Jobs is required; a nil optional part
// makes its tool answer "not available" (class error), except Models,
// whose tools are listed only when it is set.
type Backend struct {
	// Jobs is the job system, the same implementation the HTTP API uses.
	Jobs apiserver.Jobs
	// Documents returns a job's submitted spec (resources and plans).
	Documents Documents
	// Logs tails a job's task logs (job_logs).
	Logs Logs
	// Quoter clears the market for a plan without committing (market_quote).
	Quoter Quoter
	// Statements reads ledger statements (ledger_statement).
	Statements Statements
	// Trust loads the trust store receipts are verified against (audit_verify).
	Trust func(ctx context.Context) (*provenance.TrustStore, error)
	// Models is the model exchange (model_search, model_inspect).
	Models Models
}

// Documents returns the spec document a job was submitted with.
type Documents interface {
	SpecDocument(ctx context.Context, jobID string) (name string, doc []byte, err error)
}

// Logs returns the tails of a job's task logs, at most maxBytes in all.
type Logs interface {
	Tail(ctx context.Context, jobID string, maxBytes int) ([]LogTail, error)
}

// Quoter runs the market for a plan as a negotiation would now, committing
// nothing. No offers wraps market.ErrNoOffers with the diagnostics.
type Quoter interface {
	Quote(ctx context.Context, plan *specs.Plan) (*market.Result, error)
}

// Statements reads an account's statement (settlement.Ledger implements it).
type Statements interface {
	Statement(ctx context.Context, account string) (*settlement.Statement, error)
}

// Models searches and inspects the model exchange. Results are JSON
// objects, as `accord model search --json` and `inspect --json` print them.
type Models interface {
	Search(ctx context.Context, query string, limit int) (json.RawMessage, error)
	Inspect(ctx context.Context, ref string) (json.RawMessage, error)
}

// Option configures a server.
type Option func(*config)

type config struct {
	log     *slog.Logger
	maxWait time.Duration
}

// WithLogger sets where failed calls are logged in detail (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// server is one session's tools: a backend and the principal they act as.
type server struct {
	b       Backend
	p       policies.Principal
	log     *slog.Logger
	maxWait time.Duration // the longest job_submit wait
}

// New returns an MCP server whose tools act as p. An auditor's server
// lists only the read-only tools.
func New(b Backend, p policies.Principal, opts ...Option) *mcp.Server {
	c := config{log: slog.Default(), maxWait: MaxWait}
	for _, o := range opts {
		o(&c)
	}
	s := &server{b: b, p: p, log: c.log, maxWait: c.maxWait}
	srv := mcp.NewServer(&mcp.Implementation{Name: "accord", Title: "Accord", Version: Version}, &mcp.ServerOptions{
		Instructions: instructions,
	})
	srv.AddReceivingMiddleware(classifyArgErrors)
	s.addSpecTools(srv)
	s.addJobTools(srv)
	s.addAuditTools(srv)
	if b.Models != nil {
		s.addModelTools(srv)
	}
	s.addResources(srv)
	s.addPrompts(srv)
	return srv
}

const instructions = "Accord runs jobs described by Markdown specs on a compute market. " +
	"Write a spec (the write_spec prompt and accord://docs/spec-reference help), check it with spec_lint, " +
	"see its plan with spec_compile and its price with market_quote, submit it with job_submit " +
	"(wait: true follows it to the end), then job_status, job_logs and receipt_get; audit_verify checks a receipt. " +
	"Failed calls answer {\"error\": {\"class\", \"message\", \"exit_code\"}} as the accord CLI does."

// writer reports whether the principal may change state at all.
func (s *server) writer() bool { return s.p.Role != policies.RoleAuditor }

// add registers a typed tool whose errors become the CLI's tool errors.
// Its output schema maps json.RawMessage fields (whole documents: plans,
// receipts, market records) to objects.
func add[In, Out any](s *server, srv *mcp.Server, t *mcp.Tool, h func(context.Context, *mcp.CallToolRequest, In) (Out, error)) {
	t.OutputSchema = schemaFor[Out]()
	mcp.AddTool(srv, t, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		out, err := h(ctx, req, in)
		if err != nil {
			var zero Out
			return nil, zero, toolErr(s.log, t.Name, err)
		}
		return nil, out, nil
	})
}

// schemaFor infers T's schema with json.RawMessage as an object.
func schemaFor[T any]() *jsonschema.Schema {
	sc, err := jsonschema.For[T](&jsonschema.ForOptions{TypeSchemas: map[reflect.Type]*jsonschema.Schema{
		reflect.TypeFor[json.RawMessage](): {Type: "object"},
	}})
	if err != nil {
		panic("mcp: schema of " + reflect.TypeFor[T]().String() + ": " + err.Error()) // programmer error
	}
	return sc
}

// progress sends a progress notification when the client asked for them.
func progress(ctx context.Context, req *mcp.CallToolRequest, done, total float64, msg string) {
	if req == nil || req.Session == nil || req.Params == nil {
		return
	}
	tok := req.Params.GetProgressToken()
	if tok == nil {
		return
	}
	_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: done, Total: total, Message: msg})
}

func readOnly() *mcp.ToolAnnotations { return &mcp.ToolAnnotations{ReadOnlyHint: true} }

// classifyArgErrors gives the SDK's own tool errors (arguments that do not
// fit a tool's input schema: an unknown or missing field, a wrong type)
// the CLI's form, as usage errors, so that every failed call reads alike.
func classifyArgErrors(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		r, ok := res.(*mcp.CallToolResult)
		if err != nil || !ok || !r.IsError || len(r.Content) != 1 {
			return res, err
		}
		if tc, ok := r.Content[0].(*mcp.TextContent); ok && !strings.HasPrefix(tc.Text, `{"error":`) {
			tc.Text = (&ToolError{Class: cli.ClassUsage, ExitCode: cli.ExitUsage, Message: tc.Text}).Error()
		}
		return res, err
	}
}
