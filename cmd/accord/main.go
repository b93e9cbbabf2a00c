// Command accord turns a Markdown spec into a verified, paid-for compute job.
//
// The CLI is thin: each command parses flags and calls a package. Command
// groups live in their own files and add themselves to the root in init.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
)

// root is the top-level command; files in this package add their commands to it.
var root = &cobra.Command{
	Use:           "accord",
	Short:         "Run Markdown specs as verified, paid-for compute jobs",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	cli.AddGlobalFlags(root)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "accord:", err)
		os.Exit(cli.ExitCode(err))
	}
}
