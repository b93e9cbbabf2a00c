package services

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testNetwork returns a network with a bridge and subnet of its own, and
// removes the bridge when the test ends.
func testNetwork(t *testing.T) Network {
	t.Helper()
	n := Network{Name: fmt.Sprintf("acct%d", os.Getpid()%100000), Bridge: fmt.Sprintf("acct%d", os.Getpid()%100000),
		Subnet: fmt.Sprintf("10.%d.%d.0/24", 200+os.Getpid()%50, os.Getpid()%250), DataDir: t.TempDir()}
	if err := n.Available(); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { n.Remove(context.Background()) })
	return n
}

func TestNetworkAttachReachableDetach(t *testing.T) {
	n := testNetwork(t)
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("needs busybox (Debian busybox-static) to serve inside the namespace")
	}
	ctx := t.Context()
	a, err := n.Attach(ctx, "r0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Detach(context.Background(), "r0") })
	again, err := n.Attach(ctx, "r0")
	if err != nil || again.IP != a.IP {
		t.Fatalf("second attach: %+v %v (first %+v)", again, err, a)
	}
	b, err := n.Attach(ctx, "r1")
	if err != nil || b.IP == a.IP {
		t.Fatalf("r1: %+v %v", b, err)
	}
	t.Cleanup(func() { n.Detach(context.Background(), "r1") })

	// A server inside r0's namespace answers the host at r0's address.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "healthz"), []byte("ok"), 0o644)
	cmd := exec.Command("ip", "netns", "exec", n.nsName("r0"), "busybox", "httpd", "-f", "-p", "8080", "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err = Probe(ctx, a.IP+":8080", "/healthz", time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("server in namespace unreachable from the host: %v", err)
	}
	if err := Probe(ctx, b.IP+":8080", "/healthz", 500*time.Millisecond); err == nil {
		t.Fatal("r1 answers on a port nothing listens on")
	}

	cmd.Process.Kill()
	cmd.Wait()
	if err := n.Detach(ctx, "r0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(n.NSPath("r0")); !os.IsNotExist(err) {
		t.Errorf("namespace left behind: %v", err)
	}
	if err := n.Detach(ctx, "r0"); err != nil {
		t.Errorf("second detach: %v", err)
	}
	leases, _ := os.ReadDir(filepath.Join(n.DataDir, n.Name))
	for _, l := range leases {
		if l.Name() == a.IP {
			t.Errorf("lease %s kept after detach", a.IP)
		}
	}
	if !strings.HasPrefix(a.NetNS, "/var/run/netns/") {
		t.Errorf("netns %q", a.NetNS)
	}
}

func TestNetworkCheck(t *testing.T) {
	for _, n := range []Network{
		{Name: "x", Bridge: "b", Subnet: "10.0.0.0/8", DataDir: "/tmp"},
		{Name: "x", Bridge: "bridge-name-too-long", Subnet: "10.0.0.0/24", DataDir: "/tmp"},
		{Name: "X Y", Bridge: "b", Subnet: "10.0.0.0/24", DataDir: "/tmp"},
		{Name: "x", Bridge: "b", Subnet: "fd00::/64", DataDir: "/tmp"},
	} {
		if err := n.Check(); err == nil {
			t.Errorf("%+v accepted", n)
		}
	}
	n := Network{Name: "x", Bridge: "b", Subnet: "10.0.0.0/24", DataDir: "/tmp"}
	if _, err := n.Attach(t.Context(), "../etc"); err == nil {
		t.Error("hostile replica ID accepted")
	}
}
