// Package registrytest runs a real OCI registry (Debian's docker-registry,
// CNCF distribution 2.8.2) on loopback for tests: filesystem storage in a
// temporary directory, deletes enabled (the referrers tag-schema fallback
// deletes superseded indexes), stopped by PID when the test ends.
package registrytest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/accordmesh/accord/internal/ports"
)

// Binary is the registry executable Start runs.
const Binary = "/usr/bin/docker-registry"

// Server is a running registry.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// Dir is the storage root (filesystem driver), for tests that tamper
	// with stored blobs.
	Dir string
}

// Start runs a registry for the test and returns its "127.0.0.1:port".
// It skips the test only when the binary is absent.
func Start(t testing.TB) string {
	return StartServer(t).Addr
}

// StartServer is Start, also returning the storage directory.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return start(t, "")
}

// StartWithAuth is StartServer with htpasswd basic auth: only user with
// password may read or write.
func StartWithAuth(t testing.TB, user, password string) *Server {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return start(t, htpasswd)
}

func start(t testing.TB, htpasswd string) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("registrytest: %s not installed (Debian package docker-registry): %v", Binary, err)
	}
	dir := t.TempDir()
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		storage := filepath.Join(dir, "storage")
		cfg := filepath.Join(dir, "config.yml")
		conf := Config(storage, addr)
		if htpasswd != "" {
			conf += fmt.Sprintf("auth:\n  htpasswd:\n    realm: registrytest\n    path: %q\n", htpasswd)
		}
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if lastErr = run(t, cfg, filepath.Join(dir, "registry.log"), addr); lastErr == nil {
			return &Server{Addr: addr, Dir: storage}
		}
	}
	t.Fatalf("registrytest: start docker-registry: %v", lastErr)
	return nil
}

// Config is the registry configuration: filesystem storage under storage,
// deletes enabled, listening on addr, quiet logs.
func Config(storage, addr string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: registrytest
`, storage, addr)
}

// run starts the registry, waits until /v2/ answers and registers its stop.
func run(t testing.TB, cfg, logPath, addr string) error {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(Binary, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	if err := waitReady(addr, exited); err != nil {
		stop()
		return fmt.Errorf("%w; log: %s", err, tail(logPath))
	}
	t.Cleanup(stop)
	return nil
}

// waitReady polls GET /v2/ until it answers 200, the process exits or 30 s
// pass.
func waitReady(addr string, exited <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("docker-registry exited: %v", err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			// 401: up, with auth.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("docker-registry did not answer /v2/ within 30 s")
}

// FreePort returns a loopback port nothing listens on, drawn below the
// kernel's ephemeral range (internal/ports), so that no outgoing
// connection takes it between the check and the registry's bind.
func FreePort() (int, error) { return ports.Free("127.0.0.1") }

// tail returns the last lines of the registry's log, for errors.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 20 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
