package integration

// Several hosts on one machine: the provider hosts of the mesh test are
// network namespaces joined to a bridge in the root namespace, which is
// the control plane's host (its services bind to the bridge address).

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accordmesh/accord/internal/ports"
)

// meshNet is a bridge in the root namespace with address prefix.1/24 and
// one network namespace per provider host, each on a veth pair with
// address prefix.(10+i). Everything is deleted when the test ends.
type meshNet struct {
	t      *testing.T
	id     string // the random part of every name
	prefix string // "10.A.B"
	bridge string
	hosts  map[string]meshHost // by provider name
}

// meshHost is one provider host.
type meshHost struct {
	ns, ip string
}

// HostIP is the control plane's address: the bridge's, in the root namespace.
func (n *meshNet) HostIP() string { return n.prefix + ".1" }

// needNetns skips unless the machine can make network namespaces: root,
// ip (iproute2) and nsenter (util-linux).
func needNetns(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("the mesh test needs root (network namespaces)")
	}
	for _, b := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("the mesh test needs %s (Debian: iproute2, util-linux)", b)
		}
	}
}

// ipCmd runs ip with args and fails the test on error.
func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newMeshNet makes the bridge and one namespace per provider. The /24 is
// drawn from 10.200.0.0–10.249.255.0 and checked unused: no address or
// route of the root namespace falls in it.
func newMeshNet(t *testing.T, providers ...string) *meshNet {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	n := &meshNet{t: t, id: hex.EncodeToString(b[:])[:5], hosts: map[string]meshHost{}}
	n.bridge = "am" + n.id + "br"
	n.prefix = pickSubnet(t)
	if out := ipCmd(t, "netns", "list"); strings.Contains(out, "accord-"+n.id) {
		t.Fatalf("network namespaces named accord-%s-* exist already:\n%s", n.id, out)
	}
	t.Cleanup(n.delete)
	ipCmd(t, "link", "add", n.bridge, "type", "bridge")
	ipCmd(t, "addr", "add", n.HostIP()+"/24", "dev", n.bridge)
	ipCmd(t, "link", "set", n.bridge, "up")
	for i, p := range providers {
		n.addHost(i, p)
	}
	return n
}

// pickSubnet returns a prefix "10.A.B" of a /24 that no address or route
// of this namespace uses.
func pickSubnet(t *testing.T) string {
	t.Helper()
	used := ipCmd(t, "-4", "-o", "addr", "show") + ipCmd(t, "-4", "route", "show", "table", "all")
	var b [2]byte
	for i := 0; i < 50; i++ {
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		prefix := fmt.Sprintf("10.%d.%d", 200+int(b[0])%50, b[1])
		if !strings.Contains(used, prefix+".") {
			return prefix
		}
	}
	t.Fatal("no unused 10.2xx.x.0/24 found")
	return ""
}

// addHost makes provider p's namespace, its veth pair on the bridge and
// its address, and brings up its loopback.
func (n *meshNet) addHost(i int, p string) {
	t := n.t
	h := meshHost{ns: fmt.Sprintf("accord-%s-%d", n.id, i), ip: fmt.Sprintf("%s.%d", n.prefix, 10+i)}
	outer, inner := fmt.Sprintf("am%sh%d", n.id, i), fmt.Sprintf("am%sn%d", n.id, i)
	ipCmd(t, "netns", "add", h.ns)
	n.hosts[p] = h
	ipCmd(t, "link", "add", outer, "type", "veth", "peer", "name", inner)
	ipCmd(t, "link", "set", inner, "netns", h.ns)
	ipCmd(t, "link", "set", outer, "master", n.bridge, "up")
	ipCmd(t, "-n", h.ns, "addr", "add", h.ip+"/24", "dev", inner)
	ipCmd(t, "-n", h.ns, "link", "set", inner, "up")
	ipCmd(t, "-n", h.ns, "link", "set", "lo", "up")
}

// delete removes the namespaces (their veth ends go with them) and the
// bridge.
func (n *meshNet) delete() {
	for _, h := range n.hosts {
		if out, err := exec.Command("ip", "netns", "del", h.ns).CombinedOutput(); err != nil {
			n.t.Errorf("ip netns del %s: %v\n%s", h.ns, err, out)
		}
	}
	if out, err := exec.Command("ip", "link", "del", n.bridge).CombinedOutput(); err != nil {
		n.t.Errorf("ip link del %s: %v\n%s", n.bridge, err, out)
	}
}

// tearDown removes provider p's host as a machine failure would: the
// processes under the containerd shims serving home (the task's
// containers, which have network namespaces of their own) and the shims,
// then every process left in p's namespace (the agent and its containerd),
// all with SIGKILL; then the namespace itself. It returns how many
// processes it killed.
func (n *meshNet) tearDown(p, home string) int {
	t := n.t
	t.Helper()
	h, ok := n.hosts[p]
	if !ok {
		t.Fatalf("no host %s", p)
	}
	killed := killShims(home)
	for _, f := range strings.Fields(ipCmd(t, "netns", "pids", h.ns)) {
		if pid, err := strconv.Atoi(f); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	waitFor(t, 30*time.Second, p+"'s processes gone", func() bool {
		return strings.TrimSpace(ipCmd(t, "netns", "pids", h.ns)) == ""
	})
	ipCmd(t, "netns", "del", h.ns)
	delete(n.hosts, p)
	return killed
}

// command is name args run in provider p's network namespace (only the
// network: the file system is the machine's, each agent has its own home).
// nsenter execs the command, so the process is the command itself.
func (n *meshNet) command(p, name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + n.hosts[p].ns, "--", name}, args...)...)
}

// checkReach fails unless TCP addr answers from provider p's namespace, and
// checks that the namespace does not reach the root namespace's loopback
// (it is another host).
func (n *meshNet) checkReach(p, addr string) {
	n.t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	probe := func(h string) error {
		return n.command(p, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", h, port)).Run()
	}
	if err := probe(host); err != nil {
		n.t.Fatalf("%s is not reachable from %s's namespace: %v", addr, p, err)
	}
	if err := probe("127.0.0.1"); err == nil {
		n.t.Fatalf("127.0.0.1:%s answers inside %s's namespace: it is not a separate host", port, p)
	}
}

// freePortOn returns a port nothing listens on at ip, drawn below the
// kernel's ephemeral range (PLATFORM.md: an outgoing connection may take a
// port inside it between the check and the bind), never the same twice.
func freePortOn(t *testing.T, ip string) int {
	t.Helper()
	p, err := ports.Free(ip)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitListening waits until addr accepts TCP connections.
func waitListening(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, addr+" listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}
