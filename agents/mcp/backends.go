package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/specs"
)

// FileLogs reads the task logs the worker keeps under Home/jobs/<job>/logs
// (one <run>.log per task attempt), as `accord logs` does.
type FileLogs struct {
	Home string
}

// Tail implements Logs: the end of each run's log, sharing maxBytes
// evenly; the job ID has been checked (no path separators).
func (f FileLogs) Tail(_ context.Context, jobID string, maxBytes int) ([]LogTail, error) {
	if err := checkJobID(jobID); err != nil {
		return nil, err
	}
	dir := filepath.Join(f.Home, "jobs", jobID, "logs")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return []LogTail{}, nil // nothing has run yet
	}
	if err != nil {
		return nil, fmt.Errorf("mcp: logs of %s: %w", jobID, err)
	}
	var runs []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".log") {
			runs = append(runs, e.Name())
		}
	}
	sort.Strings(runs)
	out := []LogTail{}
	for _, name := range runs {
		t, err := tail(filepath.Join(dir, name), int64(maxBytes/len(runs)))
		if err != nil {
			return nil, fmt.Errorf("mcp: logs of %s: %w", jobID, err)
		}
		t.Run = strings.TrimSuffix(name, ".log")
		out = append(out, t)
	}
	return out, nil
}

// tail reads at most n bytes from the end of a regular file.
func tail(path string, n int64) (LogTail, error) {
	f, err := os.Open(path)
	if err != nil {
		return LogTail{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return LogTail{}, fmt.Errorf("%s: not a regular file", filepath.Base(path))
	}
	off := max(fi.Size()-n, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return LogTail{}, err
	}
	return LogTail{Text: strings.ToValidUTF8(string(b), "\uFFFD"), Bytes: fi.Size(), Truncated: off > 0}, nil
}

// BrokerQuoter quotes through the worker's broker: the same providers and
// placement policies a negotiation uses, with a quote's own job name, and
// no device assignment (nothing is reserved).
type BrokerQuoter struct {
	Broker broker.Broker
}

// Quote implements Quoter.
func (q BrokerQuoter) Quote(ctx context.Context, p *specs.Plan) (*market.Result, error) {
	b := q.Broker
	b.Assign = nil
	aw, err := b.Negotiate(ctx, "quote-"+strings.TrimPrefix(p.ContractDigest, "sha256:")[:min(12, len(p.ContractDigest))], p)
	if err != nil {
		return nil, err
	}
	return aw.Result, nil
}

// Handler serves MCP's streamable HTTP transport for requests already
// authenticated by the HTTP API (apiserver.WithAgents puts the token's
// principal on each request). A session is bound to the token that opened
// it: a request of the session with another token is refused (403).
func Handler(b Backend, opts ...Option) http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		p, ok := apiserver.PrincipalFrom(r.Context())
		if !ok {
			return nil // answered 400; never reached behind apiserver
		}
		return New(b, p, append([]Option{withMaxWait(HTTPMaxWait)}, opts...)...)
	}, &mcp.StreamableHTTPOptions{MaxRequestBodyBytes: maxReceipt + 1<<20})
	verify := func(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		p, ok := apiserver.PrincipalFrom(r.Context())
		if !ok {
			return nil, auth.ErrInvalidToken
		}
		// UserID binds the session to the token (the SDK checks it on
		// every request of the session).
		return &auth.TokenInfo{UserID: p.Tenant + "/" + p.ID + "/" + p.Identity()}, nil
	}
	authed := auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A call that waits for a job (or a stream of notifications) holds
		// its response open past the API's write timeout, up to the wait.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(HTTPMaxWait + time.Minute))
		authed.ServeHTTP(w, r)
	})
}

// withMaxWait bounds job_submit's wait.
func withMaxWait(d time.Duration) Option { return func(c *config) { c.maxWait = d } }
