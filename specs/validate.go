package specs

import (
	"fmt"
	"sort"
	"strings"
)

// validate checks what needs the whole spec: required identity and budget,
// references between tasks, data flow, co-location, tests and cycles.
// References into imports that failed to load are not reported again.
func validate(s *Spec, e *errs, failedImports map[string]bool) {
	top := Pos{File: s.Source.File, Line: 1, Col: 1}
	at := func(key string, fallback Pos) Pos {
		if p, ok := s.Source.Positions[key]; ok {
			return p
		}
		return fallback
	}
	switch {
	case s.APIVersion == "":
		e.add(top, "front matter needs \"accord: v1\" (the spec language version)")
	case s.APIVersion != "v1":
		e.add(at("accord", top), "accord %q is not a supported spec language version (use v1)", s.APIVersion)
	}
	switch {
	case s.Name == "":
		e.add(top, "front matter needs a name")
	case !nameRE.MatchString(s.Name):
		e.add(at("name", top), "name %q must be lower-case letters, digits and - (at most 63)", s.Name)
	}
	switch {
	case s.Version == "":
		e.add(top, "front matter needs a version (semantic version, e.g. 1.0.0)")
	case !semverRE.MatchString(s.Version):
		e.add(at("version", top), "version %q is not a semantic version (e.g. 1.2.3)", s.Version)
	}
	switch {
	case s.Tenant == "":
		e.add(top, "front matter needs a tenant")
	case !tenantRE.MatchString(s.Tenant):
		e.add(at("tenant", top), "tenant %q must be lower-case letters, digits, . _ or -", s.Tenant)
	}
	if len(s.Tasks) == 0 {
		e.add(top, "spec has no tasks (add a \"## Tasks\" section with a yaml block)")
	}
	budget := at("budget", top)
	if _, ok := s.Source.Positions["budget.max_price"]; !ok {
		e.add(budget, "budget needs max_price (integer minor units, e.g. 500 for 5.00 USD)")
	}
	if _, ok := s.Source.Positions["budget.currency"]; !ok {
		e.add(budget, "budget needs a currency (e.g. USD)")
	}
	if s.Negotiation.Reserve > s.Budget.MaxPrice && s.Budget.MaxPrice > 0 {
		e.add(at("negotiation.reserve", top), "reserve %d is above budget.max_price %d", s.Negotiation.Reserve, s.Budget.MaxPrice)
	}

	tasks := make(map[string]*Task, len(s.Tasks))
	names := make([]string, 0, len(s.Tasks))
	outputs := make(map[string]map[string]bool, len(s.Tasks))
	for i := range s.Tasks {
		t := &s.Tasks[i]
		tasks[t.Name] = t
		names = append(names, t.Name)
		outputs[t.Name] = make(map[string]bool, len(t.Outputs))
		for _, o := range t.Outputs {
			outputs[t.Name][o.Path] = true
		}
	}
	hasOutput := func(t *Task, p string) bool { return outputs[t.Name][p] }
	inFailed := func(name string) bool {
		alias, _, ok := strings.Cut(name, ".")
		return ok && failedImports[alias]
	}
	unknown := func(p Pos, what, name string) {
		if !inFailed(name) {
			e.add(p, "%s %q is not a task of this spec%s", what, name, suggestTask(name, names))
		}
	}
	for i := range s.Tasks {
		t := &s.Tasks[i]
		tp := "tasks." + t.Name
		taskPos := at(tp, top)
		seen := map[string]bool{}
		for j, dep := range t.DependsOn {
			p := at(fmt.Sprintf("%s.depends_on[%d]", tp, j), taskPos)
			switch {
			case dep == t.Name:
				e.add(p, "task %q depends on itself", t.Name)
			case tasks[dep] == nil:
				unknown(p, "depends_on", dep)
			case seen[dep]:
				e.add(p, "task %q lists %q in depends_on twice", t.Name, dep)
			}
			seen[dep] = true
		}
		inNames, targets := map[string]bool{}, map[string]bool{}
		for j := range t.Inputs {
			in := &t.Inputs[j]
			ip := fmt.Sprintf("%s.inputs[%d]", tp, j)
			if in.Name != "" && inNames[in.Name] {
				e.add(at(ip+".name", taskPos), "task %q has two inputs named %q", t.Name, in.Name)
			}
			inNames[in.Name] = true
			if in.Target == "" && in.Name != "" {
				in.Target = "/in/" + in.Name
			}
			if in.Target != "" && targets[in.Target] {
				e.add(at(ip+".target", at(ip, taskPos)), "task %q mounts two inputs at %s", t.Name, in.Target)
			}
			targets[in.Target] = true
			if in.From == "" {
				continue
			}
			src, out, problem := parseFrom(in.From)
			if problem != "" {
				continue // reported while decoding
			}
			fp := at(ip+".from", taskPos)
			up := tasks[src]
			switch {
			case src == t.Name:
				e.add(fp, "input %q of task %q reads its own output", in.Name, t.Name)
			case up == nil:
				if !inFailed(src) {
					e.add(fp, "from %q: there is no task %q%s", in.From, src, suggestTask(src, names))
				}
			case !hasOutput(up, out):
				e.add(fp, "from %q: task %q has no output %q%s", in.From, src, out, suggest(out, outputPaths(up)))
			default:
				if !seen[src] {
					t.DependsOn = append(t.DependsOn, src) // data flow implies order
					seen[src] = true
				}
			}
		}
		outs := make(map[string]bool, len(t.Outputs))
		for j, o := range t.Outputs {
			if outs[o.Path] {
				e.add(at(fmt.Sprintf("%s.outputs[%d]", tp, j), taskPos), "task %q lists output %q twice", t.Name, o.Path)
			}
			outs[o.Path] = true
		}
	}

	group := map[string]string{}
	for i, g := range s.Placement.Colocate {
		gp := fmt.Sprintf("placement.colocate[%d]", i)
		if len(g) < 2 {
			e.add(at(gp, top), "a colocate group needs at least two tasks")
		}
		name := strings.Join(sortedSet(g), "+")
		for j, n := range g {
			p := at(fmt.Sprintf("%s[%d]", gp, j), at(gp, top))
			if tasks[n] == nil {
				unknown(p, "colocate", n)
				continue
			}
			if prev, ok := group[n]; ok && prev != name {
				e.add(p, "task %q is in two colocate groups", n)
				continue
			}
			group[n] = name
			tasks[n].Group = name
		}
	}

	testNames := map[string]bool{}
	for i, t := range s.Verification.Tests {
		tp := fmt.Sprintf("verification.tests[%d]", i)
		p := at(tp, top)
		if t.Name != "" && testNames[t.Name] {
			e.add(at(tp+".name", p), "duplicate test name %q", t.Name)
		}
		testNames[t.Name] = true
		task := tasks[t.Task]
		if t.Task != "" && task == nil {
			unknown(at(tp+".task", p), "test task", t.Task)
			continue
		}
		if task == nil {
			continue
		}
		for k := range t.ExpectOutputs {
			if !hasOutput(task, k) {
				e.add(at(tp+".expect_outputs."+k, p), "expect_outputs: task %q has no output %q%s", t.Task, k, suggest(k, outputPaths(task)))
			}
		}
		for j, m := range t.Metrics {
			if m.File != "" && !hasOutput(task, m.File) {
				e.add(at(fmt.Sprintf("%s.metrics[%d].file", tp, j), p), "metrics file %q is not an output of task %q%s", m.File, t.Task, suggest(m.File, outputPaths(task)))
			}
		}
	}

	for _, c := range findCycles(s.Tasks, tasks) {
		first := tasks[c[0]]
		p := at("tasks."+first.Name, top)
		for j, dep := range first.DependsOn {
			if dep == c[1] {
				p = at(fmt.Sprintf("tasks.%s.depends_on[%d]", first.Name, j), p)
				break
			}
		}
		e.add(p, "dependency cycle: %s", cycleString(c))
	}
}

