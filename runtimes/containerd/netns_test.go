package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/services"
)

// TestTaskInNetworkNamespace runs a busybox httpd in a CNI namespace and
// reaches it from the host at the namespace's address; the task keeps the
// rest of the sandbox (user namespace, read-only root).
func TestTaskInNetworkNamespace(t *testing.T) {
	need(t)
	n := services.Network{Name: fmt.Sprintf("acctd%d", os.Getpid()%10000), Bridge: fmt.Sprintf("acctd%d", os.Getpid()%10000),
		Subnet: fmt.Sprintf("10.%d.%d.0/24", 150+os.Getpid()%50, os.Getpid()%250), DataDir: t.TempDir()}
	if err := n.Available(); err != nil {
		t.Skip(err)
	}
	defer n.Remove(context.Background())
	ctx := t.Context()
	att, err := n.Attach(ctx, "svc0")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Detach(context.Background(), "svc0")
	r := newRuntime(t)
	spec := sh(t, "netns-task", "mkdir -p /tmp/www && echo ok > /tmp/www/healthz && touch /rootfs-probe 2>/dev/null && echo writable; exec httpd -f -p 8080 -h /tmp/www")
	spec.NetNS = att.NetNS
	if _, err := r.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	defer r.Cleanup(context.Background(), spec.ID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = services.Probe(ctx, att.IP+":8080", "/healthz", time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		st, _ := r.Status(ctx, spec.ID)
		log, _ := os.ReadFile(r.taskDir(spec.ID) + "/task.log")
		t.Fatalf("task unreachable at %s: %v (status %+v, log %q)", att.IP, err, st, log)
	}
	if err := r.Stop(ctx, spec.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	bad := sh(t, "netns-bad", "true")
	bad.NetNS = "/proc/1/ns/net"
	if _, err := r.Start(ctx, bad); !errors.Is(err, runtimes.ErrInvalid) {
		t.Fatalf("host namespace accepted: %v", err)
	}
}
