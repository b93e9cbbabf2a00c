package apiserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// Sentinels the Jobs implementation returns; the server maps them to status
// codes. Their own text is never shown to a caller: each maps to a fixed
// message, unless it comes wrapped in a PublicError.
var (
	ErrNotFound   = errors.New("apiserver: job not found")
	ErrConflict   = errors.New("apiserver: job is not in a state that allows this")
	ErrInvalid    = errors.New("apiserver: invalid request")
	ErrBadRequest = errors.New("apiserver: bad request")
	ErrForbidden  = errors.New("apiserver: forbidden")
)

// PublicError is an error about the caller's own request whose Message is
// safe to show: it names nothing of the server (no path, no internal
// state), like the positions of a spec's errors in the uploaded document.
// Kind is one of the sentinels and picks the status code.
type PublicError struct {
	Kind    error
	Message string
}

func (e *PublicError) Error() string { return e.Message }
func (e *PublicError) Unwrap() error { return e.Kind }

// Public returns a PublicError of kind with a formatted message.
func Public(kind error, format string, a ...any) error {
	return &PublicError{Kind: kind, Message: fmt.Sprintf(format, a...)}
}

// statusOf maps an error to its status code and the fixed message shown
// when the error carries no public one.
func statusOf(err error) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than the %d-byte limit", mbe.Limit)
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "job not found"
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, "the job is not in a state that allows this"
	case errors.Is(err, ErrInvalid):
		return http.StatusUnprocessableEntity, "the request is not valid"
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "bad request"
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "not allowed"
	}
	return http.StatusInternalServerError, "internal error"
}

// fail answers a failed request. The caller sees a fixed message for the
// error's class, or a PublicError's message; the detail (which may hold
// paths and internals) goes to the server's log only.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := statusOf(err)
	var pub *PublicError
	if errors.As(err, &pub) && code < http.StatusInternalServerError {
		msg = pub.Message
	}
	level := slog.LevelInfo
	if code >= http.StatusInternalServerError {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "api request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	writeErr(w, code, msg)
}
