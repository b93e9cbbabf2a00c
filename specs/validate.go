package specs

import (
	"fmt"
	"sort"
	"strings"
)

// resolve fills in what a spec implies but does not spell out: each
// input's default target, the order that data flow implies (a task waits
// for the tasks whose outputs it reads) and each task's co-location group
// (the first group that names it). It reports nothing; validate, which
// runs after it, judges the result.
func resolve(s *Spec) {
	x := newIndex(s)
	for i := range s.Tasks {
		t := &s.Tasks[i]
		deps := make(map[string]bool, len(t.DependsOn))
		for _, d := range t.DependsOn {
			deps[d] = true
		}
		for j := range t.Inputs {
			in := &t.Inputs[j]
			if in.Target == "" && in.Name != "" {
				in.Target = "/in/" + in.Name
			}
			src, out, problem := parseFrom(in.From)
			if problem == "" && src != t.Name && x.declares(src, out) && !deps[src] {
				t.DependsOn = append(t.DependsOn, src)
				deps[src] = true
			}
		}
	}
	grouped := map[string]bool{}
	for _, g := range s.Placement.Colocate {
		name := strings.Join(sortedSet(g), "+")
		for _, n := range g {
			if x.tasks[n] != nil && !grouped[n] {
				grouped[n] = true
				x.tasks[n].Group = name
			}
		}
	}
}

// validate checks what needs the whole spec, once resolve has filled it
// in: required identity and budget, references between tasks, data flow,
// co-location, tests and cycles. References into imports that failed to
// load are not reported again.
func validate(s *Spec, e *errs, failedImports map[string]bool) {
	v := &validator{s: s, e: e, failed: failedImports, top: Pos{File: s.Source.File, Line: 1, Col: 1}, index: newIndex(s)}
	for _, t := range s.Tasks {
		v.names = append(v.names, t.Name)
	}
	v.identity()
	v.budget()
	for i := range s.Tasks {
		v.task(&s.Tasks[i])
	}
	v.colocation()
	v.split()
	v.tests()
	v.cycles()
	v.service()
}

// validator holds what validate's checks share.
type validator struct {
	s      *Spec
	e      *errs
	failed map[string]bool // aliases of imports that failed to load
	top    Pos
	names  []string // task names in spec order, for suggestions
	index
}

// index finds a spec's tasks and their outputs by name.
type index struct {
	tasks   map[string]*Task
	outputs map[string]map[string]bool // task name → declared output paths
}

func newIndex(s *Spec) index {
	x := index{tasks: make(map[string]*Task, len(s.Tasks)), outputs: make(map[string]map[string]bool, len(s.Tasks))}
	for i := range s.Tasks {
		t := &s.Tasks[i]
		x.tasks[t.Name] = t
		x.outputs[t.Name] = make(map[string]bool, len(t.Outputs))
		for _, o := range t.Outputs {
			x.outputs[t.Name][o.Path] = true
		}
	}
	return x
}

// declares reports whether the task named task declares the output path p.
func (x index) declares(task, p string) bool { return x.outputs[task][p] }

// at is the position recorded for a key, or fallback.
func (v *validator) at(key string, fallback Pos) Pos {
	if p, ok := v.s.Source.Positions[key]; ok {
		return p
	}
	return fallback
}

// inFailed reports whether name is a task of an import that failed to load.
func (v *validator) inFailed(name string) bool {
	alias, _, ok := strings.Cut(name, ".")
	return ok && v.failed[alias]
}

// unknown reports a reference to a task that does not exist.
func (v *validator) unknown(p Pos, what, name string) {
	if !v.inFailed(name) {
		v.e.add(p, "%s %q is not a task of this spec%s", what, name, suggestTask(name, v.names))
	}
}

func (v *validator) identity() {
	s, top := v.s, v.top
	switch {
	case s.APIVersion == "":
		v.e.add(top, "front matter needs \"accord: v1\" (the spec language version)")
	case s.APIVersion != "v1":
		v.e.add(v.at("accord", top), "accord %q is not a supported spec language version (use v1)", s.APIVersion)
	}
	switch {
	case s.Name == "":
		v.e.add(top, "front matter needs a name")
	case !nameRE.MatchString(s.Name):
		v.e.add(v.at("name", top), "name %q must be lower-case letters, digits and - (at most 63)", s.Name)
	}
	switch {
	case s.Version == "":
		v.e.add(top, "front matter needs a version (semantic version, e.g. 1.0.0)")
	case !semverRE.MatchString(s.Version):
		v.e.add(v.at("version", top), "version %q is not a semantic version (e.g. 1.2.3)", s.Version)
	}
	switch {
	case s.Tenant == "":
		v.e.add(top, "front matter needs a tenant")
	case !tenantRE.MatchString(s.Tenant):
		v.e.add(v.at("tenant", top), "tenant %q must be lower-case letters, digits, . _ or -", s.Tenant)
	}
	if len(s.Tasks) == 0 && s.Service == nil {
		v.e.add(top, "spec has no tasks (add a \"## Tasks\" section with a yaml block)")
	}
}

