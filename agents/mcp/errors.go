package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/provenance"
)

// Sentinels of this package; tool errors wrap them.
var (
	// ErrUnavailable reports a tool whose backend this server was not
	// given (no ledger, no market, no log directory).
	ErrUnavailable = errors.New("mcp: not available on this server")
	// ErrTooLarge reports an input over its bound.
	ErrTooLarge = errors.New("mcp: input too large")
)

// ToolError is a failed tool call as the CLI reports a failed command: its
// class, exit code and a message safe to show. Its Error is the JSON of
// cli.ErrorObject, which is what the client reads as the tool result's text.
type ToolError struct {
	Class    string
	Message  string
	ExitCode int
	err      error // the detail, for the log only
}

func (e *ToolError) Error() string {
	var o cli.ErrorObject
	o.Error.Class, o.Error.Message, o.Error.ExitCode = e.Class, e.Message, e.ExitCode
	b, _ := json.Marshal(o) // strings and an int: cannot fail
	return string(b)
}

func (e *ToolError) Unwrap() error { return e.err }

// toolErr classifies err by the CLI's failure classes. A public error's
// message is shown; any other error gets its class's fixed message and is
// logged in full.
func toolErr(log *slog.Logger, tool string, err error) error {
	var te *ToolError
	if errors.As(err, &te) {
		return te
	}
	class, code, msg := classify(err)
	internal := msg == internalError
	var pub *apiserver.PublicError
	switch {
	case internal:
	case errors.As(err, &pub):
		msg = pub.Message
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrUnavailable):
		msg = err.Error() // our own words about the input or this server
	case class == cli.ClassNoOffers:
		msg = err.Error() // the market's diagnostics: which provider could not bid and why
	}
	level := slog.LevelInfo
	if internal {
		level = slog.LevelError
	}
	log.Log(context.Background(), level, "mcp tool failed", "tool", tool, "class", class, "err", err)
	return &ToolError{Class: class, Message: msg, ExitCode: code, err: err}
}

// classify maps an error to its class, exit code and fixed message.
func classify(err error) (string, int, string) {
	switch {
	case errors.Is(err, apiserver.ErrNotFound), errors.Is(err, provenance.ErrNotFound):
		return cli.ClassNotFound, cli.ExitError, "job not found"
	case errors.Is(err, apiserver.ErrInvalid):
		return cli.ClassInvalidSpec, cli.ExitInvalidSpec, "the spec is not valid"
	case errors.Is(err, apiserver.ErrBadRequest), errors.Is(err, ErrTooLarge):
		return cli.ClassUsage, cli.ExitUsage, "bad request"
	case errors.Is(err, apiserver.ErrForbidden):
		return cli.ClassPolicy, cli.ExitPolicy, "not allowed"
	case errors.Is(err, market.ErrNoOffers), errors.Is(err, market.ErrNoAgreement):
		return cli.ClassNoOffers, cli.ExitNoOffers, "no provider could bid"
	case errors.Is(err, apiserver.ErrConflict):
		return cli.ClassError, cli.ExitError, "the job is not in a state that allows this"
	case errors.Is(err, ErrUnavailable):
		return cli.ClassError, cli.ExitError, "this tool is not available on this server"
	}
	return cli.ClassError, cli.ExitError, internalError
}

// internalError is the message of an error that is not the caller's.
const internalError = "internal error"

// public returns a ToolError shown as it is.
func public(class string, code int, format string, a ...any) error {
	return &ToolError{Class: class, ExitCode: code, Message: fmt.Sprintf(format, a...)}
}

// usagef is a usage-class tool error.
func usagef(format string, a ...any) error {
	return public(cli.ClassUsage, cli.ExitUsage, format, a...)
}

// notFound is the answer for a job the caller may not see, as for one
// that does not exist.
func notFound() error { return public(cli.ClassNotFound, cli.ExitError, "job not found") }
