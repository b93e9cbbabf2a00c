package nomadtest

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// placement is one feasible choice for a task group.
type placement struct {
	node      *api.Node
	resources *api.AllocatedResources
}

// schedule finds the first feasible node (by ID) for the job's first task
// group, or explains in an AllocationMetric why none is.
func (s *Server) schedule(job *api.Job) (*placement, *api.AllocationMetric) {
	tg := job.TaskGroups[0]
	pool := "default"
	if job.NodePool != nil && *job.NodePool != "" {
		pool = *job.NodePool
	}
	m := &api.AllocationMetric{
		NodePool:           pool,
		NodesAvailable:     map[string]int{},
		ConstraintFiltered: map[string]int{},
		DimensionExhausted: map[string]int{},
		ClassFiltered:      map[string]int{},
		ClassExhausted:     map[string]int{},
	}
	start := time.Now()
	ids := make([]string, 0, len(s.nodes))
	for id := range s.nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var constraints []*api.Constraint
	constraints = append(constraints, job.Constraints...)
	constraints = append(constraints, tg.Constraints...)
	for _, t := range tg.Tasks {
		constraints = append(constraints, t.Constraints...)
	}
	for _, id := range ids {
		n := s.nodes[id]
		if pool != "all" && n.NodePool != pool {
			continue
		}
		m.NodesInPool++
		if n.Status != "ready" || n.SchedulingEligibility != api.NodeSchedulingEligible || n.Drain {
			continue
		}
		if !dcMatch(job.Datacenters, n.Datacenter) {
			continue
		}
		m.NodesAvailable[n.Datacenter]++
		m.NodesEvaluated++
		if reason := s.filter(n, tg, constraints); reason != "" {
			m.NodesFiltered++
			m.ConstraintFiltered[reason]++
			continue
		}
		res, dim := s.fit(n, tg)
		if dim != "" {
			m.NodesExhausted++
			m.DimensionExhausted[dim]++
			continue
		}
		m.AllocationTime = time.Since(start)
		return &placement{node: n, resources: res}, nil
	}
	m.AllocationTime = time.Since(start)
	return nil, m
}

func dcMatch(dcs []string, dc string) bool {
	if len(dcs) == 0 {
		return true
	}
	for _, d := range dcs {
		if d == "*" || d == dc {
			return true
		}
		if strings.HasSuffix(d, "*") && strings.HasPrefix(dc, strings.TrimSuffix(d, "*")) {
			return true
		}
	}
	return false
}

// filter returns why a node is infeasible regardless of load ("" if feasible).
func (s *Server) filter(n *api.Node, tg *api.TaskGroup, constraints []*api.Constraint) string {
	for _, t := range tg.Tasks {
		d := n.Drivers[t.Driver]
		if d == nil || !d.Detected || !d.Healthy {
			return "missing drivers"
		}
	}
	for _, c := range constraints {
		l, ok := nodeTarget(c.LTarget, n)
		r, _ := nodeTarget(c.RTarget, n)
		if !check(c.Operand, l, ok, r) {
			return constraintString(c)
		}
	}
	for _, t := range tg.Tasks {
		if t.Resources == nil {
			continue
		}
		for _, req := range t.Resources.Devices {
			if len(candidates(n, req, nil)) < int(count(req)) {
				return "missing devices"
			}
		}
	}
	return ""
}