func (v *validator) budget() {
	s := v.s
	budget := v.at("budget", v.top)
	if _, ok := s.Source.Positions["budget.max_price"]; !ok {
		v.e.add(budget, "budget needs max_price (integer minor units, e.g. 500 for 5.00 USD)")
	}
	if _, ok := s.Source.Positions["budget.currency"]; !ok {
		v.e.add(budget, "budget needs a currency (e.g. USD)")
	}
	if s.Negotiation.Reserve > s.Budget.MaxPrice && s.Budget.MaxPrice > 0 {
		v.e.add(v.at("negotiation.reserve", v.top), "reserve %d is above budget.max_price %d", s.Negotiation.Reserve, s.Budget.MaxPrice)
	}
}

// task checks one task's dependencies, inputs and outputs.
func (v *validator) task(t *Task) {
	tp := "tasks." + t.Name
	taskPos := v.at(tp, v.top)
	seen := map[string]bool{}
	for j, dep := range t.DependsOn {
		p := v.at(fmt.Sprintf("%s.depends_on[%d]", tp, j), taskPos)
		switch {
		case dep == t.Name:
			v.e.add(p, "task %q depends on itself", t.Name)
		case v.tasks[dep] == nil:
			v.unknown(p, "depends_on", dep)
		case seen[dep]:
			v.e.add(p, "task %q lists %q in depends_on twice", t.Name, dep)
		}
		seen[dep] = true
	}
	inNames, targets := map[string]bool{}, map[string]bool{}
	for j, in := range t.Inputs {
		ip := fmt.Sprintf("%s.inputs[%d]", tp, j)
		if in.Name != "" && inNames[in.Name] {
			v.e.add(v.at(ip+".name", taskPos), "task %q has two inputs named %q", t.Name, in.Name)
		}
		inNames[in.Name] = true
		if in.Target != "" && targets[in.Target] {
			v.e.add(v.at(ip+".target", v.at(ip, taskPos)), "task %q mounts two inputs at %s", t.Name, in.Target)
		}
		targets[in.Target] = true
		v.from(t, in, v.at(ip+".from", taskPos))
	}
	outs := make(map[string]bool, len(t.Outputs))
	for j, o := range t.Outputs {
		if outs[o.Path] {
			v.e.add(v.at(fmt.Sprintf("%s.outputs[%d]", tp, j), taskPos), "task %q lists output %q twice", t.Name, o.Path)
		}
		outs[o.Path] = true
	}
	v.models(t, targets, taskPos)
}

// models checks a task's model mounts against its inputs, and that what
// it publishes is among its outputs and published once.
func (v *validator) models(t *Task, targets map[string]bool, taskPos Pos) {
	tp := "tasks." + t.Name
	for j, m := range t.Models {
		mp := fmt.Sprintf("%s.models[%d]", tp, j)
		if m.As != "" && targets[m.As] {
			v.e.add(v.at(mp+".as", v.at(mp, taskPos)), "task %q mounts two inputs or models at %s", t.Name, m.As)
		}
		targets[m.As] = true
	}
	seen := map[string]bool{}
	for j, pub := range t.Publish {
		pp := fmt.Sprintf("%s.publish[%d]", tp, j)
		if ref := pub.Name + "@" + pub.Version; seen[ref] {
			v.e.add(v.at(pp+".name", v.at(pp, taskPos)), "task %q publishes %s twice", t.Name, ref)
		} else {
			seen[ref] = true
		}
		if total := pub.RoyaltyBP * len(t.Models); total > 10000 {
			v.e.add(v.at(pp+".royalty_basis_points", v.at(pp, taskPos)), "royalty_basis_points %d to each of %d models adds up to %d, more than 10000 (100%%)", pub.RoyaltyBP, len(t.Models), total)
		}
		if pub.Output != "" && len(t.Outputs) > 0 && !declaresOutput(t.Outputs, pub.Output) {
			v.e.add(v.at(pp+".output", v.at(pp, taskPos)), "task %q publishes %s, which is not among its outputs (declare the files under it)", t.Name, pub.Output)
		}
	}
}

// declaresOutput reports whether out is a declared output or the
// directory of one.
func declaresOutput(outs []Output, out string) bool {
	for _, o := range outs {
		if o.Path == out || strings.HasPrefix(o.Path, out+"/") {
			return true
		}
	}
	return false
}

