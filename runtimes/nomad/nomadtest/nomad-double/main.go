// Command nomad-double serves the Nomad HTTP API test double on a loopback
// port with a few GPU nodes, for trying `accord pool attach` and the Nomad
// runtime by hand. It prints the address and serves until interrupted.
//
//	go run ./runtimes/nomad/nomadtest/nomad-double
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/accordmesh/accord/runtimes/nomad/nomadtest"
)

func main() {
	s := nomadtest.New()
	defer s.Close()
	s.AddNode(nomadtest.NodeSpec{Name: "gpu-1", NodePool: "gpu", CPUMHz: 32000, MemoryMB: 262144,
		GPUs: []nomadtest.GPU{{Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, IDs: []string{"GPU-h100-0", "GPU-h100-1", "GPU-h100-2", "GPU-h100-3"}}}})
	s.AddNode(nomadtest.NodeSpec{Name: "gpu-2", NodePool: "gpu", CPUMHz: 16000, MemoryMB: 65536,
		GPUs: []nomadtest.GPU{{Model: "NVIDIA A10", MemoryMiB: 24576, IDs: []string{"GPU-a10-0", "GPU-a10-1"}}}})
	s.AddNode(nomadtest.NodeSpec{Name: "cpu-1", CPUMHz: 8000, MemoryMB: 16384})
	s.SetBehavior(nomadtest.ShellBehavior(10))
	fmt.Println(s.URL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
