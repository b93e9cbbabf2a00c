package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/specs"
)

// specCmd is the "accord spec" group; other files add subcommands to it
// (e.g. "accord spec sign") with specCmd.AddCommand in their init.
var specCmd = newSpecCmd()

func init() { root.AddCommand(specCmd) }

func newSpecCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "spec",
		Short: "Check and compile Markdown specs",
		Example: `  accord spec lint examples/*.md
  accord spec compile examples/quickstart.md`,
	}
	c.AddCommand(newSpecLintCmd(), newSpecCompileCmd())
	return c
}

// lintError is one problem in the JSON output of lint and compile.
type lintError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
}

type lintFile struct {
	File   string      `json:"file"`
	OK     bool        `json:"ok"`
	Errors []lintError `json:"errors"`
	// Warnings are findings that do not fail lint (an implausible budget,
	// a missing image archive).
	Warnings []lintError `json:"warnings,omitempty"`
}

// lintErrors turns a Load error into the JSON shape: each ErrorList entry,
// or the whole error at line 0 when the file could not be read at all.
func lintErrors(file string, err error) []lintError {
	out := []lintError{}
	if err == nil {
		return out
	}
	if l := specs.Errors(err); l != nil {
		return lintList(l)
	}
	return append(out, lintError{File: file, Message: err.Error()})
}

func newSpecLintCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lint FILE...",
		Short: "Report every problem in each spec as file:line:col: message",
		Example: `  accord spec lint examples/quickstart.md
  accord spec lint examples/*.md --json`,
		Long: "lint parses, composes and validates each spec and reports all problems at once.\n" +
			"It exits with code 3 if any file has a problem.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res := struct {
				Files []lintFile `json:"files"`
				OK    bool       `json:"ok"`
			}{Files: []lintFile{}, OK: true}
			bad := 0
			for _, f := range args {
				s, err := specs.Load(f)
				var p *specs.Plan
				if err == nil {
					p, err = specs.Compile(s)
				}
				lf := lintFile{File: f, OK: err == nil, Errors: lintErrors(f, err)}
				if err == nil {
					lf.Warnings = lintList(specs.Warnings(s, p))
				}
				if err != nil {
					res.OK = false
					bad++
				}
				res.Files = append(res.Files, lf)
			}
			if err := cli.Print(cmd, res, func(w cli.Writer) {
				for _, f := range res.Files {
					for _, e := range f.Warnings {
						w.Printf("%s:%d:%d: warning: %s\n", e.File, e.Line, e.Col, e.Message)
					}
					if f.OK {
						w.Printf("%s: ok\n", f.File)
						continue
					}
					for _, e := range f.Errors {
						if e.Line == 0 {
							w.Printf("%s: %s\n", e.File, e.Message)
						} else {
							w.Printf("%s:%d:%d: %s\n", e.File, e.Line, e.Col, e.Message)
						}
					}
				}
			}); err != nil {
				return err
			}
			if bad > 0 {
				return cli.WithCode(cli.ExitInvalidSpec, fmt.Errorf("%d of %d specs have problems", bad, len(args)))
			}
			return nil
		},
	}
}

func newSpecCompileCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compile FILE",
		Short: "Print the execution plan of a spec",
		Example: `  accord spec compile examples/quickstart.md
  accord spec compile examples/llm-finetune.md --json`,
		Long: "compile loads a spec and prints its plan: tasks in topological order with\n" +
			"resource, trust and data-flow annotations, the critical path, the maximum cost\n" +
			"and both digests. With --json the plan is one JSON object.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := specs.LoadPlan(args[0])
			if err != nil {
				code := cli.ExitError
				if errors.Is(err, specs.ErrInvalid) {
					code = cli.ExitInvalidSpec
				}
				if cli.JSON() {
					lf := lintFile{File: args[0], Errors: lintErrors(args[0], err)}
					if perr := cli.Print(cmd, lf, nil); perr != nil {
						return perr
					}
				}
				return cli.WithCode(code, err)
			}
			return cli.Print(cmd, p, func(w cli.Writer) { printPlan(w, p) })
		},
	}
}

func printPlan(w cli.Writer, p *specs.Plan) {
	w.Printf("%s %s (tenant %s)\n", p.Name, p.Version, p.Tenant)
	w.Printf("document %s\ncontract %s\n", p.DocumentDigest, p.ContractDigest)
	w.Printf("max cost %s (reference cost %s)\n", formatMoney(p.MaxCost, p.Currency), formatMoney(p.ReferenceCost, p.Currency))
	w.Printf("critical path %s (%s)\n", strings.Join(p.CriticalPath, " -> "), p.CriticalTime.Round(time.Second))
	w.Printf("%-24s %5s %8s %10s %4s %9s  %s\n", "TASK", "LEVEL", "CPU", "MEMORY", "GPU", "MAX", "DEPENDS ON")
	for _, t := range p.Tasks {
		mark := " "
		if t.Critical {
			mark = "*"
		}
		w.Printf("%-23s%s %5d %7dm %9dMi %4d %9s  %s\n", t.Name, mark, t.Level, t.Resources.MilliCPU,
			t.Resources.MemoryBytes>>20, t.Resources.GPU.Count, t.Resources.MaxDuration, strings.Join(t.DependsOn, ", "))
	}
}

// lintList turns an ErrorList into the JSON shape.
func lintList(l specs.ErrorList) []lintError {
	out := []lintError{}
	for _, e := range l {
		out = append(out, lintError{File: e.Pos.File, Line: e.Pos.Line, Col: e.Pos.Col, Message: e.Message})
	}
	return out
}
