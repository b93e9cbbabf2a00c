// Package images builds Accord's example workload images from the source in
// this repository, with no container engine or registry: it compiles each
// workload statically and packs it into an OCI archive with
// runtimes/containerd/ocilayout.
package images

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/accordmesh/accord/runtimes/containerd/ocilayout"
)

// TrainerName is the reference the trainer archive carries.
const TrainerName = "accord.local/examples/trainer:latest"

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// DefaultBusybox returns BusyboxPath when that file exists, else "".
func DefaultBusybox() string {
	if _, err := os.Stat(BusyboxPath); err != nil {
		return ""
	}
	return BusyboxPath
}

// Options control BuildTrainer.
type Options struct {
	RepoDir string // repository root (holds go.mod); default "."
	Out     string // archive path; default RepoDir/examples/images/trainer.tar
	Name    string // image reference; default TrainerName
	// Busybox, when set, is a static busybox binary added at /bin/busybox
	// with /bin/sh and other links, so tests and specs can script steps.
	Busybox string
	Go      string // go command; default "go"
}

// ServerName is the reference the model server archive carries.
const ServerName = "accord.local/examples/server:latest"

// BuildServer compiles examples/images/server (the example model server
// for deployments) with CGO_ENABLED=0 and writes it at /bin/server in an
// OCI archive whose default command serves on :8080. It returns the
// archive path and the manifest digest.
func BuildServer(ctx context.Context, opts Options) (string, digest.Digest, error) {
	if opts.RepoDir == "" {
		opts.RepoDir = "."
	}
	if opts.Out == "" {
		opts.Out = filepath.Join(opts.RepoDir, "examples", "images", "server.tar")
	}
	if opts.Name == "" {
		opts.Name = ServerName
	}
	return build(ctx, opts, "server", []string{"/bin/server", "--listen", ":8080"})
}

// BuildTrainer compiles examples/images/trainer with CGO_ENABLED=0 and
// writes it at /bin/trainer in an OCI archive. It returns the archive path
// and the manifest digest. The build is deterministic for a given source
// and toolchain, so rebuilding is harmless.
func BuildTrainer(ctx context.Context, opts Options) (string, digest.Digest, error) {
	if opts.RepoDir == "" {
		opts.RepoDir = "."
	}
	if opts.Out == "" {
		opts.Out = filepath.Join(opts.RepoDir, "examples", "images", "trainer.tar")
	}
	if opts.Name == "" {
		opts.Name = TrainerName
	}
	return build(ctx, opts, "trainer", []string{"/bin/trainer", "train"})
}

// build compiles ./examples/images/NAME statically to /bin/NAME in an
// OCI archive at opts.Out with cmd as its default command.
func build(ctx context.Context, opts Options, name string, cmdline []string) (string, digest.Digest, error) {
	if opts.Go == "" {
		opts.Go = "go"
	}
	tmp, err := os.MkdirTemp("", "accord-"+name+"-*")
	if err != nil {
		return "", "", fmt.Errorf("images: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, name)
	cmd := exec.CommandContext(ctx, opts.Go, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./examples/images/"+name)
	cmd.Dir = opts.RepoDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("images: go build %s: %w\n%s", name, err, out)
	}
	files := []ocilayout.File{{Path: "/bin/" + name, Mode: 0o755, Source: bin}}
	if opts.Busybox != "" {
		files = append(files, ocilayout.Busybox(opts.Busybox)...)
	}
	if err := os.MkdirAll(filepath.Dir(opts.Out), 0o755); err != nil {
		return "", "", fmt.Errorf("images: %w", err)
	}
	d, err := ocilayout.WriteFile(opts.Out, ocilayout.Image{
		Name:       opts.Name,
		Files:      files,
		Cmd:        cmdline,
		Env:        []string{"PATH=/bin", "ACCORD_OUTPUT_DIR=/out"},
		WorkingDir: "/",
	})
	if err != nil {
		return "", "", fmt.Errorf("images: %w", err)
	}
	return opts.Out, d, nil
}