func outputPaths(t *Task) []string {
	out := make([]string, len(t.Outputs))
	for i, o := range t.Outputs {
		out[i] = o.Path
	}
	return out
}

// suggestTask is suggest over task names, cut off for very large specs so
// that a spec full of typos stays linear.
func suggestTask(name string, names []string) string { return suggest(name, names) }

// findCycles returns each dependency cycle once, as task names where each
// depends on the next and the last repeats the first, rotated to start at
// its smallest name. It runs in time linear in tasks plus edges.
func findCycles(list []Task, tasks map[string]*Task) [][]string {
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(list))
	var cycles [][]string
	order := make([]string, 0, len(list))
	for _, t := range list {
		order = append(order, t.Name)
	}
	sort.Strings(order)
	type frame struct {
		name string
		next int
	}
	for _, start := range order {
		if color[start] != white {
			continue
		}
		stack := []frame{{name: start}}
		onPath := map[string]int{start: 0}
		color[start] = grey
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			t := tasks[f.name]
			if f.next >= len(t.DependsOn) {
				color[f.name] = black
				delete(onPath, f.name)
				stack = stack[:len(stack)-1]
				continue
			}
			dep := t.DependsOn[f.next]
			f.next++
			if tasks[dep] == nil || dep == f.name {
				continue
			}
			switch color[dep] {
			case white:
				color[dep] = grey
				onPath[dep] = len(stack)
				stack = append(stack, frame{name: dep})
			case grey:
				if len(cycles) >= maxCycles {
					continue
				}
				var c []string
				for _, fr := range stack[onPath[dep]:] {
					c = append(c, fr.name)
				}
				cycles = append(cycles, rotate(c))
			}
		}
	}
	return cycles
}

// maxCycles bounds how many dependency cycles are reported (each costs
// time linear in its length).
const maxCycles = 10

// cycleString shows a cycle, eliding the middle of very long ones.
func cycleString(c []string) string {
	const keep = 8
	if len(c) <= 2*keep+1 {
		return strings.Join(c, " -> ")
	}
	return fmt.Sprintf("%s -> ... (%d more) -> %s", strings.Join(c[:keep], " -> "), len(c)-2*keep, strings.Join(c[len(c)-keep:], " -> "))
}

func rotate(c []string) []string {
	m := 0
	for i := range c {
		if c[i] < c[m] {
			m = i
		}
	}
	out := append(append([]string{}, c[m:]...), c[:m]...)
	return append(out, out[0])
}
