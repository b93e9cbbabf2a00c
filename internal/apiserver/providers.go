package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/policies"
)

// Providers keeps provider agents' heartbeats; *agents.Registry implements it.
type Providers interface {
	Put(rec agents.Record) (agents.Record, error)
}

// WithProviders serves PUT /v1/providers/{name} into p. Without it the
// route answers 501.
func WithProviders(p Providers) Option { return func(s *Server) { s.providers = p } }

// Heartbeat is the body of PUT /v1/providers/{name}; HeartbeatResponse
// its answer.
type (
	Heartbeat         = agents.Heartbeat
	HeartbeatResponse = agents.Ack
)

// putProvider records a provider agent's heartbeat. Only that provider's
// own token (role provider, named after it) or an admin may publish it.
func (s *Server) putProvider(w http.ResponseWriter, r *http.Request, p policies.Principal) {
	name := r.PathValue("name")
	if !(p.Role == policies.RoleProvider && p.Name == name) && p.Role != policies.RoleAdmin {
		writeErr(w, http.StatusForbidden, "token may not publish this provider's profile")
		return
	}
	if s.providers == nil {
		writeErr(w, http.StatusNotImplemented, "this server keeps no provider agents")
		return
	}
	var hb Heartbeat
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hb); err != nil {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			err = &PublicError{Kind: ErrBadRequest, Message: "body: want a JSON object {runtime, profile, public_key, heartbeat_ns}"}
		}
		s.fail(w, r, err)
		return
	}
	rec, err := s.providers.Put(agents.Record{Name: name, Runtime: hb.Runtime, Profile: hb.Profile, PublicKey: hb.PublicKey, Heartbeat: hb.Interval})
	if errors.Is(err, agents.ErrInvalid) {
		err = &PublicError{Kind: ErrBadRequest, Message: err.Error()}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, HeartbeatResponse{Name: rec.Name, LastSeen: rec.LastSeen,
		FreshUntil: rec.LastSeen.Add(agents.FreshFactor * rec.Heartbeat)})
}