// from checks that an input of t reads a declared output of another task.
func (v *validator) from(t *Task, in Input, fp Pos) {
	src, out, problem := parseFrom(in.From)
	if in.From == "" || problem != "" {
		return // a host file, or reported while decoding
	}
	up := v.tasks[src]
	switch {
	case src == t.Name:
		v.e.add(fp, "input %q of task %q reads its own output", in.Name, t.Name)
	case up == nil:
		if !v.inFailed(src) {
			v.e.add(fp, "from %q: there is no task %q%s", in.From, src, suggestTask(src, v.names))
		}
	case !v.declares(src, out):
		v.e.add(fp, "from %q: task %q has no output %q%s", in.From, src, out, suggest(out, outputPaths(up)))
	}
}

// colocation checks that each group names existing tasks, at least two,
// and that no task is in two groups (resolve gave each its first).
func (v *validator) colocation() {
	for i, g := range v.s.Placement.Colocate {
		gp := fmt.Sprintf("placement.colocate[%d]", i)
		if len(g) < 2 {
			v.e.add(v.at(gp, v.top), "a colocate group needs at least two tasks")
		}
		name := strings.Join(sortedSet(g), "+")
		for j, n := range g {
			p := v.at(fmt.Sprintf("%s[%d]", gp, j), v.at(gp, v.top))
			switch {
			case v.tasks[n] == nil:
				v.unknown(p, "colocate", n)
			case v.tasks[n].Group != name:
				v.e.add(p, "task %q is in two colocate groups", n)
			}
		}
	}
}

// MaxSplitTasks bounds a split job's tasks: the job workflow runs them in
// one execution (workflows.BatchSize), not in batches.
const MaxSplitTasks = 500

// split checks that a split job (placement.split) negotiates by a protocol
// that can award parts and is not spot-checked: a spot check compares the
// outputs of whole runs, each on one provider.
func (v *validator) split() {
	if !v.s.Placement.Split {
		return
	}
	p := v.at("placement.split", v.top)
	ng := v.s.Negotiation
	switch {
	case ng.Protocol == ProtocolAlternating:
		v.e.add(p, "split needs protocol auction or stacked-alternating-offers; alternating offers bargain for the whole job")
	case ng.Mode == ModeBatch:
		v.e.add(p, "split is not supported in mode batch; the periodic clearing places each job whole")
	case v.s.Verification.SpotCheck > 0:
		v.e.add(p, "split cannot be combined with verification.spot_check; a spot check reruns the whole job on one provider")
	case len(v.s.Tasks) > MaxSplitTasks:
		v.e.add(p, "split jobs run at most %d tasks, this one has %d", MaxSplitTasks, len(v.s.Tasks))
	}
}

// tests checks that each verification test is named once and checks
// outputs its task declares.
func (v *validator) tests() {
	testNames := map[string]bool{}
	for i, t := range v.s.Verification.Tests {
		tp := fmt.Sprintf("verification.tests[%d]", i)
		p := v.at(tp, v.top)
		if t.Name != "" && testNames[t.Name] {
			v.e.add(v.at(tp+".name", p), "duplicate test name %q", t.Name)
		}
		testNames[t.Name] = true
		task := v.tasks[t.Task]
		if t.Task != "" && task == nil {
			v.unknown(v.at(tp+".task", p), "test task", t.Task)
			continue
		}
		if task == nil {
			continue
		}
		for k := range t.ExpectOutputs {
			if !v.declares(t.Task, k) {
				v.e.add(v.at(tp+".expect_outputs."+k, p), "expect_outputs: task %q has no output %q%s", t.Task, k, suggest(k, outputPaths(task)))
			}
		}
		for j, m := range t.Metrics {
			if m.File != "" && !v.declares(t.Task, m.File) {
				v.e.add(v.at(fmt.Sprintf("%s.metrics[%d].file", tp, j), p), "metrics file %q is not an output of task %q%s", m.File, t.Task, suggest(m.File, outputPaths(task)))
			}
		}
	}
}

// cycles reports each dependency cycle at the dependency that starts it.
func (v *validator) cycles() {
	for _, c := range findCycles(v.s.Tasks, v.tasks) {
		first := v.tasks[c[0]]
		p := v.at("tasks."+first.Name, v.top)
		for j, dep := range first.DependsOn {
			if dep == c[1] {
				p = v.at(fmt.Sprintf("tasks.%s.depends_on[%d]", first.Name, j), p)
				break
			}
		}
		v.e.add(p, "dependency cycle: %s", cycleString(c))
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
