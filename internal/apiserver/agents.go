package apiserver

import (
	"context"
	"net/http"

	"github.com/accordmesh/accord/policies"
)

// AgentsPath is where WithAgents mounts the agent interface (MCP).
const AgentsPath = "/mcp"

// WithAgents mounts h (the MCP streamable HTTP handler) at AgentsPath
// behind the same bearer tokens, rate limit and body limit as the API; h
// reads the token's principal with PrincipalFrom and offers auditors only
// read-only tools.
func WithAgents(h http.Handler) Option { return func(s *Server) { s.agents = h } }

type principalKey struct{}

// PrincipalFrom returns the principal of a request WithAgents's handler serves.
func PrincipalFrom(ctx context.Context) (policies.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(policies.Principal)
	return p, ok && p.Tenant != ""
}

// WithPrincipal returns ctx carrying p, as WithAgents's handler sees it.
func WithPrincipal(ctx context.Context, p policies.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func (s *Server) mountAgents() {
	if s.agents == nil {
		return
	}
	s.mux.Handle(AgentsPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.maxUpload)
		p, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		s.agents.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	}))
}
