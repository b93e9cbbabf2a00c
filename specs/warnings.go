package specs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/accordmesh/accord/settlement/money"
)

// Thresholds beyond which a valid spec is probably not what its author
// meant. They warn; they do not reject.
const (
	// warnBudgetRatio: the envelope's reference cost is this many times
	// the budget (no provider is likely to bid).
	warnBudgetRatio = 10
	// warnMaxDuration: a task's max_duration beyond a year.
	warnMaxDuration = 365 * 24 * time.Hour
	// warnGPUs: more GPUs for one task than any one machine has.
	warnGPUs = 64
)

// Warnings returns what lint reports about a spec that is valid but
// implausible, sorted by position: a budget far below the reference cost of
// the resources it asks for, a max_duration over a year, more GPUs per task
// than a machine has, and oci-archive images whose files do not exist
// (relative to the spec's directory). Warnings do not fail lint.
func Warnings(s *Spec, p *Plan) ErrorList {
	at := func(keys ...string) Pos {
		for _, k := range keys {
			if pos, ok := s.Source.Positions[k]; ok {
				return pos
			}
		}
		return Pos{File: s.Source.File, Line: 1, Col: 1}
	}
	var out ErrorList
	add := func(pos Pos, format string, a ...any) {
		out = append(out, Error{Pos: pos, Message: fmt.Sprintf(format, a...)})
	}
	if b := s.Budget.MaxPrice; b > 0 && p.ReferenceCost/warnBudgetRatio >= b {
		add(at("budget.max_price", "budget"), "max_price %s is less than 1/%d of the reference cost %s of the resources the tasks ask for; no provider is likely to bid",
			money.Format(b, s.Budget.Currency), warnBudgetRatio, money.Format(p.ReferenceCost, s.Budget.Currency))
	}
	for _, t := range s.Tasks {
		key := "tasks." + t.Name
		if t.Resources.MaxDuration > warnMaxDuration {
			add(at(key+".resources.max_duration", key), "task %s: max_duration %s is over a year", t.Name, formatDuration(t.Resources.MaxDuration))
		}
		if t.Resources.GPU.Count > warnGPUs {
			add(at(key+".resources.gpu.count", key+".resources.gpu", key), "task %s asks for %d GPUs; a task runs on one machine, and none has more than %d", t.Name, t.Resources.GPU.Count, warnGPUs)
		}
		if path, ok := strings.CutPrefix(t.Image, "oci-archive:"); ok {
			if !filepath.IsAbs(path) {
				path = filepath.Join(filepath.Dir(s.Source.File), path)
			}
			if _, err := os.Stat(path); err != nil {
				add(at(key+".image", key), "task %s: image archive %s does not exist (make images builds the examples' archive)", t.Name, path)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Pos, out[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return out
}