// fit assigns CPU, memory and device instances, or names the exhausted dimension.
func (s *Server) fit(n *api.Node, tg *api.TaskGroup) (*api.AllocatedResources, string) {
	usedCPU, usedMem := int64(0), int64(0)
	usedDev := map[string]bool{}
	for _, a := range s.allocs {
		if a.NodeID != n.ID || terminal(a) || a.AllocatedResources == nil {
			continue
		}
		for _, tr := range a.AllocatedResources.Tasks {
			usedCPU += tr.Cpu.CpuShares
			usedMem += tr.Memory.MemoryMB
			for _, d := range tr.Devices {
				for _, id := range d.DeviceIDs {
					usedDev[id] = true
				}
			}
		}
	}
	freeCPU := n.NodeResources.Cpu.CpuShares - int64(n.ReservedResources.Cpu.CpuShares) - usedCPU
	freeMem := n.NodeResources.Memory.MemoryMB - int64(n.ReservedResources.Memory.MemoryMB) - usedMem
	out := &api.AllocatedResources{Tasks: map[string]*api.AllocatedTaskResources{}}
	for _, t := range tg.Tasks {
		cpu, mem := 100, 300
		if t.Resources != nil && t.Resources.CPU != nil {
			cpu = *t.Resources.CPU
		}
		if t.Resources != nil && t.Resources.MemoryMB != nil {
			mem = *t.Resources.MemoryMB
		}
		if int64(cpu) > freeCPU {
			return nil, "cpu"
		}
		if int64(mem) > freeMem {
			return nil, "memory"
		}
		freeCPU -= int64(cpu)
		freeMem -= int64(mem)
		tr := &api.AllocatedTaskResources{Cpu: api.AllocatedCpuResources{CpuShares: int64(cpu)}, Memory: api.AllocatedMemoryResources{MemoryMB: int64(mem)}}
		if t.Resources != nil {
			for _, req := range t.Resources.Devices {
				var ids []string
				var group *api.NodeDeviceResource
				for _, g := range groups(n, req) {
					ids = ids[:0]
					for _, inst := range candidates(n, req, g) {
						if !usedDev[inst] {
							ids = append(ids, inst)
						}
					}
					if len(ids) >= int(count(req)) {
						group = g
						break
					}
				}
				if group == nil {
					return nil, "devices: no devices match request"
				}
				ids = append([]string(nil), ids[:count(req)]...)
				for _, id := range ids {
					usedDev[id] = true
				}
				tr.Devices = append(tr.Devices, &api.AllocatedDeviceResource{Vendor: group.Vendor, Type: group.Type, Name: group.Name, DeviceIDs: ids})
			}
		}
		out.Tasks[t.Name] = tr
	}
	return out, ""
}

func count(req *api.RequestedDevice) uint64 {
	if req.Count == nil {
		return 1
	}
	return *req.Count
}

// groups returns the node's device groups whose identity matches the request
// name ("gpu", "nvidia/gpu" or "nvidia/gpu/<model>") and whose attributes
// satisfy the request's constraints.
func groups(n *api.Node, req *api.RequestedDevice) []*api.NodeDeviceResource {
	parts := strings.SplitN(req.Name, "/", 3)
	var out []*api.NodeDeviceResource
	for _, g := range n.NodeResources.Devices {
		var ok bool
		switch len(parts) {
		case 1:
			ok = g.Type == parts[0]
		case 2:
			ok = g.Vendor == parts[0] && g.Type == parts[1]
		case 3:
			ok = g.Vendor == parts[0] && g.Type == parts[1] && g.Name == parts[2]
		}
		if !ok {
			continue
		}
		for _, c := range req.Constraints {
			if c.LTarget == "${device.ids}" {
				continue // applied per instance in candidates
			}
			if !deviceCheck(c, g) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, g)
		}
	}
	return out
}

// candidates lists healthy instance IDs of the matching groups (or of one
// group), honouring a ${device.ids} constraint.
func candidates(n *api.Node, req *api.RequestedDevice, only *api.NodeDeviceResource) []string {
	var allowed []string
	for _, c := range req.Constraints {
		if c.LTarget == "${device.ids}" {
			allowed = splitSet(c.RTarget)
		}
	}
	var out []string
	for _, g := range groups(n, req) {
		if only != nil && g != only {
			continue
		}
		for _, inst := range g.Instances {
			if inst.Healthy && (allowed == nil || contains(allowed, inst.ID)) {
				out = append(out, inst.ID)
			}
		}
	}
	sort.Strings(out)
	return out
}

func constraintString(c *api.Constraint) string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %s", c.LTarget, c.Operand, c.RTarget))
}

