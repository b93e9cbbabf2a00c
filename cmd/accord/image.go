package main

import (
	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/examples/images"
	"github.com/accordmesh/accord/internal/cli"
)

func init() {
	image := &cobra.Command{Use: "image", Short: "Build workload images", Example: `  accord image build`}
	var opts images.Options
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the example trainer image into an OCI archive (no registry or engine needed)",
		Example: `  accord image build
  accord image build --out /tmp/trainer.tar --busybox ''`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, d, err := images.BuildTrainer(cmd.Context(), opts)
			if err != nil {
				return err
			}
			name := opts.Name
			if name == "" {
				name = images.TrainerName
			}
			v := struct {
				Path   string `json:"path"`
				Name   string `json:"name"`
				Digest string `json:"digest"`
			}{path, name, d.String()}
			return cli.Print(cmd, v, func(w cli.Writer) {
				w.Printf("%s: %s %s\n", v.Path, v.Name, v.Digest)
			})
		},
	}
	f := build.Flags()
	f.StringVar(&opts.RepoDir, "repo", ".", "repository root holding the trainer source")
	f.StringVar(&opts.Out, "out", "", "archive to write (default REPO/examples/images/trainer.tar)")
	f.StringVar(&opts.Name, "name", images.TrainerName, "image reference recorded in the archive")
	f.StringVar(&opts.Busybox, "busybox", images.DefaultBusybox(), "static busybox binary to add with /bin/sh (empty: none)")
	image.AddCommand(build)
	root.AddCommand(image)
}
