package main

import (
	"strings"
	"testing"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/workflows"
)

// A job's result names each provider it lost, why, and what moved where
// at what price, in major units.
func TestPrintFailovers(t *testing.T) {
	var b strings.Builder
	printFailovers(cli.Writer{Writer: &b}, []workflows.Failover{
		{Lost: "gpu-a", Reason: "queue accord-exec-gpu-a not served for 1m0s and heartbeat stopped", Provider: "gpu-b", Price: 450},
		{Lost: "gpu-c", Reason: "node lost", Provider: "gpu-d", Price: 1200, Tasks: []string{"train", "eval"}},
	}, "USD")
	want := "  failover: gpu-a lost (queue accord-exec-gpu-a not served for 1m0s and heartbeat stopped); the job moved to gpu-b at 4.50 USD\n" +
		"  failover: gpu-c lost (node lost); tasks train, eval moved to gpu-d at 12.00 USD\n"
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
}
