package main

import (
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
)

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"

func init() {
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print Accord's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := struct {
				Version string `json:"version"`
				Go      string `json:"go"`
				Commit  string `json:"commit,omitempty"`
			}{Version: version, Go: runtime.Version()}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v.Commit = s.Value
					}
				}
			}
			return cli.Print(cmd, v, func(w cli.Writer) {
				w.Printf("accord %s (%s)\n", v.Version, v.Go)
			})
		},
	})
}
