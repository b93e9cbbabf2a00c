// Command accord turns a Markdown spec into a verified, paid-for compute job.
//
// The CLI is thin: each command parses flags and calls a package. Command
// groups live in their own files and add themselves to the root in init.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
	"github.com/accordmesh/accord/workers/jobclient"
)

// root is the top-level command; files in this package add their commands to it.
var root = &cobra.Command{
	Use:   "accord",
	Short: "Run Markdown specs as verified, paid-for compute jobs",
	Example: `  accord run examples/quickstart.md --fund 50000
  accord spec lint examples/*.md
  accord help run`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// Errors that mean "no such thing" exit 1 with class not_found.
func init() {
	cli.RegisterNotFound(jobclient.ErrNoJob, provenance.ErrNotFound, pools.ErrNotFound, policies.ErrUnknownTenant)
}

func main() {
	os.Exit(cli.Main(root, os.Args[1:]))
}
