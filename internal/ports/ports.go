// Package ports picks TCP ports for services that bind them later: a
// port nothing listens on, drawn below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), so that no outgoing
// connection can take it between the check and the service's bind
// (PLATFORM.md). A port the kernel hands out for ":0" lies inside that
// range, and is only safe for a listener kept open.
package ports

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the bottom of the range ports are drawn from.
const lowest = 10000

var (
	mu     sync.Mutex
	handed = map[string]bool{} // ip:port handed out by this process
)

// Free returns a port on ip that nothing listens on, below the ephemeral
// range, and never the same one twice in a process.
func Free(ip string) (int, error) {
	hi := ephemeralStart()
	mu.Lock()
	defer mu.Unlock()
	for range 500 {
		p := lowest + rand.IntN(hi-lowest)
		key := net.JoinHostPort(ip, strconv.Itoa(p))
		if handed[key] {
			continue
		}
		l, err := net.Listen("tcp", key)
		if err != nil {
			continue
		}
		l.Close()
		handed[key] = true
		return p, nil
	}
	return 0, errors.New("ports: no free port on " + ip + " below the ephemeral range")
}

// ephemeralStart is the first port of the kernel's ephemeral range (at
// least lowest+1000, so that there is a range to draw from).
func ephemeralStart() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	return max(lo, lowest+1000)
}
