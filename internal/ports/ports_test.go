package ports

import (
	"net"
	"strconv"
	"testing"
)

// Free hands out distinct bindable ports below the ephemeral range.
func TestFree(t *testing.T) {
	hi := ephemeralStart()
	seen := map[int]bool{}
	for range 50 {
		p, err := Free("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p < lowest || p >= hi || seen[p] {
			t.Fatalf("port %d: outside [%d, %d) or handed out twice", p, lowest, hi)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d does not bind: %v", p, err)
		}
		l.Close()
	}
}
