// Package apiserver is Accord's HTTP API (`accord serve`): submit, status,
// list, cancel, approve, receipts, audit search, data uploads (a
// tenant's input files into the artifact store) and provider agents'
// heartbeats (PUT /v1/providers/{name}) and their artifact store
// (/v1/blobs, /v1/outputs: blobs.go), behind per-tenant bearer tokens. A tenant sees and acts on its own jobs only; auditors have
// read-only tokens. The job operations themselves are behind the Jobs
// interface, which the workflow client implements.
//
// The API is built to face the public: request bodies are bounded (an
// upload limit; data uploads have their own, and a minimum pace instead of
// the read timeout), each token (and each address without a valid token) has
// a token-bucket rate limit answered with 429 and Retry-After, expired and
// revoked tokens get 401, error bodies carry a fixed message per class of
// error or a PublicError's (never a path or an internal detail, which go
// to the log), and NewHTTPServer bounds what a slow or idle connection can
// hold.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/accordmesh/accord/policies"
)

// Job is what the API shows of a job.
type Job struct {
	JobID     string    `json:"job_id"`
	Tenant    string    `json:"tenant"`
	Spec      string    `json:"spec"`
	Status    string    `json:"status"`
	Stage     string    `json:"stage,omitempty"`
	Cost      int64     `json:"cost"`
	Currency  string    `json:"currency,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	Error     string    `json:"error,omitempty"`
	// Bargain is the sellers' current offers while the job waits for its
	// buyer agent's counter-offer (negotiation.buyer: agent).
	Bargain *Bargain `json:"bargain,omitempty"`
}

// Bargain is a bargaining job's round: the buyer's move number, the last
// move the deadline allows, when the round times out, the budget a price
// may not exceed, and each seller's current offer.
type Bargain struct {
	Round         int          `json:"round"`
	DeadlineRound int          `json:"deadline_round"`
	Budget        int64        `json:"budget_minor"`
	Currency      string       `json:"currency"`
	Timeout       time.Time    `json:"timeout"`
	Offers        []PriceOffer `json:"offers"`
}

// PriceOffer is one seller's offer.
type PriceOffer struct {
	Provider string `json:"provider"`
	Price    int64  `json:"price_minor"`
}

// CounterRequest is the body of POST /v1/jobs/{id}/counter: a
// counter-offer price or the provider whose offer the buyer accepts.
type CounterRequest struct {
	Price  int64  `json:"price_minor,omitempty"`
	Accept string `json:"accept,omitempty"`
}

// CounterReply is the sellers' response to a counter-offer: their next
// offers, or the end of the bargain (Agreed names the provider; none, no
// agreement).
type CounterReply struct {
	JobID  string       `json:"job_id"`
	Round  int          `json:"round"`
	Over   bool         `json:"over"`
	Agreed string       `json:"agreed,omitempty"`
	Price  int64        `json:"price_minor,omitempty"`
	Offers []PriceOffer `json:"offers,omitempty"`
}

// Bargainer is a Jobs that takes buyer agents' counter-offers; by is the
// identity of the caller's token. Without it the counter route answers
// that the server does not bargain.
type Bargainer interface {
	Counter(ctx context.Context, jobID, by string, req CounterRequest) (CounterReply, error)
}

// maxCounterBody bounds a counter-offer's body.
const maxCounterBody = 4 << 10

// SubmitRequest is the body of POST /v1/jobs.
type SubmitRequest struct {
	Name      string `json:"name"`                // a plain file name, for error positions (default spec.md)
	Document  string `json:"document"`            // the spec's exact Markdown
	Signature []byte `json:"signature,omitempty"` // DSSE envelope (base64 in JSON)
}

// ListFilter narrows GET /v1/jobs.
type ListFilter struct {
	Tenant string // "" for every tenant (admins, organisation auditors)
	Status string
	Spec   string
}

// AuditQuery is GET /v1/audit/search's query.
type AuditQuery struct {
	JobID          string    `json:"job_id,omitempty"`
	SpecDigest     string    `json:"spec_digest,omitempty"`
	ArtifactDigest string    `json:"artifact_digest,omitempty"`
	KeyID          string    `json:"key_id,omitempty"`
	Since          time.Time `json:"since,omitzero"`
	Until          time.Time `json:"until,omitzero"`
}

// AuditHit is one log entry found by an audit search.
type AuditHit struct {
	JobID    string `json:"job_id"`
	Tenant   string `json:"tenant"`
	Stage    string `json:"stage"`
	UUID     string `json:"uuid"`
	LogIndex int64  `json:"log_index"`
	Time     int64  `json:"integrated_time"`
}

// Jobs is what the server needs from the job system. Errors about the
// caller's request wrap the sentinels, as a PublicError where the caller
// should see why; any other error is answered "internal error".
type Jobs interface {
	// SpecTenant parses a submitted document far enough to name its tenant.
	// It reads no other file: an upload stands alone.
	SpecTenant(ctx context.Context, name string, document []byte) (string, error)
	Submit(ctx context.Context, req SubmitRequest) (Job, error)
	Get(ctx context.Context, jobID string) (Job, error)
	List(ctx context.Context, f ListFilter) ([]Job, error)
	Cancel(ctx context.Context, jobID string) error
	Approve(ctx context.Context, jobID, by, reason string) error
	Receipt(ctx context.Context, jobID string) (json.RawMessage, error)
	AuditSearch(ctx context.Context, q AuditQuery) ([]AuditHit, error)
}

// Authenticator maps a bearer token to a principal.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (policies.Principal, error)
}

// Route is one API route; Write routes change state and are refused to auditors.
type Route struct {
	Method, Path string
	Write        bool
}

// Routes lists every authenticated route; tests enumerate it.
var Routes = []Route{
	{"POST", "/v1/jobs", true},
	{"GET", "/v1/jobs", false},
	{"GET", "/v1/jobs/{id}", false},
	{"POST", "/v1/jobs/{id}/cancel", true},
	{"POST", "/v1/jobs/{id}/approve", true},
	{"POST", "/v1/jobs/{id}/counter", true},
	{"GET", "/v1/jobs/{id}/receipt", false},
	{"GET", "/v1/audit/search", false},
	{"POST", "/v1/data", true},
	{"PUT", "/v1/providers/{name}", true},
}

// DefaultMaxUpload bounds a request body: a spec is at most 4 MiB, plus
// its signature and JSON's escaping.
const DefaultMaxUpload = 6 << 20

// maxNameLen bounds an upload's file name.
const maxNameLen = 128

// Server is the HTTP API.
type Server struct {
	jobs      Jobs
	auth      Authenticator
	mux       *http.ServeMux
	maxUpload int64
	limit     *limiter
	log       *slog.Logger
	data      Data
	maxData   int64
	dataGrace time.Duration
	dataRate  int64
	providers Providers
	blobs     Blobs
	maxBlob   int64
	agents    http.Handler // the MCP endpoint (AgentsPath)
}

// Option configures a Server.
type Option func(*Server)

// WithMaxUpload bounds request bodies to n bytes (default DefaultMaxUpload);
// a larger body is answered 413.
func WithMaxUpload(n int64) Option { return func(s *Server) { s.maxUpload = n } }

// WithRateLimit allows each token rate requests a second in bursts of
// burst (default DefaultRate, DefaultBurst); rate 0 turns the limit off.
func WithRateLimit(rate float64, burst int) Option {
	return func(s *Server) { s.limit = newLimiter(rate, burst) }
}

// WithLogger sets where failed requests are logged in detail (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// New returns the API handler.
func New(jobs Jobs, auth Authenticator, opts ...Option) *Server {
	s := &Server{jobs: jobs, auth: auth, mux: http.NewServeMux(), maxUpload: DefaultMaxUpload,
		limit: newLimiter(DefaultRate, DefaultBurst), log: slog.Default(),
		maxData: DefaultMaxData, maxBlob: DefaultMaxData, dataGrace: DefaultDataGrace, dataRate: DefaultDataRate}
	for _, o := range opts {
		o(s)
	}
	handlers := map[string]func(http.ResponseWriter, *http.Request, policies.Principal){
		"POST /v1/jobs":              s.submit,
		"GET /v1/jobs":               s.list,
		"GET /v1/jobs/{id}":          s.get,
		"POST /v1/jobs/{id}/cancel":  s.cancel,
		"POST /v1/jobs/{id}/approve": s.approve,
		"POST /v1/jobs/{id}/counter": s.counter,
		"GET /v1/jobs/{id}/receipt":  s.receipt,
		"GET /v1/audit/search":       s.auditSearch,
		"POST /v1/data":              s.pushData,
		"PUT /v1/providers/{name}":   s.putProvider,
	}
	for _, r := range Routes {
		h := handlers[r.Method+" "+r.Path]
		if h == nil {
			panic("apiserver: no handler for " + r.Method + " " + r.Path)
		}
		limit := s.maxUpload
		if r.Path == "/v1/data" {
			limit = s.maxData // raw input files, not specs
		}
		s.mux.Handle(r.Method+" "+r.Path, s.authed(r, limit, h))
	}
	agentHandlers := s.providerHandlers()
	for _, r := range ProviderRoutes {
		h := agentHandlers[r.Method+" "+r.Path]
		if h == nil {
			panic("apiserver: no handler for " + r.Method + " " + r.Path)
		}
		limit := s.maxUpload
		if r.Method == "POST" {
			limit = s.maxBlob
		}
		s.mux.Handle(r.Method+" "+r.Path, s.authedAgent(limit, h))
	}
	s.mountAgents()
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) authed(rt Route, limit int64, h func(http.ResponseWriter, *http.Request, policies.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		p, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		if rt.Write && p.Role == policies.RoleAuditor {
			writeErr(w, http.StatusForbidden, "auditor tokens are read-only")
			return
		}
		if p.Role == policies.RoleProvider && rt.Path != "/v1/providers/{name}" {
			writeErr(w, http.StatusForbidden, "provider tokens only publish their provider's profile")
			return
		}
		h(w, r, p)
	})
}

// authenticate checks the bearer token and the rate limit: the token's
// own, or, for a missing or bad token, the caller's address's, so that
// guessing tokens is as slow as using one.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (policies.Principal, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var p policies.Principal
	var err error
	if ok && tok != "" {
		p, err = s.auth.Authenticate(r.Context(), tok)
	}
	key := "token:" + p.ID
	if err != nil || p.ID == "" {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		key = "addr:" + host
	}
	if allowed, wait := s.limit.allow(key); !allowed {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeErr(w, http.StatusTooManyRequests, "rate limit exceeded; retry later")
		return p, false
	}
	switch {
	case !ok || tok == "":
		writeErr(w, http.StatusUnauthorized, "missing bearer token")
	case errors.Is(err, policies.ErrTokenExpired):
		writeErr(w, http.StatusUnauthorized, "token expired")
	case err != nil:
		if !errors.Is(err, policies.ErrBadToken) {
			s.log.Error("authenticate", "err", err)
		}
		writeErr(w, http.StatusUnauthorized, "invalid token")
	default:
		return p, true
	}
	return p, false
}

// job loads a job the principal may see; others' jobs are "not found" so
// that their existence does not leak.
func (s *Server) job(w http.ResponseWriter, r *http.Request, p policies.Principal) (Job, bool) {
	j, err := s.jobs.Get(r.Context(), r.PathValue("id"))
	if err == nil && !p.CanRead(j.Tenant) {
		err = ErrNotFound
	}
	if err != nil {
		s.fail(w, r, err)
		return Job{}, false
	}
	return j, true
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	var req SubmitRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			err = &PublicError{Kind: ErrBadRequest, Message: "body: want a JSON object {name, document, signature}"}
		}
		s.fail(w, r, err)
		return
	}
	if req.Name == "" {
		req.Name = "spec.md"
	}
	if err := CheckName(req.Name); err != nil {
		s.fail(w, r, err)
		return
	}
	tenant, err := s.jobs.SpecTenant(r.Context(), req.Name, []byte(req.Document))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !p.CanWrite(tenant) {
		writeErr(w, http.StatusForbidden, fmt.Sprintf("token may not submit jobs for tenant %q", tenant))
		return
	}
	j, err := s.jobs.Submit(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, j)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	q := r.URL.Query()
	f := ListFilter{Tenant: q.Get("tenant"), Status: q.Get("status"), Spec: q.Get("spec")}
	if p.Tenant != "*" {
		if f.Tenant != "" && f.Tenant != p.Tenant {
			writeErr(w, http.StatusForbidden, "token may not list another tenant's jobs")
			return
		}
		f.Tenant = p.Tenant
	}
	jobs, err := s.jobs.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []Job{}
	for _, j := range jobs { // defence in depth: never trust the filter alone
		if p.CanRead(j.Tenant) {
			out = append(out, j)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	if j, ok := s.job(w, r, p); ok {
		writeJSON(w, http.StatusOK, j)
	}
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	s.act(w, r, p, func(ctx context.Context, id string) error { return s.jobs.Cancel(ctx, id) }, "cancel requested")
}

// approve passes the gate as the token's identity; an optional body
// {"reason": "..."} says why. The job's workflow checks the identity
// against the spec's approvers.
func (s *Server) approve(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	var req struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) {
				err = &PublicError{Kind: ErrBadRequest, Message: "body: want nothing or a JSON object {reason}"}
			}
			s.fail(w, r, err)
			return
		}
	}
	by := p.Identity()
	s.act(w, r, p, func(ctx context.Context, id string) error { return s.jobs.Approve(ctx, id, by, req.Reason) }, "approved")
}

// counter makes the buyer agent's move in a bargaining job as the token's
// identity, with the same tenant scope as approve, and answers the
// sellers' response.
func (s *Server) counter(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	j, ok := s.job(w, r, p)
	if !ok {
		return
	}
	if !p.CanWrite(j.Tenant) {
		writeErr(w, http.StatusForbidden, "token may not act on this job")
		return
	}
	b, ok := s.jobs.(Bargainer)
	if !ok {
		writeErr(w, http.StatusNotImplemented, "this server does not take counter-offers")
		return
	}
	var req CounterRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxCounterBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			err = &PublicError{Kind: ErrBadRequest, Message: "body: want a JSON object {price_minor} or {accept}"}
		}
		s.fail(w, r, err)
		return
	}
	if (req.Price != 0) == (req.Accept != "") || req.Price < 0 || len(req.Accept) > maxNameLen {
		s.fail(w, r, &PublicError{Kind: ErrBadRequest, Message: "body: want exactly one of a positive price_minor or accept (a provider name)"})
		return
	}
	rep, err := b.Counter(r.Context(), j.JobID, p.Identity(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep.JobID = j.JobID
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) act(w http.ResponseWriter, r *http.Request, p policies.Principal, do func(context.Context, string) error, what string) {
	j, ok := s.job(w, r, p)
	if !ok {
		return
	}
	if !p.CanWrite(j.Tenant) {
		writeErr(w, http.StatusForbidden, "token may not act on this job")
		return
	}
	if err := do(r.Context(), j.JobID); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"job_id": j.JobID, "status": what})
}

func (s *Server) receipt(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	j, ok := s.job(w, r, p)
	if !ok {
		return
	}
	rec, err := s.jobs.Receipt(r.Context(), j.JobID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(rec)
}

func (s *Server) auditSearch(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	q := r.URL.Query()
	aq := AuditQuery{JobID: q.Get("job_id"), SpecDigest: q.Get("spec_digest"), ArtifactDigest: q.Get("artifact_digest"), KeyID: q.Get("key_id")}
	for name, dst := range map[string]*time.Time{"since": &aq.Since, "until": &aq.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeErr(w, http.StatusBadRequest, fmt.Sprintf("%s: want RFC 3339 time: %v", name, err))
				return
			}
			*dst = t
		}
	}
	hits, err := s.jobs.AuditSearch(r.Context(), aq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []AuditHit{}
	for _, h := range hits {
		if p.CanRead(h.Tenant) {
			out = append(out, h)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
}

// CheckName accepts an upload's file name: a plain name (no directory,
// not hidden, printable, at most 128 bytes), since it names a file in the
// server's upload store and appears in error positions.
func CheckName(name string) error {
	bad := name == "" || len(name) > maxNameLen || strings.HasPrefix(name, ".") ||
		strings.ContainsFunc(name, func(r rune) bool {
			return r == '/' || r == '\\' || r == ':' || !unicode.IsPrint(r) || unicode.IsSpace(r)
		})
	if bad {
		return Public(ErrBadRequest, "name: want a plain file name such as job.md (no directory, not hidden, at most %d bytes)", maxNameLen)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// Client is a small client for the API, used by the CLI's --server mode.
type Client struct {
	URL, Token string
	HTTP       *http.Client
}

// Do sends a request and decodes a JSON response into out (when non-nil).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("apiserver: encode: %w", err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("apiserver: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("apiserver: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("apiserver: read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		err := fmt.Errorf("apiserver: %s %s: %s: %s", method, path, resp.Status, e.Error)
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w (%v)", ErrNotFound, err)
		}
		return err
	}
	if out != nil {
		if raw, ok := out.(*json.RawMessage); ok {
			*raw = data
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("apiserver: decode response: %w", err)
		}
	}
	return nil
}
