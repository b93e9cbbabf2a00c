package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
)

// Bounds on audit inputs.
const (
	maxReceipt = 16 << 20
	maxQuery   = 1024
)

// ReceiptResult is receipt_get's answer.
type ReceiptResult struct {
	JobID   string          `json:"job_id"`
	Receipt json.RawMessage `json:"receipt" jsonschema:"every attestation of the job with its log entry, proofs and the log key (accord receipt export)"`
}

// VerifyInput is audit_verify's input: a job's receipt, or a receipt's JSON.
type VerifyInput struct {
	JobID           string `json:"job_id,omitempty" jsonschema:"verify this job's receipt"`
	Receipt         string `json:"receipt,omitempty" jsonschema:"or verify this receipt's JSON text (at most 16 MiB)"`
	AllowIncomplete bool   `json:"allow_incomplete,omitempty" jsonschema:"accept a chain that stops before settlement (a job still running)"`
}

// VerifyResult is audit_verify's answer when the receipt verifies.
type VerifyResult struct {
	JobID    string          `json:"job_id"`
	OK       bool            `json:"ok"`
	Complete bool            `json:"complete"`
	Stages   int             `json:"stages"`
	Report   json.RawMessage `json:"report" jsonschema:"the audit report, as accord audit verify --json prints it"`
}

// SearchInput is audit_search's input.
type SearchInput struct {
	JobID          string `json:"job_id,omitempty"`
	SpecDigest     string `json:"spec_digest,omitempty" jsonschema:"sha256:<hex> of a spec's document or contract"`
	ArtifactDigest string `json:"artifact_digest,omitempty" jsonschema:"sha256:<hex> of an artifact"`
	Since          string `json:"since,omitempty" jsonschema:"RFC 3339 time"`
	Until          string `json:"until,omitempty" jsonschema:"RFC 3339 time"`
}

// SearchResult is audit_search's answer.
type SearchResult struct {
	Entries []apiserver.AuditHit `json:"entries"`
}

// StatementInput is ledger_statement's input.
type StatementInput struct {
	Account string `json:"account,omitempty" jsonschema:"tenant:NAME or provider:NAME (default the token's tenant)"`
}

// StatementResult is ledger_statement's answer.
type StatementResult struct {
	Account   string          `json:"account"`
	Jobs      int             `json:"jobs"`
	Statement json.RawMessage `json:"statement" jsonschema:"balances and per-job costs in minor units (accord ledger statement --json)"`
}

func (s *server) addAuditTools(srv *mcp.Server) {
	add(s, srv, &mcp.Tool{Name: "receipt_get", Annotations: readOnly(),
		Description: "A job's receipt: every stage attestation with its transparency-log entry and proofs."}, s.receipt)
	add(s, srv, &mcp.Tool{Name: "audit_verify", Annotations: readOnly(),
		Description: "Verify a receipt (a job's, or one given as JSON text) against this server's trust store: signatures, log proofs, checkpoints, the stage chain and the amounts. A failed audit is an error of class verification."},
		s.verify)
	add(s, srv, &mcp.Tool{Name: "audit_search", Annotations: readOnly(),
		Description: "Search the transparency log by job ID, spec digest or artifact digest, within a time range."}, s.search)
	add(s, srv, &mcp.Tool{Name: "ledger_statement", Annotations: readOnly(),
		Description: "A tenant's or provider's ledger statement: balances and each job's held, paid, fee, refund and slash amounts (minor units)."},
		s.statement)
}

func (s *server) receipt(ctx context.Context, _ *mcp.CallToolRequest, in JobInput) (ReceiptResult, error) {
	j, err := s.job(ctx, in.JobID)
	if err != nil {
		return ReceiptResult{}, err
	}
	raw, err := s.b.Jobs.Receipt(ctx, j.JobID)
	if err != nil {
		return ReceiptResult{}, err
	}
	return ReceiptResult{JobID: j.JobID, Receipt: raw}, nil
}

func (s *server) verify(ctx context.Context, _ *mcp.CallToolRequest, in VerifyInput) (VerifyResult, error) {
	if (in.JobID == "") == (in.Receipt == "") {
		return VerifyResult{}, usagef("want job_id or receipt (one of them)")
	}
	if len(in.Receipt) > maxReceipt {
		return VerifyResult{}, fmt.Errorf("%w: receipt: more than %d bytes", ErrTooLarge, maxReceipt)
	}
	if s.b.Trust == nil {
		return VerifyResult{}, fmt.Errorf("%w: audit_verify: no trust store", ErrUnavailable)
	}
	raw := []byte(in.Receipt)
	if in.JobID != "" {
		got, err := s.receipt(ctx, nil, JobInput{JobID: in.JobID})
		if err != nil {
			return VerifyResult{}, err
		}
		raw = got.Receipt
	}
	r, err := provenance.ParseReceipt(raw)
	if err != nil {
		return VerifyResult{}, usagef("receipt: not a receipt's JSON: %s", strings.TrimPrefix(err.Error(), "provenance: receipt: "))
	}
	trust, err := s.b.Trust(ctx)
	if err != nil {
		return VerifyResult{}, err
	}
	rep, _ := provenance.Verify(ctx, r, trust, provenance.VerifyOptions{AllowIncomplete: in.AllowIncomplete})
	if !rep.OK {
		return VerifyResult{}, public(cli.ClassVerification, cli.ExitVerification, "audit of %s failed: %s", rep.JobID, strings.Join(problemTexts(rep.Problems), "; "))
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("mcp: encode report: %w", err)
	}
	return VerifyResult{JobID: rep.JobID, OK: rep.OK, Complete: rep.Complete, Stages: len(rep.Stages), Report: b}, nil
}

