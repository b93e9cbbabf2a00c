package specs

import (
	"fmt"
	"path"
	"strings"

	"github.com/accordmesh/accord/models/modelref"
)

// Bounds on a task's model entries.
const (
	MaxModelsPerTask  = 16
	MaxPublishPerTask = 8
	maxModelTags      = 64
	maxModelText      = 4096
)

var (
	modelKeys   = []string{"name", "version", "as"}
	publishKeys = []string{"output", "name", "version", "change", "relation", "license", "description", "tags", "prices", "royalty_basis_points"}
	priceKeys   = []string{"currency", "per_inference", "per_fine_tune", "per_deployment"}
	relations   = []string{"finetune", "adapter", "merge", "quantized", "distilled"}
	changes     = []string{"patch", "behaviour", "data"}
)

// decodeModels reads a task's models: entries.
func (d *decoder) decodeModels(t *Task, n *node, p string) {
	items := d.list(n, "models")
	if len(items) > MaxModelsPerTask {
		d.e.add(n.pos, "task %q uses %d models, at most %d", t.Name, len(items), MaxModelsPerTask)
		return
	}
	for i, it := range items {
		mp := fmt.Sprintf("%s.models[%d]", p, i)
		d.at(mp, it)
		f := d.fields(it, mp, "a model", modelKeys)
		m := ModelUse{Name: d.str(f["name"], "name"), Version: d.str(f["version"], "version"), As: d.str(f["as"], "as")}
		if f["name"] == nil {
			d.e.add(it.pos, "model needs a name (a registry model such as acme/legal-es-classifier)")
		} else if err := modelref.CheckName(m.Name); err != nil {
			d.e.add(f["name"].pos, "model name: %v", err)
		}
		if f["version"] == nil {
			d.e.add(it.pos, "model %q needs a version: 1.2.3, ^1.2 or ~1.2.3", m.Name)
		} else if _, err := modelref.ParseConstraint(m.Version); err != nil {
			d.e.add(f["version"].pos, "%v", err)
		}
		if f["as"] == nil {
			d.e.add(it.pos, "model %q needs as: the absolute path it is mounted at", m.Name)
		} else if !absPath(m.As) {
			d.e.add(f["as"].pos, "as %q must be a clean absolute path inside the container", m.As)
		}
		t.Models = append(t.Models, m)
	}
}

// decodePublish reads a task's publish: entries.
func (d *decoder) decodePublish(t *Task, n *node, p string) {
	items := d.list(n, "publish")
	if len(items) > MaxPublishPerTask {
		d.e.add(n.pos, "task %q publishes %d models, at most %d", t.Name, len(items), MaxPublishPerTask)
		return
	}
	for i, it := range items {
		pp := fmt.Sprintf("%s.publish[%d]", p, i)
		d.at(pp, it)
		f := d.fields(it, pp, "a publish entry", publishKeys)
		pub := Publish{
			Output: strings.TrimSuffix(d.str(f["output"], "output"), "/"), Name: d.str(f["name"], "name"),
			Version: d.str(f["version"], "version"), Change: "behaviour", Relation: "finetune",
			License: d.str(f["license"], "license"), Description: d.str(f["description"], "description"),
		}
		d.required(it, f, "publish entry", "output", "name", "version", "license")
		if v := f["output"]; v != nil && !validRelPath(pub.Output) {
			d.e.add(v.pos, "output %q must be a clean relative path inside the output directory (a file, or a directory such as model/)", pub.Output)
		}
		if v := f["name"]; v != nil {
			if err := modelref.CheckName(pub.Name); err != nil {
				d.e.add(v.pos, "model name: %v", err)
			}
		}
		if v := f["version"]; v != nil {
			if _, err := modelref.ParseVersion(pub.Version); err != nil {
				d.e.add(v.pos, "%v", err)
			}
		}
		pub.Change = d.oneOf(f["change"], "change", changes, pub.Change)
		pub.Relation = d.oneOf(f["relation"], "relation", relations, pub.Relation)
		if v := f["description"]; v != nil && len(pub.Description) > maxModelText {
			d.e.add(v.pos, "description is longer than %d bytes", maxModelText)
		}
		if v := f["license"]; v != nil && (len(pub.License) > 256 || strings.ContainsAny(pub.License, "\x00\n")) {
			d.e.add(v.pos, "license must be an SPDX expression of at most 256 bytes")
		}
		pub.Tags = d.strings(f["tags"], pp+".tags", "tags")
		if v := f["tags"]; v != nil && len(pub.Tags) > maxModelTags {
			d.e.add(v.pos, "at most %d tags", maxModelTags)
		}
		d.decodePrices(&pub.Prices, f["prices"], pp+".prices")
		if v := f["royalty_basis_points"]; v != nil {
			x, _ := d.integer(v, "royalty_basis_points", 0, 10000)
			pub.RoyaltyBP = int(x)
		}
		t.Publish = append(t.Publish, pub)
	}
}

func (d *decoder) decodePrices(pr *ModelPrices, n *node, p string) {
	f := d.fields(n, p, "prices", priceKeys)
	if v := f["currency"]; v != nil {
		pr.Currency = d.str(v, "currency")
		if !currencyRE.MatchString(pr.Currency) {
			d.e.add(v.pos, "currency %q must be an upper-case code such as USD or EUR", pr.Currency)
		}
	}
	pr.PerInference = d.money(f["per_inference"], "per_inference")
	pr.PerFineTune = d.money(f["per_fine_tune"], "per_fine_tune")
	pr.PerDeployment = d.money(f["per_deployment"], "per_deployment")
	if pr.Currency == "" && (pr.PerInference > 0 || pr.PerFineTune > 0 || pr.PerDeployment > 0) {
		d.e.add(n.pos, "prices need a currency")
	}
}

// required reports each of keys missing from f.
func (d *decoder) required(it *node, f map[string]*node, what string, keys ...string) {
	for _, k := range keys {
		if f[k] == nil {
			d.e.add(it.pos, "%s needs %s", what, k)
		}
	}
}

// oneOf reads an optional string that must be one of allowed.
func (d *decoder) oneOf(n *node, field string, allowed []string, def string) string {
	if n == nil {
		return def
	}
	s := d.str(n, field)
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	d.e.add(n.pos, "%s %q must be one of %s", field, s, strings.Join(allowed, ", "))
	return def
}

// absPath reports a clean absolute path other than "/".
func absPath(p string) bool {
	return strings.HasPrefix(p, "/") && p != "/" && path.Clean(p) == p && !strings.ContainsAny(p, "\x00\n")
}
