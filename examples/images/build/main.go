// Command build writes examples/images/trainer.tar (used by `make images`),
// the same archive `accord image build` writes, without linking the whole CLI.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/accordmesh/accord/examples/images"
)

func main() {
	out := flag.String("o", "examples/images/trainer.tar", "archive to write")
	busybox := flag.String("busybox", images.DefaultBusybox(), "static busybox to include with /bin/sh (empty: none)")
	flag.Parse()
	path, d, err := images.BuildTrainer(context.Background(), images.Options{Out: *out, Busybox: *busybox})
	if err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s\n", path, d)
}
