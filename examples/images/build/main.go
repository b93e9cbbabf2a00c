// Command build writes examples/images/trainer.tar or, with -image server,
// examples/images/server.tar (used by `make images`),
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
	out := flag.String("o", "", "archive to write (default examples/images/IMAGE.tar)")
	which := flag.String("image", "trainer", "image to build: trainer or server")
	busybox := flag.String("busybox", images.DefaultBusybox(), "static busybox to include with /bin/sh (empty: none)")
	flag.Parse()
	build := images.BuildTrainer
	switch *which {
	case "trainer":
	case "server":
		build = images.BuildServer
	default:
		fmt.Fprintf(os.Stderr, "build: unknown image %q (trainer or server)\n", *which)
		os.Exit(2)
	}
	path, d, err := build(context.Background(), images.Options{Out: *out, Busybox: *busybox})
	if err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s\n", path, d)
}