// nodeTarget interpolates the node targets Nomad documents for constraints.
func nodeTarget(t string, n *api.Node) (string, bool) {
	if !strings.HasPrefix(t, "${") || !strings.HasSuffix(t, "}") {
		return t, true
	}
	key := t[2 : len(t)-1]
	switch key {
	case "node.unique.id":
		return n.ID, true
	case "node.unique.name":
		return n.Name, true
	case "node.datacenter":
		return n.Datacenter, true
	case "node.class":
		return n.NodeClass, true
	case "node.pool":
		return n.NodePool, true
	}
	if k, ok := strings.CutPrefix(key, "attr."); ok {
		v, ok := n.Attributes[k]
		return v, ok
	}
	if k, ok := strings.CutPrefix(key, "meta."); ok {
		v, ok := n.Meta[k]
		return v, ok
	}
	return "", false
}

// check evaluates a constraint operand on plain strings, numerically when
// both sides are numbers.
func check(op, l string, lok bool, r string) bool {
	switch op {
	case "", "=", "==", "is":
		return lok && l == r
	case "!=", "not":
		return !lok || l != r
	case "is_set":
		return lok
	case "is_not_set":
		return !lok
	case "regexp":
		re, err := regexp.Compile(r)
		return lok && err == nil && re.MatchString(l)
	case "set_contains", "set_contains_all":
		have := splitSet(l)
		for _, v := range splitSet(r) {
			if !contains(have, v) {
				return false
			}
		}
		return lok
	case "set_contains_any":
		have := splitSet(l)
		for _, v := range splitSet(r) {
			if contains(have, v) {
				return true
			}
		}
		return false
	case "distinct_hosts", "distinct_property":
		return true // count is 1
	case "<", "<=", ">", ">=":
		if !lok {
			return false
		}
		lf, e1 := strconv.ParseFloat(l, 64)
		rf, e2 := strconv.ParseFloat(r, 64)
		if e1 == nil && e2 == nil {
			return compare(op, lf-rf)
		}
		return compare(op, float64(strings.Compare(l, r)))
	}
	return false
}

func compare(op string, diff float64) bool {
	switch op {
	case "<":
		return diff < 0
	case "<=":
		return diff <= 0
	case ">":
		return diff > 0
	case ">=":
		return diff >= 0
	case "=", "==", "is":
		return diff == 0
	case "!=", "not":
		return diff != 0
	}
	return false
}

func splitSet(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// deviceCheck evaluates a device constraint against a device group,
// converting units the way Nomad does ("40 GiB" against 81920 MiB).
func deviceCheck(c *api.Constraint, g *api.NodeDeviceResource) bool {
	key := strings.TrimSuffix(strings.TrimPrefix(c.LTarget, "${"), "}")
	switch key {
	case "device.model":
		return check(c.Operand, g.Name, true, c.RTarget)
	case "device.vendor":
		return check(c.Operand, g.Vendor, true, c.RTarget)
	case "device.type":
		return check(c.Operand, g.Type, true, c.RTarget)
	}
	name, ok := strings.CutPrefix(key, "device.attr.")
	if !ok {
		return false
	}
	a := g.Attributes[name]
	if a == nil {
		return c.Operand == "is_not_set"
	}
	switch {
	case a.IntVal != nil || a.FloatVal != nil:
		lv := float64(0)
		if a.IntVal != nil {
			lv = float64(*a.IntVal)
		} else {
			lv = *a.FloatVal
		}
		lb, ok1 := unitScale(a.Unit)
		rv, ru, ok2 := parseQuantity(c.RTarget)
		if !ok1 || !ok2 {
			return false
		}
		if ru == "" {
			ru = a.Unit
		}
		rb, ok3 := unitScale(ru)
		if !ok3 {
			return false
		}
		return compare(c.Operand, lv*lb-rv*rb)
	case a.StringVal != nil:
		return check(c.Operand, *a.StringVal, true, c.RTarget)
	case a.BoolVal != nil:
		return check(c.Operand, strconv.FormatBool(*a.BoolVal), true, c.RTarget)
	}
	return false
}

func parseQuantity(s string) (float64, string, bool) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == '-') {
		i++
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, "", false
	}
	return v, strings.TrimSpace(s[i:]), true
}

var unitScales = map[string]float64{
	"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	"MHz": 1e6, "GHz": 1e9, "W": 1, "mW": 1e-3,
}

func unitScale(u string) (float64, bool) {
	v, ok := unitScales[u]
	return v, ok
}
