// Package cli holds what every accord command shares: the global flags
// (--json, --home), result printing, and exit codes by failure class.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
)

// Exit codes distinguish failure classes so that scripts can branch on them.
const (
	ExitOK           = 0
	ExitError        = 1 // anything not classified below
	ExitUsage        = 2 // bad flags or arguments
	ExitInvalidSpec  = 3 // the spec does not parse or validate
	ExitPolicy       = 4 // admission policy rejected the job
	ExitNoOffers     = 5 // no provider could bid
	ExitExecution    = 6 // a task failed to run to a zero exit
	ExitVerification = 7 // acceptance tests failed
	ExitCancelled    = 8 // the job was cancelled
)

// ExitError carries an exit code through cobra's error return.
type ExitErr struct {
	Code int
	Err  error
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

// ExitCode returns the process exit code for err.
func ExitCode(err error) int {
	var e *ExitErr
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitError
}

var (
	jsonOut bool
	home    string
	verbose bool
)

// AddGlobalFlags installs the flags every command has.
func AddGlobalFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.BoolVar(&jsonOut, "json", false, "print results as JSON (the last line of stdout is one JSON object)")
	pf.StringVar(&home, "home", "", "Accord's state directory (default $ACCORD_HOME or ~/.accord)")
	pf.BoolVarP(&verbose, "verbose", "v", false, "debug logging on stderr")
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		level := slog.LevelInfo
		if verbose {
			level = slog.LevelDebug
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		// Libraries underneath (Tessera) log through klog; route it into
		// slog so it follows -v instead of interleaving with progress output.
		klog.SetSlogLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: klogLevel(verbose)})))
	}
}

// JSON reports whether --json was given.
func JSON() bool { return jsonOut }

// Home returns Accord's state directory, creating it if needed.
func Home() (string, error) {
	abs, err := HomePath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("cli: create home: %w", err)
	}
	return abs, nil
}

// HomePath returns Accord's state directory without creating it, for
// commands that only read state.
func HomePath() (string, error) {
	dir := home
	if dir == "" {
		dir = os.Getenv("ACCORD_HOME")
	}
	if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cli: no home directory: %w", err)
		}
		dir = filepath.Join(h, ".accord")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("cli: home %q: %w", dir, err)
	}
	return abs, nil
}

// Writer prints human-readable output.
type Writer struct{ io.Writer }

// Printf writes formatted text.
func (w Writer) Printf(format string, a ...any) { fmt.Fprintf(w.Writer, format, a...) }

// Print writes v as one line of JSON with --json, otherwise calls human.
func Print(cmd *cobra.Command, v any, human func(Writer)) error {
	out := cmd.OutOrStdout()
	if jsonOut {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("cli: encode result: %w", err)
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	human(Writer{out})
	return nil
}

// klogLevel keeps klog's informational lines out of the way unless -v.
func klogLevel(verbose bool) slog.Level {
	if verbose {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
