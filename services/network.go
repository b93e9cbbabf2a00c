package services

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Network gives replicas their own network namespace joined to a host
// bridge, with an address from a private subnet that the host routes to
// directly. It runs Debian's containernetworking-plugins as the CNI
// runtime would: the "loopback" plugin brings lo up, the "bridge" plugin
// (isGateway, no masquerade, no outbound route needed) creates the bridge
// with the subnet's first address on the host side and a veth pair into
// the namespace, and "host-local" IPAM hands out addresses, keeping its
// leases under DataDir. Namespaces are created with `ip netns add` and
// bind-mounted at /var/run/netns/NAME. Needs root.
type Network struct {
	Name      string // CNI network name; also the netns name prefix
	Bridge    string // host bridge device, at most 15 bytes
	Subnet    string // IPv4 CIDR, e.g. 10.88.0.0/24
	PluginDir string // default DefaultPluginDir
	DataDir   string // host-local lease directory; required
}

// DefaultPluginDir is where Debian installs the CNI plugins.
const DefaultPluginDir = "/usr/lib/cni"

// Attachment is one replica's place on the network.
type Attachment struct {
	ID    string `json:"id"`
	NetNS string `json:"netns"` // path of the namespace, for the runtime
	IP    string `json:"ip"`
}

var (
	netIDRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	devRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,14}$`)
	nsPrefix = "/var/run/netns/"
)

// Check validates the network's configuration.
func (n Network) Check() error {
	if !netIDRE.MatchString(n.Name) || !devRE.MatchString(n.Bridge) || n.DataDir == "" {
		return fmt.Errorf("%w: network %q bridge %q data dir %q", ErrInvalid, n.Name, n.Bridge, n.DataDir)
	}
	p, err := netip.ParsePrefix(n.Subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > 28 || p.Bits() < 16 {
		return fmt.Errorf("%w: subnet %q must be an IPv4 CIDR from /16 to /28", ErrInvalid, n.Subnet)
	}
	return nil
}

// Available reports why the network cannot work here, or nil.
func (n Network) Available() error {
	if os.Getuid() != 0 {
		return fmt.Errorf("%w: network namespaces need root", ErrNetwork)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: the ip command (Debian iproute2) is missing", ErrNetwork)
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(n.pluginDir(), p)); err != nil {
			return fmt.Errorf("%w: CNI plugin %s missing in %s (Debian containernetworking-plugins)", ErrNetwork, p, n.pluginDir())
		}
	}
	return nil
}

func (n Network) pluginDir() string {
	if n.PluginDir == "" {
		return DefaultPluginDir
	}
	return n.PluginDir
}

func (n Network) nsName(id string) string { return n.Name + "-" + id }

// NSPath is the namespace path a replica ID is attached under.
func (n Network) NSPath(id string) string { return nsPrefix + n.nsName(id) }

func (n Network) bridgeConf() []byte {
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": n.Name, "type": "bridge", "bridge": n.Bridge,
		"isGateway": true, "ipMasq": false, "hairpinMode": false,
		"ipam": map[string]any{
			"type":    "host-local",
			"ranges":  [][]map[string]string{{{"subnet": n.Subnet}}},
			"dataDir": n.DataDir,
		},
	}
	b, _ := json.Marshal(conf)
	return b
}

func (n Network) loConf() []byte {
	return []byte(`{"cniVersion":"1.0.0","name":"` + n.Name + `-lo","type":"loopback"}`)
}

// cniTimeout bounds one plugin run.
const cniTimeout = 30 * time.Second

// plugin runs CNI plugin kind with command (ADD, DEL, CHECK) and returns its stdout.
func (n Network) plugin(ctx context.Context, kind, command, id, ifname string, conf []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cniTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(n.pluginDir(), kind))
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + n.nsName(id), "CNI_NETNS=" + n.NSPath(id),
		"CNI_IFNAME=" + ifname, "CNI_PATH=" + n.pluginDir(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s %s %s: %v: %s %s", ErrNetwork, kind, command, id, err, bounded(out.Bytes()), bounded(errb.Bytes()))
	}
	return out.Bytes(), nil
}

func bounded(b []byte) string {
	if len(b) > 512 {
		b = b[:512]
	}
	return strings.TrimSpace(string(b))
}

// Attach creates the replica's namespace (once) and connects it. Calling
// it again for the same ID returns the same address: host-local keeps the
// lease per container ID and the bridge plugin finds the veth in place.
func (n Network) Attach(ctx context.Context, id string) (Attachment, error) {
	if err := n.Check(); err != nil {
		return Attachment{}, err
	}
	if !netIDRE.MatchString(id) || len(n.nsName(id)) > 200 {
		return Attachment{}, fmt.Errorf("%w: replica ID %q", ErrInvalid, id)
	}
	if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
		return Attachment{}, fmt.Errorf("services: network data dir: %w", err)
	}
	if _, err := os.Stat(n.NSPath(id)); err == nil {
		if ip, ok := n.attachedIP(ctx, id); ok {
			return Attachment{ID: id, NetNS: n.NSPath(id), IP: ip}, nil
		}
	} else if errors.Is(err, os.ErrNotExist) {
		if out, err := exec.CommandContext(ctx, "ip", "netns", "add", n.nsName(id)).CombinedOutput(); err != nil {
			return Attachment{}, fmt.Errorf("%w: ip netns add %s: %v: %s", ErrNetwork, n.nsName(id), err, bounded(out))
		}
	}
	if _, err := n.plugin(ctx, "loopback", "ADD", id, "lo", n.loConf()); err != nil {
		return Attachment{}, err
	}
	out, err := n.plugin(ctx, "bridge", "ADD", id, "eth0", n.bridgeConf())
	if err != nil {
		return Attachment{}, err
	}
	ip, err := firstIP(out)
	if err != nil {
		return Attachment{}, fmt.Errorf("services: attach %s: %w", id, err)
	}
	return Attachment{ID: id, NetNS: n.NSPath(id), IP: ip}, nil
}

// attachedIP reads eth0's IPv4 address inside the replica's namespace,
// when an earlier Attach got that far.
func (n Network) attachedIP(ctx context.Context, id string) (string, bool) {
	out, err := exec.CommandContext(ctx, "ip", "-n", n.nsName(id), "-4", "-o", "addr", "show", "dev", "eth0").Output()
	if err != nil {
		return "", false
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "inet" {
			if ip, _, err := net.ParseCIDR(f[i+1]); err == nil {
				return ip.String(), true
			}
		}
	}
	return "", false
}

// firstIP reads the first address of a CNI result.
func firstIP(result []byte) (string, error) {
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(result, &r); err != nil || len(r.IPs) == 0 {
		return "", fmt.Errorf("%w: CNI result without an address: %s", ErrNetwork, bounded(result))
	}
	ip, _, err := net.ParseCIDR(r.IPs[0].Address)
	if err != nil {
		return "", fmt.Errorf("%w: CNI address %q: %v", ErrNetwork, r.IPs[0].Address, err)
	}
	return ip.String(), nil
}

// Detach disconnects the replica and deletes its namespace; detaching an
// unknown ID is not an error.
func (n Network) Detach(ctx context.Context, id string) error {
	if err := n.Check(); err != nil {
		return err
	}
	if !netIDRE.MatchString(id) {
		return fmt.Errorf("%w: replica ID %q", ErrInvalid, id)
	}
	// DEL releases the lease even when the namespace is already gone.
	if _, err := n.plugin(ctx, "bridge", "DEL", id, "eth0", n.bridgeConf()); err != nil {
		return err
	}
	if _, err := os.Stat(n.NSPath(id)); err == nil {
		if out, err := exec.CommandContext(ctx, "ip", "netns", "delete", n.nsName(id)).CombinedOutput(); err != nil {
			return fmt.Errorf("%w: ip netns delete %s: %v: %s", ErrNetwork, n.nsName(id), err, bounded(out))
		}
	}
	return nil
}

// Remove deletes the bridge device (after every replica is detached).
func (n Network) Remove(ctx context.Context) error {
	if err := n.Check(); err != nil {
		return err
	}
	if _, err := net.InterfaceByName(n.Bridge); err != nil {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "ip", "link", "delete", n.Bridge).CombinedOutput(); err != nil {
		return fmt.Errorf("%w: ip link delete %s: %v: %s", ErrNetwork, n.Bridge, err, bounded(out))
	}
	return nil
}
