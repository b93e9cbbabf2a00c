package specs

import (
	"fmt"
	"math"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/accordmesh/accord/internal/names"
)

// decoder turns a composed root node into a Spec, reporting every problem
// and recording where each field came from.
type decoder struct {
	e   *errs
	pos map[string]Pos
	// file is the spec being decoded; paths written in files it extends
	// are rebased onto its directory.
	file string
}

// rebase turns p, written in the file of node n, into a path relative to
// the directory of the spec being decoded.
func (d *decoder) rebase(p string, n *node) string {
	if n == nil || p == "" || filepath.IsAbs(p) || n.pos.File == d.file || d.file == "" {
		return p
	}
	abs := relTo(n.pos.File, p)
	if r, err := filepath.Rel(filepath.Dir(d.file), abs); err == nil {
		return r
	}
	return abs
}

func (d *decoder) at(path string, n *node) {
	if n != nil {
		d.pos[path] = n.pos
	}
}

// fields checks that n is a mapping with only known keys and returns the
// values by key. Null values count as absent.
func (d *decoder) fields(n *node, path, what string, known []string) map[string]*node {
	out := map[string]*node{}
	if n == nil || n.kind == kindNull {
		return out
	}
	if n.kind != kindMap {
		d.e.add(n.pos, "%s must be a mapping, not %s", what, n.kind)
		return out
	}
	for i, k := range n.keys {
		v := n.vals[i]
		if !contains(known, k.value) {
			d.e.add(k.pos, "unknown key %q in %s%s", k.value, what, suggest(k.value, known))
			continue
		}
		if v.tag == "!!invalid" || v.kind == kindNull {
			continue
		}
		out[k.value] = v
		d.at(join(path, k.value), v)
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) scalar(n *node, field string) (string, bool) {
	if n == nil {
		return "", false
	}
	if n.kind != kindScalar {
		d.e.add(n.pos, "%s must be a single value, not %s", field, n.kind)
		return "", false
	}
	return n.value, true
}

func (d *decoder) str(n *node, field string) string {
	s, _ := d.scalar(n, field)
	return s
}

func (d *decoder) integer(n *node, field string, lo, hi int64) (int64, bool) {
	s, ok := d.scalar(n, field)
	if !ok {
		return 0, false
	}
	if n.tag != "!!int" {
		if n.tag == "!!float" {
			d.e.add(n.pos, "%s must be a whole number, not %s", field, s)
		} else {
			d.e.add(n.pos, "%s must be a whole number, not %q", field, s)
		}
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
	if err != nil {
		d.e.add(n.pos, "%s %v", field, errOverflow)
		return 0, false
	}
	if v < 0 && lo >= 0 {
		d.e.add(n.pos, "%s %v", field, errNegative)
		return 0, false
	}
	if v < lo || v > hi {
		d.e.add(n.pos, "%s must be between %d and %d, not %d", field, lo, hi, v)
		return 0, false
	}
	return v, true
}

func (d *decoder) money(n *node, field string) int64 {
	if n == nil {
		return 0
	}
	if n.kind == kindScalar && n.tag == "!!float" && allDigits(n.value) {
		d.e.add(n.pos, "%s %v", field, errOverflow)
		return 0
	}
	if n.kind == kindScalar && n.tag == "!!float" {
		d.e.add(n.pos, "%s must be an integer number of minor units (e.g. 500 for 5.00 USD), not %s", field, n.value)
		return 0
	}
	v, _ := d.integer(n, field, 0, math.MaxInt64)
	return v
}

func (d *decoder) boolean(n *node, field string) (bool, bool) {
	s, ok := d.scalar(n, field)
	if !ok {
		return false, false
	}
	if n.tag != "!!bool" {
		d.e.add(n.pos, "%s must be true or false, not %q", field, s)
		return false, false
	}
	return strings.EqualFold(s, "true"), true
}

func (d *decoder) number(n *node, field string) (float64, bool) {
	s, ok := d.scalar(n, field)
	if !ok {
		return 0, false
	}
	if n.tag != "!!int" && n.tag != "!!float" {
		d.e.add(n.pos, "%s must be a number, not %q", field, s)
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		d.e.add(n.pos, "%s must be a finite number, not %s", field, s)
		return 0, false
	}
	return v, true
}

func (d *decoder) quantity(n *node, field string, parse func(string) (int64, error)) (int64, bool) {
	s, ok := d.scalar(n, field)
	if !ok {
		return 0, false
	}
	v, err := parse(s)
	if err != nil {
		d.e.add(n.pos, "%s %v", field, err)
		return 0, false
	}
	return v, true
}

func (d *decoder) duration(n *node, field string) (time.Duration, bool) {
	v, ok := d.quantity(n, field, func(s string) (int64, error) {
		t, err := parseDuration(s)
		return int64(t), err
	})
	return time.Duration(v), ok
}

func (d *decoder) list(n *node, field string) []*node {
	if n == nil {
		return nil
	}
	if n.kind != kindSeq {
		d.e.add(n.pos, "%s must be a list, not %s", field, n.kind)
		return nil
	}
	return n.vals
}

func (d *decoder) strings(n *node, path, field string) []string {
	var out []string
	for i, it := range d.list(n, field) {
		if s, ok := d.scalar(it, field+" entries"); ok {
			out = append(out, s)
			d.at(fmt.Sprintf("%s[%d]", path, i), it)
		}
	}
	return out
}

func (d *decoder) stringMap(n *node, path, field string, keyRE *regexp.Regexp, keyHint string) map[string]string {
	if n == nil {
		return nil
	}
	if n.kind != kindMap {
		d.e.add(n.pos, "%s must be a mapping, not %s", field, n.kind)
		return nil
	}
	out := make(map[string]string, len(n.keys))
	for i, k := range n.keys {
		if keyRE != nil && !keyRE.MatchString(k.value) {
			d.e.add(k.pos, "%s key %q is not %s", field, k.value, keyHint)
			continue
		}
		v := n.vals[i]
		if v.tag == "!!invalid" {
			continue
		}
		if v.kind == kindNull {
			out[k.value] = ""
			continue
		}
		if s, ok := d.scalar(v, field+" values"); ok {
			out[k.value] = s
			d.at(join(path, k.value), v)
		}
	}
	return out
}

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	taskNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	tenantRE    = names.TenantPattern
	semverRE    = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	labelKeyRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)
	envKeyRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	currencyRE  = names.CurrencyPattern
	inputNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	hexRE       = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// imageRE is an OCI reference (registry/path[:tag]) pinned by digest.
	imageRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\.[a-z0-9-]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}$`)
)

// decodeSpec reads the composed root of one spec file. Cross-references
// (dependencies, data flow, co-location, tests) are checked later, once
// imports have added their tasks.
func (d *decoder) decodeSpec(root *node) *Spec {
	s := &Spec{}
	known := append(append([]string{}, frontKeys...), sectionNames...)
	f := d.fields(root, "", "the spec", known)
	s.APIVersion = d.str(f["accord"], "accord")
	s.Name = d.str(f["name"], "name")
	s.Version = d.str(f["version"], "version")
	s.Tenant = d.str(f["tenant"], "tenant")
	s.Owner = d.str(f["owner"], "owner")
	s.Description = d.str(f["description"], "description")
	s.Labels = d.stringMap(f["labels"], "labels", "labels", labelKeyRE, "a label key (letters, digits, . _ / -)")
	s.Tags = d.strings(f["tags"], "tags", "tags")

	d.decodeTasks(s, f["tasks"], f["defaults"])
	d.decodePlacement(&s.Placement, f["placement"])
	d.decodeBudget(&s.Budget, f["budget"])
	d.decodeNegotiation(&s.Negotiation, f["negotiation"])
	d.decodeVerification(&s.Verification, f["verification"])
	d.decodeSettlement(&s.Settlement, f["settlement"])
	d.decodeApproval(&s.Approval, f["approval"])
	s.Service = d.decodeService(f["service"])
	return s
}

var (
	taskKeys      = []string{"image", "command", "args", "env", "working_dir", "depends_on", "inputs", "outputs", "resources", "retry", "models", "publish"}
	resourceKeys  = []string{"cpu", "memory", "disk", "gpu", "max_duration"}
	gpuKeys       = []string{"count", "model", "memory"}
	retryKeys     = []string{"attempts", "backoff", "max_backoff"}
	inputKeys     = []string{"name", "path", "from", "artifact", "target", "sha256"}
	outputKeys    = []string{"path", "sha256"}
	defaultsKeys  = []string{"resources", "retry"}
	placementKeys = []string{"regions", "residency", "allow_providers", "deny_providers", "tee", "require_attestation", "colocate", "split"}
	budgetKeys    = []string{"max_price", "currency", "deadline", "preference"}
	negKeys       = []string{"protocol", "reserve", "pricing", "rounds", "discount", "buyer", "round_timeout", "mode", "batch_wait"}
	verifKeys     = []string{"tests", "spot_check"}
	testKeys      = []string{"name", "task", "image", "command", "expect_exit", "expect_outputs", "metrics"}
	metricKeys    = []string{"file", "metric", "op", "value"}
	settleKeys    = []string{"pay_on_success", "sla", "royalties"}
	slaKeys       = []string{"deadline", "max_duration", "refund_percent", "slash_percent", "stake"}
	royaltyKeys   = []string{"account", "basis_points"}
	approvalKeys  = []string{"required", "above_price", "approvers"}
)

// Built-in defaults for fields a spec leaves out (see the README's spec reference).
const (
	DefaultMilliCPU    = 1000
	DefaultMemoryBytes = 512 << 20
	DefaultMaxDuration = time.Hour
	DefaultAttempts    = 1
	DefaultBackoff     = 10 * time.Second
	DefaultPreference  = 0.5
	DefaultRoundsAO    = 10
	DefaultDiscountAO  = 0.9
	maxAttempts        = 100
	maxGPUs            = 1024
)

func (d *decoder) decodeTasks(s *Spec, tasks, defaults *node) {
	df := d.fields(defaults, "defaults", "defaults", defaultsKeys)
	if tasks == nil {
		return
	}
	if tasks.kind != kindMap {
		d.e.add(tasks.pos, "tasks must be a mapping of task names to tasks")
		return
	}
	for i, k := range tasks.keys {
		name := k.value
		p := "tasks." + name
		d.pos[p] = k.pos
		if !taskNameRE.MatchString(name) {
			d.e.add(k.pos, "task name %q must be lower-case letters, digits, - or _ (at most 63, no dots)", name)
		}
		n := tasks.vals[i]
		if n.tag == "!!invalid" {
			continue
		}
		if n.kind != kindMap {
			d.e.add(n.pos, "task %q must be a mapping, not %s", name, n.kind)
			continue
		}
		// Defaults merge under the task's own resources and retry.
		n = withDefaults(n, df)
		f := d.fields(n, p, fmt.Sprintf("task %q", name), taskKeys)
		t := Task{Name: name}
		if v := f["image"]; v != nil {
			t.Image = d.str(v, "image")
			if t.Image != "" && !validImage(t.Image) {
				d.e.add(v.pos, "image %q must be an OCI reference pinned by digest (name@sha256:<64 hex>), artifact:sha256:<64 hex> or oci-archive:PATH", t.Image)
			} else if ap, ok := strings.CutPrefix(t.Image, "oci-archive:"); ok {
				t.Image = "oci-archive:" + d.rebase(ap, v)
			}
		} else if n.get("image") == nil {
			d.e.add(k.pos, "task %q: image is required", name)
		}
		t.Command = d.strings(f["command"], p+".command", "command")
		t.Args = d.strings(f["args"], p+".args", "args")
		t.Env = d.stringMap(f["env"], p+".env", "env", envKeyRE, "an environment variable name")
		if v := f["working_dir"]; v != nil {
			t.WorkingDir = d.str(v, "working_dir")
			if t.WorkingDir != "" && !strings.HasPrefix(t.WorkingDir, "/") {
				d.e.add(v.pos, "working_dir %q must be an absolute path", t.WorkingDir)
			}
		}
		t.DependsOn = d.strings(f["depends_on"], p+".depends_on", "depends_on")
		d.decodeInputs(&t, f["inputs"], p)
		d.decodeOutputs(&t, f["outputs"], p)
		d.decodeResources(&t.Resources, f["resources"], p+".resources")
		d.decodeRetry(&t.Retry, f["retry"], p+".retry")
		d.decodeModels(&t, f["models"], p)
		d.decodePublish(&t, f["publish"], p)
		s.Tasks = append(s.Tasks, t)
	}
}

// withDefaults returns task n with defaults.resources and defaults.retry
// merged underneath its own values (task keys win).
func withDefaults(n *node, df map[string]*node) *node {
	if len(df) == 0 {
		return n
	}
	out := &node{kind: kindMap, pos: n.pos}
	for i, k := range n.keys {
		out.set(k, n.vals[i])
	}
	for _, key := range defaultsKeys {
		def := df[key]
		if def == nil || def.kind != kindMap {
			continue
		}
		out.set(&node{kind: kindScalar, tag: "!!str", value: key, pos: def.pos}, mergeNodes(def, n.get(key)))
	}
	return out
}

func validImage(s string) bool {
	if dg, ok := strings.CutPrefix(s, ArtifactImagePrefix); ok {
		return validDigest(dg)
	}
	if p, ok := strings.CutPrefix(s, "oci-archive:"); ok {
		return p != "" && !strings.ContainsAny(p, "\x00\n")
	}
	return imageRE.MatchString(s)
}

func (d *decoder) decodeInputs(t *Task, n *node, p string) {
	for i, it := range d.list(n, "inputs") {
		ip := fmt.Sprintf("%s.inputs[%d]", p, i)
		d.at(ip, it)
		f := d.fields(it, ip, "an input", inputKeys)
		in := Input{
			Name:   d.str(f["name"], "name"),
			Path:   d.rebase(d.str(f["path"], "path"), f["path"]),
			From:   d.str(f["from"], "from"),
			Target: d.str(f["target"], "target"),
		}
		if in.Name == "" {
			d.e.add(it.pos, "input needs a name")
		} else if !inputNameRE.MatchString(in.Name) || in.Name == ".." {
			d.e.add(f["name"].pos, "input name %q must be letters, digits, . _ or -", in.Name)
		}
		if v := f["artifact"]; v != nil {
			in.Artifact = d.str(v, "artifact")
			if in.Artifact != "" && !validDigest(in.Artifact) {
				d.e.add(v.pos, "artifact %q must be sha256:<64 lower-case hex digits> (the digest accord data push prints)", in.Artifact)
			}
		}
		d.checkInputSource(in, it, f)
		if v := f["target"]; v != nil && !strings.HasPrefix(in.Target, "/") {
			d.e.add(v.pos, "target %q must be an absolute path inside the container", in.Target)
		}
		if v := f["sha256"]; v != nil {
			in.SHA256 = d.digest(v, "sha256")
		}
		t.Inputs = append(t.Inputs, in)
	}
}

// checkInputSource reports an input that names no source, or more than one
// of path, from and artifact.
func (d *decoder) checkInputSource(in Input, it *node, f map[string]*node) {
	var given []string
	for _, k := range []string{"path", "from", "artifact"} {
		if f[k] != nil {
			given = append(given, k)
		}
	}
	switch {
	case len(given) == 0:
		d.e.add(it.pos, "input %q needs one of artifact (sha256:… from accord data push), from (\"task:output\") or path (a host file, for operators)", in.Name)
	case len(given) > 1:
		d.e.add(f[given[1]].pos, "input %q has both %s and %s; give one", in.Name, given[0], given[1])
	case in.From != "":
		if _, _, problem := parseFrom(in.From); problem != "" {
			d.e.add(f["from"].pos, "from %q %s", in.From, problem)
		}
	}
}

// validDigest reports whether s is "sha256:<64 lower-case hex>".
func validDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	return ok && hexRE.MatchString(h)
}

func (d *decoder) digest(n *node, field string) string {
	s := d.str(n, field)
	h := strings.TrimPrefix(s, "sha256:")
	if !hexRE.MatchString(h) {
		d.e.add(n.pos, "%s %q must be sha256:<64 lower-case hex digits>", field, s)
		return ""
	}
	return "sha256:" + h
}

func (d *decoder) decodeOutputs(t *Task, n *node, p string) {
	for i, it := range d.list(n, "outputs") {
		op := fmt.Sprintf("%s.outputs[%d]", p, i)
		d.at(op, it)
		var o Output
		var pathNode *node
		if it.kind == kindScalar {
			o.Path, pathNode = it.value, it
		} else {
			f := d.fields(it, op, "an output", outputKeys)
			o.Path, pathNode = d.str(f["path"], "path"), f["path"]
			if v := f["sha256"]; v != nil {
				o.SHA256 = d.digest(v, "sha256")
			}
			if pathNode == nil {
				d.e.add(it.pos, "output needs a path")
				continue
			}
		}
		if !validRelPath(o.Path) {
			d.e.add(pathNode.pos, "output path %q must be a clean relative path inside the output directory", o.Path)
		}
		t.Outputs = append(t.Outputs, o)
	}
}

func validRelPath(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p && p != "." && p != ".." && !strings.HasPrefix(p, "../")
}

func (d *decoder) decodeResources(r *Resources, n *node, p string) {
	f := d.fields(n, p, "resources", resourceKeys)
	r.MilliCPU, r.MemoryBytes, r.MaxDuration = DefaultMilliCPU, DefaultMemoryBytes, DefaultMaxDuration
	if v := f["cpu"]; v != nil {
		if c, ok := d.quantity(v, "cpu", parseCPU); ok {
			if c == 0 {
				d.e.add(v.pos, "cpu must be more than 0")
			}
			r.MilliCPU = c
		}
	}
	if v := f["memory"]; v != nil {
		if m, ok := d.quantity(v, "memory", parseBytes); ok {
			if m == 0 {
				d.e.add(v.pos, "memory must be more than 0")
			}
			r.MemoryBytes = m
		}
	}
	if v := f["disk"]; v != nil {
		r.DiskBytes, _ = d.quantity(v, "disk", parseBytes)
	}
	if v := f["max_duration"]; v != nil {
		if t, ok := d.duration(v, "max_duration"); ok {
			if t <= 0 {
				d.e.add(v.pos, "max_duration must be more than 0")
			}
			r.MaxDuration = t
		}
	}
	g := d.fields(f["gpu"], p+".gpu", "gpu", gpuKeys)
	if v := g["count"]; v != nil {
		c, _ := d.integer(v, "gpu.count", 0, maxGPUs)
		r.GPU.Count = int(c)
	}
	r.GPU.Model = d.str(g["model"], "gpu.model")
	if v := g["memory"]; v != nil {
		r.GPU.MinMemoryBytes, _ = d.quantity(v, "gpu.memory", parseBytes)
	}
	if r.GPU.Count == 0 && (r.GPU.Model != "" || r.GPU.MinMemoryBytes != 0) && f["gpu"] != nil {
		d.e.add(f["gpu"].pos, "gpu model or memory given but gpu.count is 0")
	}
}

func (d *decoder) decodeRetry(r *Retry, n *node, p string) {
	f := d.fields(n, p, "retry", retryKeys)
	r.Attempts, r.Backoff = DefaultAttempts, DefaultBackoff
	if v := f["attempts"]; v != nil {
		if a, ok := d.integer(v, "retry.attempts", 1, maxAttempts); ok {
			r.Attempts = int(a)
		}
	}
	if v := f["backoff"]; v != nil {
		r.Backoff, _ = d.duration(v, "retry.backoff")
	}
	if v := f["max_backoff"]; v != nil {
		if m, ok := d.duration(v, "retry.max_backoff"); ok {
			if m < r.Backoff {
				d.e.add(v.pos, "retry.max_backoff %s is less than retry.backoff %s", formatDuration(m), formatDuration(r.Backoff))
			}
			r.MaxBackoff = m
		}
	}
}

var teeKinds = []string{"any", "sev-snp", "tdx", "nvidia-cc"}

func (d *decoder) decodePlacement(pl *Placement, n *node) {
	f := d.fields(n, "placement", "placement", placementKeys)
	pl.Regions = d.strings(f["regions"], "placement.regions", "regions")
	pl.Residency = d.strings(f["residency"], "placement.residency", "residency")
	pl.AllowProviders = d.strings(f["allow_providers"], "placement.allow_providers", "allow_providers")
	pl.DenyProviders = d.strings(f["deny_providers"], "placement.deny_providers", "deny_providers")
	if v := f["tee"]; v != nil {
		pl.TEE = d.str(v, "tee")
		if pl.TEE != "" && !contains(teeKinds, pl.TEE) {
			d.e.add(v.pos, "tee %q must be one of %s%s", pl.TEE, strings.Join(teeKinds, ", "), suggest(pl.TEE, teeKinds))
		}
	}
	if v := f["require_attestation"]; v != nil {
		pl.RequireAttestation, _ = d.boolean(v, "require_attestation")
	}
	for i, g := range d.list(f["colocate"], "colocate") {
		gp := fmt.Sprintf("placement.colocate[%d]", i)
		d.at(gp, g)
		pl.Colocate = append(pl.Colocate, d.strings(g, gp, "a colocate group"))
	}
	if v := f["split"]; v != nil {
		pl.Split, _ = d.boolean(v, "split")
		d.at("placement.split", v)
	}
}

var preferenceNames = map[string]float64{"cheapest": 0, "balanced": 0.5, "fastest": 1}

func (d *decoder) decodeBudget(b *Budget, n *node) {
	f := d.fields(n, "budget", "budget", budgetKeys)
	b.MaxPrice = d.money(f["max_price"], "max_price")
	if v := f["max_price"]; v != nil && b.MaxPrice == 0 && v.tag == "!!int" && v.value == "0" {
		d.e.add(v.pos, "max_price must be more than 0")
	}
	if v := f["currency"]; v != nil {
		b.Currency = d.str(v, "currency")
		if !currencyRE.MatchString(b.Currency) {
			d.e.add(v.pos, "currency %q must be an upper-case code such as USD, EUR or a token symbol", b.Currency)
		}
	}
	if v := f["deadline"]; v != nil {
		b.Deadline, _ = d.duration(v, "deadline")
	}
	b.Preference = DefaultPreference
	if v := f["preference"]; v != nil {
		if v.kind == kindScalar && v.tag == "!!str" {
			p, ok := preferenceNames[v.value]
			if !ok {
				d.e.add(v.pos, "preference %q must be a number from 0 (cheapest) to 1 (fastest), or cheapest, balanced, fastest", v.value)
			}
			b.Preference = p
		} else if p, ok := d.number(v, "preference"); ok {
			if p < 0 || p > 1 {
				d.e.add(v.pos, "preference must be between 0 (cheapest) and 1 (fastest), not %v", p)
			}
			b.Preference = p
		}
	}
}

var (
	protocols    = []string{ProtocolAuction, ProtocolAlternating, ProtocolStacked}
	pricingRules = []string{PricingVCG, PricingFirst, PricingSecond}
)

func (d *decoder) decodeNegotiation(ng *Negotiation, n *node) {
	f := d.fields(n, "negotiation", "negotiation", negKeys)
	ng.Protocol = ProtocolAuction
	if v := f["protocol"]; v != nil {
		ng.Protocol = d.str(v, "protocol")
		if !contains(protocols, ng.Protocol) {
			d.e.add(v.pos, "protocol %q must be auction, alternating-offers or stacked-alternating-offers%s", ng.Protocol, suggest(ng.Protocol, protocols))
		}
	}
	ng.Reserve = d.money(f["reserve"], "reserve")
	if v := f["pricing"]; v != nil {
		ng.Pricing = d.str(v, "pricing")
		switch {
		case !contains(pricingRules, ng.Pricing):
			d.e.add(v.pos, "pricing %q must be vcg, first-price or second-price%s", ng.Pricing, suggest(ng.Pricing, pricingRules))
		case ng.Protocol != ProtocolAuction:
			d.e.add(v.pos, "pricing applies to protocol auction; %s agrees on its price by bargaining", ng.Protocol)
		}
	}
	ng.Rounds = 1
	if ng.Bargains() {
		ng.Rounds, ng.Discount = DefaultRoundsAO, DefaultDiscountAO
	}
	if v := f["rounds"]; v != nil {
		if r, ok := d.integer(v, "rounds", 1, 1000); ok {
			ng.Rounds = int(r)
		}
	}
	if v := f["discount"]; v != nil {
		if x, ok := d.number(v, "discount"); ok {
			if x <= 0 || x > 1 {
				d.e.add(v.pos, "discount must be in (0, 1], not %v", x)
			}
			ng.Discount = x
		}
	}
	d.decodeBuyer(ng, f)
	d.decodeMode(ng, f)
}

var modes = []string{ModeImmediate, ModeBatch}

// decodeMode reads negotiation.mode and negotiation.batch_wait: a batch
// is cleared by one auction, so it takes no bargaining protocol, and a
// batch wait only bounds a queued job.
func (d *decoder) decodeMode(ng *Negotiation, f map[string]*node) {
	if v := f["mode"]; v != nil {
		ng.Mode = d.str(v, "mode")
		switch {
		case !contains(modes, ng.Mode):
			d.e.add(v.pos, "mode %q must be immediate or batch%s", ng.Mode, suggest(ng.Mode, modes))
		case ng.Mode == ModeBatch && ng.Protocol != "auction":
			d.e.add(v.pos, "mode batch needs protocol auction; the periodic clearing is one auction over every queued job")
		}
	}
	v := f["batch_wait"]
	if v == nil {
		if ng.Batch() {
			ng.BatchWait = DefaultBatchWait
		}
		return
	}
	t, ok := d.duration(v, "batch_wait")
	switch {
	case !ok:
	case !ng.Batch():
		d.e.add(v.pos, "batch_wait applies to mode batch; an immediate job is cleared at once")
	case t < MinBatchWait || t > MaxBatchWait:
		d.e.add(v.pos, "batch_wait %s must be between %s and %s", formatDuration(t), formatDuration(MinBatchWait), formatDuration(MaxBatchWait))
	default:
		ng.BatchWait = t
	}
}

var buyers = []string{BuyerAuto, BuyerAgent}

// decodeBuyer reads negotiation.buyer and negotiation.round_timeout: an
// agent buyer only bargains (alternating offers), and a round timeout only
// bounds an agent's moves.
func (d *decoder) decodeBuyer(ng *Negotiation, f map[string]*node) {
	if v := f["buyer"]; v != nil {
		ng.Buyer = d.str(v, "buyer")
		switch {
		case !contains(buyers, ng.Buyer):
			d.e.add(v.pos, "buyer %q must be auto or agent%s", ng.Buyer, suggest(ng.Buyer, buyers))
		case ng.Buyer == BuyerAgent && ng.Protocol != ProtocolAlternating:
			d.e.add(v.pos, "buyer agent needs protocol alternating-offers; an auction has no rounds to play")
		}
	}
	v := f["round_timeout"]
	if v == nil {
		if ng.Buyer == BuyerAgent {
			ng.RoundTimeout = DefaultRoundTimeout
		}
		return
	}
	t, ok := d.duration(v, "round_timeout")
	switch {
	case !ok:
	case ng.Buyer != BuyerAgent:
		d.e.add(v.pos, "round_timeout applies to buyer agent; an automatic buyer answers at once")
	case t < MinRoundTimeout || t > MaxRoundTimeout:
		d.e.add(v.pos, "round_timeout %s must be between %s and %s", formatDuration(t), formatDuration(MinRoundTimeout), formatDuration(MaxRoundTimeout))
	default:
		ng.RoundTimeout = t
	}
}

var ops = []string{"<", "<=", ">", ">=", "==", "!="}

func (d *decoder) decodeVerification(vf *Verification, n *node) {
	f := d.fields(n, "verification", "verification", verifKeys)
	if v := f["spot_check"]; v != nil {
		if x, ok := d.number(v, "spot_check"); ok {
			if !(x >= 0 && x <= 1) { // also refuses NaN
				d.e.add(v.pos, "spot_check must be a probability in [0, 1], not %v", x)
			} else {
				vf.SpotCheck = x
			}
		}
	}
	for i, it := range d.list(f["tests"], "tests") {
		tp := fmt.Sprintf("verification.tests[%d]", i)
		d.at(tp, it)
		tf := d.fields(it, tp, "a test", testKeys)
		t := Test{
			Name:    d.str(tf["name"], "name"),
			Task:    d.str(tf["task"], "task"),
			Image:   d.str(tf["image"], "image"),
			Command: d.strings(tf["command"], tp+".command", "command"),
		}
		if t.Name == "" {
			d.e.add(it.pos, "test needs a name")
		}
		if t.Task == "" {
			d.e.add(it.pos, "test %q needs the task whose outputs it checks", t.Name)
		}
		if v := tf["image"]; v != nil && !validImage(t.Image) {
			d.e.add(v.pos, "image %q must be an OCI reference pinned by digest (name@sha256:<64 hex>), artifact:sha256:<64 hex> or oci-archive:PATH", t.Image)
		} else if ap, ok := strings.CutPrefix(t.Image, "oci-archive:"); ok {
			t.Image = "oci-archive:" + d.rebase(ap, v)
		}
		if v := tf["expect_exit"]; v != nil {
			x, _ := d.integer(v, "expect_exit", 0, 255)
			t.ExpectExit = int(x)
		}
		if v := tf["expect_outputs"]; v != nil {
			m := d.stringMap(v, tp+".expect_outputs", "expect_outputs", nil, "")
			for j, k := range v.keys {
				if _, ok := m[k.value]; ok {
					m[k.value] = d.digest(v.vals[j], "expect_outputs digest")
				}
			}
			t.ExpectOutputs = m
		}
		for j, mt := range d.list(tf["metrics"], "metrics") {
			mp := fmt.Sprintf("%s.metrics[%d]", tp, j)
			d.at(mp, mt)
			mf := d.fields(mt, mp, "a metric threshold", metricKeys)
			th := Threshold{File: d.str(mf["file"], "file"), Metric: d.str(mf["metric"], "metric"), Op: d.str(mf["op"], "op")}
			if th.File == "" || th.Metric == "" || mf["op"] == nil || mf["value"] == nil {
				d.e.add(mt.pos, "metric threshold needs file, metric, op and value")
			}
			if v := mf["op"]; v != nil && !contains(ops, th.Op) {
				d.e.add(v.pos, "op %q must be one of %s", th.Op, strings.Join(ops, " "))
			}
			if v := mf["value"]; v != nil {
				th.Value, _ = d.number(v, "value")
			}
			t.Metrics = append(t.Metrics, th)
		}
		if len(t.Command) == 0 && len(t.ExpectOutputs) == 0 && len(t.Metrics) == 0 {
			d.e.add(it.pos, "test %q checks nothing: give a command, expect_outputs or metrics", t.Name)
		}
		vf.Tests = append(vf.Tests, t)
	}
}

func (d *decoder) decodeSettlement(st *Settlement, n *node) {
	f := d.fields(n, "settlement", "settlement", settleKeys)
	st.PayOnSuccess = true
	if v := f["pay_on_success"]; v != nil {
		if b, ok := d.boolean(v, "pay_on_success"); ok {
			st.PayOnSuccess = b
		}
	}
	sf := d.fields(f["sla"], "settlement.sla", "sla", slaKeys)
	if v := sf["deadline"]; v != nil {
		st.SLA.Deadline, _ = d.duration(v, "sla.deadline")
	}
	if v := sf["max_duration"]; v != nil {
		st.SLA.MaxDuration, _ = d.duration(v, "sla.max_duration")
	}
	if v := sf["refund_percent"]; v != nil {
		x, _ := d.integer(v, "refund_percent", 0, 100)
		st.SLA.RefundPercent = int(x)
	}
	if v := sf["slash_percent"]; v != nil {
		x, _ := d.integer(v, "slash_percent", 0, 100)
		st.SLA.SlashPercent = int(x)
	}
	st.SLA.Stake = d.money(sf["stake"], "sla.stake")
	total := 0
	seen := map[string]Pos{}
	for i, it := range d.list(f["royalties"], "royalties") {
		rp := fmt.Sprintf("settlement.royalties[%d]", i)
		d.at(rp, it)
		rf := d.fields(it, rp, "a royalty", royaltyKeys)
		r := Royalty{Account: d.str(rf["account"], "account")}
		owner := strings.TrimPrefix(r.Account, "owner:") // the ledger's owner account
		switch {
		case r.Account == "":
			d.e.add(it.pos, "royalty needs an account")
		case !validAccount(owner):
			d.e.add(rf["account"].pos, "royalty account %q must be 1 to 200 bytes with no spaces or control characters", r.Account)
		default:
			if p, dup := seen[owner]; dup {
				d.e.add(rf["account"].pos, "duplicate royalty account %q (first at %s)", r.Account, p)
			} else {
				seen[owner] = rf["account"].pos
			}
		}
		if v := rf["basis_points"]; v != nil {
			x, _ := d.integer(v, "basis_points", 1, 10000)
			r.BasisPoints = int(x)
		} else {
			d.e.add(it.pos, "royalty needs basis_points (1/100 of a percent, 1 to 10000)")
		}
		total += r.BasisPoints
		st.Royalties = append(st.Royalties, r)
	}
	if total > 10000 {
		d.e.add(f["royalties"].pos, "royalties add up to %d basis points, more than 10000 (100%%)", total)
	}
}

// validAccount is the ledger's rule for an account name: printable, no
// spaces, 1 to 200 bytes.
func validAccount(name string) bool {
	if name == "" || len(name) > 200 {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

func (d *decoder) decodeApproval(a *Approval, n *node) {
	f := d.fields(n, "approval", "approval", approvalKeys)
	if v := f["required"]; v != nil {
		a.Required, _ = d.boolean(v, "required")
	}
	a.AbovePrice = d.money(f["above_price"], "above_price")
	a.Approvers = d.strings(f["approvers"], "approval.approvers", "approvers")
	if (a.Required || a.AbovePrice > 0) && len(a.Approvers) == 0 && n != nil {
		d.e.add(n.pos, "approval is required but no approvers are named")
	}
}
