package nomad

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/accordmesh/accord/runtimes"
)

// explain turns a plan's FailedTGAllocs into one sentence naming what
// filtered or exhausted the nodes, e.g. `no node in pool "gpu" can run it:
// 2 nodes filtered by "missing devices" (requested nvidia/gpu ×2 with
// ${device.attr.memory} >= 81920 MiB); 1 node exhausted on memory`.
func explain(job *api.Job, failed map[string]*api.AllocationMetric) string {
	var parts []string
	for _, m := range failed {
		if m == nil {
			continue
		}
		if m.NodesEvaluated == 0 {
			where := "pool " + quote(m.NodePool)
			if len(job.Datacenters) > 0 {
				where += " and datacenters " + strings.Join(job.Datacenters, ",")
			}
			parts = append(parts, "no ready, eligible node in "+where)
			continue
		}
		for _, k := range sortedKeys(m.ConstraintFiltered) {
			s := fmt.Sprintf("%d node%s filtered by %q", m.ConstraintFiltered[k], plural(m.ConstraintFiltered[k]), k)
			if k == "missing devices" || strings.HasPrefix(k, "${device") {
				s += " (requested " + deviceRequest(job) + ")"
			}
			parts = append(parts, s)
		}
		for _, k := range sortedKeys(m.ClassFiltered) {
			parts = append(parts, fmt.Sprintf("%d node%s of class %q filtered", m.ClassFiltered[k], plural(m.ClassFiltered[k]), k))
		}
		for _, k := range sortedKeys(m.DimensionExhausted) {
			s := fmt.Sprintf("%d node%s exhausted on %s", m.DimensionExhausted[k], plural(m.DimensionExhausted[k]), k)
			if strings.HasPrefix(k, "devices") {
				s += " (requested " + deviceRequest(job) + ")"
			}
			parts = append(parts, s)
		}
		for _, q := range m.QuotaExhausted {
			parts = append(parts, "quota exhausted: "+q)
		}
		if len(parts) == 0 {
			parts = append(parts, fmt.Sprintf("%d of %d nodes infeasible", m.NodesFiltered+m.NodesExhausted, m.NodesEvaluated))
		}
	}
	sort.Strings(parts)
	return "Nomad cannot place " + *job.ID + ": " + strings.Join(parts, "; ")
}

// placementError classifies a failed plan: when some node was only
// exhausted (busy) the failure may pass, so it wraps ErrUnavailable
// (retryable); when every node was filtered by a constraint it is permanent
// and wraps ErrInvalid.
func placementError(job *api.Job, failed map[string]*api.AllocationMetric) error {
	retryable := false
	for _, m := range failed {
		if m != nil && (m.NodesExhausted > 0 || len(m.QuotaExhausted) > 0) {
			retryable = true
		}
	}
	class := runtimes.ErrInvalid
	if retryable {
		class = runtimes.ErrUnavailable
	}
	return fmt.Errorf("%w: %w: %s", ErrPlacement, class, explain(job, failed))
}

func deviceRequest(job *api.Job) string {
	var out []string
	for _, tg := range job.TaskGroups {
		for _, t := range tg.Tasks {
			if t.Resources == nil {
				continue
			}
			for _, d := range t.Resources.Devices {
				s := d.Name
				if d.Count != nil {
					s += fmt.Sprintf(" ×%d", *d.Count)
				}
				for _, c := range d.Constraints {
					s += fmt.Sprintf(" with %s %s %s", c.LTarget, c.Operand, c.RTarget)
				}
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		return "no devices"
	}
	return strings.Join(out, ", ")
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func quote(s string) string {
	if s == "" {
		s = "default"
	}
	return fmt.Sprintf("%q", s)
}
