package containerd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestManagedDaemonLifecycle(t *testing.T) {
	need(t)
	ctx := context.Background()
	// A deep directory forces the socket out to /run/accord (sun_path limit).
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), "daemon")
	d, err := StartDaemon(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopDaemon(dir, time.Second) })
	if len(d.Address) > maxSocketPath || !strings.HasPrefix(d.Address, "/run/accord/") {
		t.Fatalf("socket %s", d.Address)
	}
	again, err := StartDaemon(ctx, dir)
	if err != nil || again.PID != d.PID {
		t.Fatalf("second start: pid %d (first %d), %v", again.PID, d.PID, err)
	}
	if err := StopDaemon(dir, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if alive(d.PID) {
		t.Fatalf("daemon %d still running", d.PID)
	}
	if _, err := os.Stat(filepath.Join(dir, "containerd.pid")); !os.IsNotExist(err) {
		t.Fatalf("pid file left: %v", err)
	}
	if err := StopDaemon(dir, time.Second); err != nil { // idempotent
		t.Fatal(err)
	}
	// Restarting after a stop works and picks a new process.
	d2, err := StartDaemon(ctx, dir)
	if err != nil || d2.PID == d.PID {
		t.Fatalf("restart: %+v %v", d2, err)
	}
}

// TestStartedDaemonStops checks what accord run, accord dev and accord
// runtime stop rely on: the runtime that started a daemon says so, one that
// found it running does not, and StopDaemon by directory ends it.
func TestStartedDaemonStops(t *testing.T) {
	need(t)
	ctx := context.Background()
	state := t.TempDir()
	r, err := New(ctx, Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopDaemon(DaemonDir(state), time.Second) })
	d := r.StartedDaemon()
	if d == nil || d.Dir != DaemonDir(state) {
		t.Fatalf("StartedDaemon = %+v, want the daemon in %s", d, DaemonDir(state))
	}
	r.Close()
	again, err := New(ctx, Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if again.StartedDaemon() != nil {
		t.Fatal("a runtime that reused the daemon claims to have started it")
	}
	again.Close()
	if pid, ok := RunningDaemon(DaemonDir(state)); !ok || pid != d.PID {
		t.Fatalf("RunningDaemon = %d, %v; want %d", pid, ok, d.PID)
	}
	if err := StopDaemon(DaemonDir(state), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if alive(d.PID) {
		t.Fatalf("daemon %d still running", d.PID)
	}
	if _, ok := RunningDaemon(DaemonDir(state)); ok {
		t.Fatal("RunningDaemon after stop")
	}
}