func problemTexts[T fmt.Stringer](ps []T) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func (s *server) search(ctx context.Context, _ *mcp.CallToolRequest, in SearchInput) (SearchResult, error) {
	for _, v := range []string{in.JobID, in.SpecDigest, in.ArtifactDigest, in.Since, in.Until} {
		if len(v) > maxQuery {
			return SearchResult{}, fmt.Errorf("%w: a search field is more than %d bytes", ErrTooLarge, maxQuery)
		}
	}
	q := apiserver.AuditQuery{JobID: in.JobID, SpecDigest: in.SpecDigest, ArtifactDigest: in.ArtifactDigest}
	for name, f := range map[string]struct {
		v   string
		dst *time.Time
	}{"since": {in.Since, &q.Since}, "until": {in.Until, &q.Until}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.v)
		if err != nil {
			return SearchResult{}, usagef("%s: want an RFC 3339 time such as 2026-11-25T20:01:34Z", name)
		}
		*f.dst = t
	}
	hits, err := s.b.Jobs.AuditSearch(ctx, q)
	if err != nil {
		return SearchResult{}, err
	}
	out := SearchResult{Entries: []apiserver.AuditHit{}}
	for _, h := range hits {
		if s.p.CanRead(h.Tenant) {
			out.Entries = append(out.Entries, h)
		}
	}
	return out, nil
}

// statement reads a ledger account the principal may see: its own
// tenant's; providers' and other tenants' only with an organisation-wide
// ("*") token.
func (s *server) statement(ctx context.Context, _ *mcp.CallToolRequest, in StatementInput) (StatementResult, error) {
	if len(in.Account) > maxQuery {
		return StatementResult{}, fmt.Errorf("%w: account: more than %d bytes", ErrTooLarge, maxQuery)
	}
	account := in.Account
	switch {
	case account == "" && s.p.Tenant == "*":
		return StatementResult{}, usagef("account: want tenant:NAME or provider:NAME")
	case account == "":
		account = settlement.TenantAccount(s.p.Tenant)
	case !strings.Contains(account, ":"):
		account = settlement.TenantAccount(account)
	}
	if s.p.Tenant != "*" && account != settlement.TenantAccount(s.p.Tenant) {
		return StatementResult{}, public(cli.ClassPolicy, cli.ExitPolicy, "token may read only the statement of tenant:%s", s.p.Tenant)
	}
	if s.b.Statements == nil {
		return StatementResult{}, fmt.Errorf("%w: ledger_statement: no ledger", ErrUnavailable)
	}
	st, err := s.b.Statements.Statement(ctx, account)
	if err != nil {
		return StatementResult{}, err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return StatementResult{}, fmt.Errorf("mcp: encode statement: %w", err)
	}
	return StatementResult{Account: st.Account, Jobs: len(st.Jobs), Statement: b}, nil
}

// ModelSearchInput is model_search's input.
type ModelSearchInput struct {
	Query string `json:"query" jsonschema:"tags (task:, lang:, domain:, license:), benchmark bounds such as f1>=0.90, and free words"`
	Limit int    `json:"limit,omitempty" jsonschema:"at most this many results (default 10, at most 100)"`
}

// ModelRefInput is model_inspect's input.
type ModelRefInput struct {
	Ref string `json:"ref" jsonschema:"a model version, NAME@VERSION"`
}

// ModelResult is the answer of model_search and model_inspect.
type ModelResult struct {
	Result json.RawMessage `json:"result" jsonschema:"as accord model search --json or accord model inspect --json prints it"`
}

func (s *server) addModelTools(srv *mcp.Server) {
	add(s, srv, &mcp.Tool{Name: "model_search", Annotations: readOnly(),
		Description: "Find models in the model exchange by tags, benchmark bounds and free text, ranked with reasons."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in ModelSearchInput) (ModelResult, error) {
			if strings.TrimSpace(in.Query) == "" || len(in.Query) > maxQuery {
				return ModelResult{}, usagef("query: want 1 to %d bytes", maxQuery)
			}
			if in.Limit < 0 || in.Limit > 100 {
				return ModelResult{}, usagef("limit: want 0 to 100")
			}
			if in.Limit == 0 {
				in.Limit = 10
			}
			r, err := s.b.Models.Search(ctx, in.Query, in.Limit)
			return ModelResult{Result: r}, err
		})
	add(s, srv, &mcp.Tool{Name: "model_inspect", Annotations: readOnly(),
		Description: "A model version's manifest (owner, licence, prices, lineage, files) and attachments."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in ModelRefInput) (ModelResult, error) {
			if in.Ref == "" || len(in.Ref) > maxQuery {
				return ModelResult{}, usagef("ref: want NAME@VERSION")
			}
			r, err := s.b.Models.Inspect(ctx, in.Ref)
			return ModelResult{Result: r}, err
		})
}
