package main

import (
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
)

// version and commit are set at link time (the Makefile passes
// -ldflags "-X main.commit=$(git rev-parse --short HEAD)"); commit is only
// the fallback for builds without Go's own VCS stamp.
var (
	version = "dev"
	commit  = ""
)

func init() {
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print Accord's version, Go version and commit",
		Example: `  accord version
  accord version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion()
			return cli.Print(cmd, v, func(w cli.Writer) {
				c := v.Commit
				if c == "" {
					c = "unknown"
				}
				if v.Modified {
					c += ", modified"
				}
				w.Printf("accord %s (%s, commit %s)\n", v.Version, v.Go, c)
			})
		},
	})
}

// versionInfo is what `accord version` prints.
type versionInfo struct {
	Version  string `json:"version"`
	Go       string `json:"go"`
	Commit   string `json:"commit"`
	Modified bool   `json:"modified,omitempty"`
}

// buildVersion reads the commit from Go's VCS stamp, else from -X main.commit.
func buildVersion() versionInfo {
	v := versionInfo{Version: version, Go: runtime.Version(), Commit: commit}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}
