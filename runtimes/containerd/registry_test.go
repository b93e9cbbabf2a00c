package containerd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/accordmesh/accord/internal/ports"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/containerd/ocilayout"
)

// startRegistry runs Debian's docker-registry (distribution) on a free
// loopback port and returns its host:port and its access log.
func startRegistry(t *testing.T) (string, string) {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("registry pull test needs docker-registry (Debian: apt-get install docker-registry)")
	}
	port, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dir := t.TempDir()
	config := filepath.Join(dir, "config.yml")
	body := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", config)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for end := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, logf.Name()
			}
		}
		if time.Now().After(end) {
			t.Fatalf("registry on %s did not answer: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRegistryPull(t *testing.T) {
	need(t)
	addr, accessLog := startRegistry(t)
	ref := addr + "/accord/busybox:test"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Push: import a locally built image under the registry's name, then
	// push it with containerd's own pusher.
	archive := filepath.Join(t.TempDir(), "push.tar")
	if _, err := ocilayout.WriteFile(archive, ocilayout.Image{Name: ref, Files: ocilayout.Busybox(ocilayoutBusybox), Env: []string{"PATH=/bin"}}); err != nil {
		t.Fatal(err)
	}
	pusher := newRuntime(t)
	want, err := pusher.Prepare(ctx, ArchivePrefix+archive)
	if err != nil {
		t.Fatal(err)
	}
	img, err := pusher.Client().GetImage(namespaces.WithNamespace(ctx, pusher.Namespace()), ref)
	if err != nil {
		t.Fatal(err)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost))})
	if err := pusher.Client().Push(namespaces.WithNamespace(ctx, pusher.Namespace()), ref, img.Target(), containerd.WithResolver(resolver)); err != nil {
		t.Fatal(err)
	}

	// Forget everything locally, then pull into another Accord instance
	// (namespace): the blobs must come from the registry.
	if err := pusher.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	r := newRuntime(t)
	got, err := r.Prepare(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("pulled %s, pushed %s", got, want)
	}
	if log, _ := os.ReadFile(accessLog); !strings.Contains(string(log), "GET /v2/accord/busybox/blobs/") {
		t.Fatalf("no blob was fetched from the registry:\n%s", log)
	}
	st := runToEnd(t, r, runtimes.TaskSpec{ID: "pulled", Image: ref, Command: []string{"sh", "-c", "echo pulled > /out/x"}})
	if st.State != runtimes.StateExited || st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	if _, err := r.Prepare(ctx, addr+"/accord/busybox:missing"); !errors.Is(err, runtimes.ErrImage) {
		t.Fatalf("missing tag: %v", err)
	}
	if err := r.Cleanup(ctx, "pulled"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, r)
}
