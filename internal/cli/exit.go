package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/accordmesh/accord/workflows"
)

// Exit codes distinguish failure classes so that scripts can branch on them.
// ExitCodes below is the documented table (README "Exit codes" mirrors it).
const (
	ExitOK           = 0
	ExitError        = 1 // anything not classified below
	ExitUsage        = 2 // bad command line
	ExitInvalidSpec  = 3 // the spec does not parse or validate
	ExitPolicy       = 4 // admission policy rejected the job
	ExitNoOffers     = 5 // no provider could bid
	ExitExecution    = 6 // a task failed to run to a zero exit
	ExitVerification = 7 // acceptance tests or an audit failed
	ExitCancelled    = 8 // the job was cancelled
	ExitFunds        = 9 // the tenant cannot escrow the job's budget
)

// Failure classes, as JSON errors name them ({"error": {"class": ...}}).
// Each exit code has one class; not_found refines exit code 1. A job's
// classes are the workflow's own.
const (
	ClassError        = "error"
	ClassNotFound     = "not_found"
	ClassUsage        = "usage"
	ClassInvalidSpec  = workflows.ClassInvalidSpec
	ClassPolicy       = workflows.ClassPolicy
	ClassNoOffers     = workflows.ClassNoOffers
	ClassExecution    = workflows.ClassExecution
	ClassVerification = workflows.ClassVerification
	ClassCancelled    = workflows.ClassCancelled
	ClassFunds        = workflows.ClassFunds
)

// ExitCodeInfo is one row of the exit-code table.
type ExitCodeInfo struct {
	Code    int
	Class   string
	Meaning string
}

// ExitCodes is the one table of exit codes; a test checks that README's
// "Exit codes" section lists the same rows.
var ExitCodes = []ExitCodeInfo{
	{ExitOK, "ok", "success"},
	{ExitError, ClassError, "a failure not classified below; class not_found when a named job, pool, tenant, receipt or file does not exist"},
	{ExitUsage, ClassUsage, "the command line is wrong: unknown command, subcommand or flag, missing or extra arguments, a missing required flag, a flag value out of range, an input that does not fit the command"},
	{ExitInvalidSpec, ClassInvalidSpec, "the spec does not parse or validate"},
	{ExitPolicy, ClassPolicy, "a policy denied the job (or `policy test` denied its input)"},
	{ExitNoOffers, ClassNoOffers, "no provider could bid"},
	{ExitExecution, ClassExecution, "a task failed to run to a zero exit"},
	{ExitVerification, ClassVerification, "acceptance tests failed, or `audit verify` found a problem"},
	{ExitCancelled, ClassCancelled, "the job was cancelled"},
	{ExitFunds, ClassFunds, "the tenant's balance cannot cover the job's escrow (its budget)"},
}

// ExitErr carries an exit code (and optionally a finer class) through
// cobra's error return.
type ExitErr struct {
	Code  int
	Class string // empty: the code's class
	Err   error
}

func (e *ExitErr) Error() string { return e.Err.Error() }
func (e *ExitErr) Unwrap() error { return e.Err }

// WithCode wraps err so that the process exits with code.
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitErr{Code: code, Err: err}
}

// Usage marks err as a usage error (exit 2).
func Usage(err error) error { return WithCode(ExitUsage, err) }

// Usagef is Usage(fmt.Errorf(format, a...)).
func Usagef(format string, a ...any) error { return Usage(fmt.Errorf(format, a...)) }

// InputErr classifies the failure to read an input the command line names:
// a missing file is not_found (exit 1), one that does not fit is a usage
// error.
func InputErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return Usage(err)
}

// NotFound marks err as naming something that does not exist (exit 1,
// class not_found).
func NotFound(err error) error {
	if err == nil {
		return nil
	}
	return &ExitErr{Code: ExitError, Class: ClassNotFound, Err: err}
}

// notFound holds sentinels that mean "no such thing"; RegisterNotFound adds
// the domain packages' ones (this package imports none of them).
var notFound = []error{fs.ErrNotExist}

// RegisterNotFound classifies errors wrapping any of errs as not_found.
func RegisterNotFound(errs ...error) { notFound = append(notFound, errs...) }

// ExitCode returns the process exit code for err.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *ExitErr
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitError
}

// ClassOf returns err's failure class.
func ClassOf(err error) string {
	var e *ExitErr
	if errors.As(err, &e) && e.Class != "" {
		return e.Class
	}
	code := ExitCode(err)
	if code == ExitError {
		for _, nf := range notFound {
			if errors.Is(err, nf) {
				return ClassNotFound
			}
		}
	}
	for _, c := range ExitCodes {
		if c.Code == code {
			return c.Class
		}
	}
	return ClassError
}

// ErrorObject is the JSON shape of a failure: the last line of stdout
// under --json when a command fails before printing its result.
type ErrorObject struct {
	Error struct {
		Class    string `json:"class"`
		Message  string `json:"message"`
		ExitCode int    `json:"exit_code"`
	} `json:"error"`
}

// writeError prints err as one ErrorObject line.
func writeError(w io.Writer, err error) {
	var o ErrorObject
	o.Error.Class, o.Error.Message, o.Error.ExitCode = ClassOf(err), err.Error(), ExitCode(err)
	b, _ := json.Marshal(o) // strings and an int: cannot fail
	fmt.Fprintf(w, "%s\n", b)
}
