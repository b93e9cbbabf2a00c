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
