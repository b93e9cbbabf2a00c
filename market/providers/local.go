// Package providers holds the market's sellers that price real hardware:
// LocalPool, this host's containerd capacity at reference rates, and
// PoolProvider, an attached Nomad pool's live inventory at its price list.
// AssignDevices names the exact node and GPUs an attached pool gives each
// task of an award. Mapping a provider to the runtime that executes its
// tasks is the worker's business (workers/local), not this package's.
package providers

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/accordmesh/accord/market"
)

// LocalPoolName is the market name of this host's containerd pool.
const LocalPoolName = "local"

// LocalPool is the market provider for this host's containerd pool: its
// profile is the host's CPUs, memory and the free disk under Accord's home,
// priced per resource-hour. It has no GPUs (CDI devices are not inventoried
// here) and bids truthfully.
type LocalPool struct {
	Home    string
	Pricing market.Pricing
	// Overcommit, when above 1, offers that many times the host's CPUs and
	// memory: the operator's choice for tasks that reserve more than they
	// use (containers keep their own limits; the host is shared). 0 or 1
	// offers the hardware as it is.
	Overcommit float64
	// SLA is the money terms the pool accepts; nil means DefaultSLA.
	SLA *market.SLAOffer
}

// DefaultMinDeadline is the shortest SLA deadline or maximum duration the
// operator's pools accept by default: a spec cannot make a breach certain
// by asking for one shorter than a container takes to start.
const DefaultMinDeadline = time.Minute

// DefaultSLA is what the operator's own pools (LocalPool and attached Nomad
// pools) accept unless configured: any refund and any slash percentage a
// spec asks, but no stake at risk (so nothing is ever slashed from a bond),
// no slashing on failing tenant tests, and no SLA deadline or maximum
// duration under DefaultMinDeadline.
func DefaultSLA() market.SLAOffer {
	return market.SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100, MinDeadline: DefaultMinDeadline}
}

// DefaultLocalPricing prices the local pool at the specs' reference rates
// (minor units per hour): a core 4, a GiB of memory 1.
func DefaultLocalPricing(currency string) market.Pricing {
	return market.Pricing{Currency: currency, CPUHour: 4, MemoryGiBHour: 1}
}

// Profile implements market.Provider from the host's current resources.
func (p *LocalPool) Profile(context.Context) (market.Profile, error) {
	if p.Overcommit != 0 && !(p.Overcommit >= 1) { // also refuses NaN
		return market.Profile{}, fmt.Errorf("providers: overcommit %g: must be at least 1", p.Overcommit)
	}
	mem, err := MemTotal()
	if err != nil {
		return market.Profile{}, err
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(p.Home, &fs); err != nil {
		return market.Profile{}, fmt.Errorf("providers: statfs %s: %w", p.Home, err)
	}
	capa := market.Capacity{
		MilliCPU:    int64(runtime.NumCPU()) * 1000,
		MemoryBytes: mem,
		DiskBytes:   int64(fs.Bavail) * int64(fs.Bsize),
	}
	if p.Overcommit > 1 {
		capa.MilliCPU = int64(float64(capa.MilliCPU) * p.Overcommit)
		capa.MemoryBytes = int64(float64(capa.MemoryBytes) * p.Overcommit)
	}
	terms := DefaultSLA()
	if p.SLA != nil {
		terms = *p.SLA
	}
	return market.Profile{
		Name: LocalPoolName, Region: "local", Reputation: 1,
		Free: capa, Total: capa, Pricing: p.Pricing, SLA: terms,
	}, nil
}

// MemTotal is the host's memory in bytes (MemTotal in /proc/meminfo).
func MemTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("providers: meminfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("providers: meminfo: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("providers: no MemTotal in /proc/meminfo")
}
