// Package nomad runs Accord tasks on a HashiCorp Nomad cluster and reports
// the cluster's free GPU capacity so that a pool's provider agent can bid it.
//
// It talks to Nomad only through github.com/hashicorp/nomad/api (the server
// module is not open-source licensed and is never a dependency).
//
// Inventory: free capacity = node resources − reserved resources − the
// resources of non-terminal allocations (CPU MHz, memory MB and the exact
// device instance IDs they hold), over nodes in the configured node pool and
// datacenters that are ready, eligible and not draining. Snapshot takes one
// consistent reading; Watch keeps it fresh from the event stream (topics Node
// and Allocation) and falls back to blocking queries where the stream is
// unavailable.
//
// Runtime: a task becomes a batch job with one group and one task (docker
// driver by default, exec where configured), GPU requests as
// device "nvidia/gpu" blocks with constraints on ${device.attr.memory} and
// ${device.model}. The job ID is derived from the task ID, so a retried
// activity re-attaches instead of submitting twice; Start plans first and
// registers with EnforceIndex at the plan's JobModifyIndex, so two racing
// workers cannot both submit. Wait follows rescheduled and replaced
// allocations until the job is dead.
package nomad

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Sentinel errors of this package; runtime errors also wrap the shared
// runtimes sentinels so callers can classify them.
var (
	// ErrPlacement: the cluster cannot place the task (see the message for the
	// constraint or exhausted dimension).
	ErrPlacement = errors.New("nomad: task cannot be placed")
	// ErrNoFit: no node in the inventory snapshot fits the request.
	ErrNoFit = errors.New("nomad: no node fits the request")
	// ErrConfig: the pool or runtime configuration is unusable.
	ErrConfig = errors.New("nomad: invalid configuration")
)

// Defaults for Config fields left zero.
const (
	DefaultDriver        = "docker"
	DefaultCPUMHzPerCore = 2000 // converts millicores to Nomad's MHz when the node's clock is unknown
	DefaultKillTimeout   = 10 * time.Second
	DefaultTaskName      = "task"
	DefaultOutputDir     = "/out"
)

// Config says how to reach a Nomad cluster and where tasks may run.
type Config struct {
	Pool        string   // Accord's name for the pool, reported in Capacity
	Address     string   // e.g. http://127.0.0.1:4646
	Token       string   // ACL token, optional
	Region      string   // optional
	Namespace   string   // optional, default "default"
	NodePool    string   // optional; empty means Nomad's "default" pool
	Datacenters []string // optional; empty means every datacenter ("*")

	Driver             string        // "docker" (default) or "exec"
	CPUMHzPerCore      int64         // millicores → MHz conversion
	RescheduleAttempts int           // reschedules of a failed allocation (lost nodes are always replaced)
	KillTimeout        time.Duration // grace between interrupt and kill on stop
	// ArtifactBase is an http(s) URL prefix under which Nomad clients can
	// download OCI archives by file name; with it an "oci-archive:PATH" image
	// runs via an artifact block and the docker driver's load option.
	ArtifactBase string
}

// ConfigFromOptions reads the string options a runtimes.Factory receives.
// Keys: address, token, region, namespace, node_pool, datacenter (comma list),
// driver, cpu_mhz_per_core, reschedule_attempts, kill_timeout, artifact_base, pool.
func ConfigFromOptions(opts map[string]string) (Config, error) {
	c := Config{
		Pool: opts["pool"], Address: opts["address"], Token: opts["token"], Region: opts["region"],
		Namespace: opts["namespace"], NodePool: opts["node_pool"], Driver: opts["driver"],
		ArtifactBase: strings.TrimSuffix(opts["artifact_base"], "/"),
	}
	if dc := opts["datacenter"]; dc != "" {
		for _, d := range strings.Split(dc, ",") {
			if d = strings.TrimSpace(d); d != "" {
				c.Datacenters = append(c.Datacenters, d)
			}
		}
	}
	if v := opts["cpu_mhz_per_core"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("%w: cpu_mhz_per_core %q is not a positive integer", ErrConfig, v)
		}
		c.CPUMHzPerCore = n
	}
	if v := opts["reschedule_attempts"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("%w: reschedule_attempts %q is not a non-negative integer", ErrConfig, v)
		}
		c.RescheduleAttempts = n
	}
	if v := opts["kill_timeout"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return c, fmt.Errorf("%w: kill_timeout %q is not a duration", ErrConfig, v)
		}
		c.KillTimeout = d
	}
	return c.withDefaults()
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Address == "" {
		return c, fmt.Errorf("%w: address is required", ErrConfig)
	}
	if !strings.HasPrefix(c.Address, "http://") && !strings.HasPrefix(c.Address, "https://") {
		return c, fmt.Errorf("%w: address %q must start with http:// or https://", ErrConfig, c.Address)
	}
	if c.Driver == "" {
		c.Driver = DefaultDriver
	}
	if c.Driver != "docker" && c.Driver != "exec" {
		return c, fmt.Errorf("%w: driver %q (want docker or exec)", ErrConfig, c.Driver)
	}
	if c.ArtifactBase != "" && !strings.HasPrefix(c.ArtifactBase, "http://") && !strings.HasPrefix(c.ArtifactBase, "https://") {
		return c, fmt.Errorf("%w: artifact_base %q must be an http(s) URL", ErrConfig, c.ArtifactBase)
	}
	if c.CPUMHzPerCore == 0 {
		c.CPUMHzPerCore = DefaultCPUMHzPerCore
	}
	if c.KillTimeout == 0 {
		c.KillTimeout = DefaultKillTimeout
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	return c, nil
}

// Options is the inverse of ConfigFromOptions, for storing a pool.
func (c Config) Options() map[string]string {
	m := map[string]string{"address": c.Address}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("pool", c.Pool)
	set("token", c.Token)
	set("region", c.Region)
	set("namespace", c.Namespace)
	set("node_pool", c.NodePool)
	set("datacenter", strings.Join(c.Datacenters, ","))
	set("driver", c.Driver)
	set("artifact_base", c.ArtifactBase)
	if c.CPUMHzPerCore != 0 {
		m["cpu_mhz_per_core"] = strconv.FormatInt(c.CPUMHzPerCore, 10)
	}
	if c.RescheduleAttempts != 0 {
		m["reschedule_attempts"] = strconv.Itoa(c.RescheduleAttempts)
	}
	if c.KillTimeout != 0 {
		m["kill_timeout"] = c.KillTimeout.String()
	}
	return m
}

// NewClient builds an api client for the configuration.
func NewClient(c Config) (*api.Client, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	ac := api.DefaultConfig()
	ac.Address = c.Address
	if c.Token != "" {
		ac.SecretID = c.Token
	}
	if c.Region != "" {
		ac.Region = c.Region
	}
	ac.Namespace = c.Namespace
	cl, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return cl, nil
}

// nodePool is the pool name Nomad uses for the configuration.
func (c Config) nodePool() string {
	if c.NodePool == "" {
		return "default"
	}
	return c.NodePool
}
