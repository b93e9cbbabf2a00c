package models

import (
	"errors"
	"testing"
)

func TestCheckChange(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(next *Manifest)
		wantErr error
	}{
		{"metadata only, patch bump", func(n *Manifest) {
			n.Version, n.Change, n.Description = "1.2.1", ChangePatch, "better words"
			n.Economics.PerInference = 2
		}, nil},
		{"doc file changed is a patch", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangePatch
			n.Files[2].Digest = dg("readme2")
		}, nil},
		{"doc file added is a patch", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangePatch
			n.Files = append(n.Files, File{Path: "docs/usage.md", Digest: dg("usage"), Size: 1})
		}, nil},
		{"another owner publishing a version", func(n *Manifest) {
			n.Version, n.Change, n.Owner = "2.0.0", ChangeBehaviour, "mallory"
		}, ErrChange},
		{"weights changed declared patch", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangePatch
			n.Files[0].Digest = dg("weights2")
		}, ErrChange},
		{"weights changed declared behaviour with minor bump", func(n *Manifest) {
			n.Version, n.Change = "1.3.0", ChangeBehaviour
			n.Files[0].Digest = dg("weights2")
		}, nil},
		{"weights removed declared patch", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangePatch
			n.Files = n.Files[1:]
		}, ErrChange},
		{"code added declared patch", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangePatch
			n.Files = append(n.Files, File{Path: "src/infer.py", Digest: dg("infer"), Size: 1})
		}, ErrChange},
		{"file re-kinded from doc to code declared patch", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangePatch
			n.Files[2].Kind = KindCode
		}, ErrChange},
		{"behaviour with only a patch bump", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangeBehaviour
			n.Files[0].Digest = dg("weights2")
		}, ErrChange},
		{"new dataset declared behaviour", func(n *Manifest) {
			n.Version, n.Change = "1.3.0", ChangeBehaviour
			n.Lineage.Datasets = append(n.Lineage.Datasets, dg("more"))
		}, ErrChange},
		{"replaced dataset declared patch", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangePatch
			n.Lineage.Datasets = []string{dg("other")}
		}, ErrChange},
		{"new dataset declared data, minor bump", func(n *Manifest) {
			n.Version, n.Change = "1.3.0", ChangeData
			n.Lineage.Datasets = append(n.Lineage.Datasets, dg("more"))
		}, nil},
		{"data with a patch bump", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangeData
			n.Lineage.Datasets = nil
		}, ErrChange},
		{"dataset order is not a change", func(n *Manifest) {
			n.Lineage.Datasets = []string{dg("b"), dg("a")}
			n.Version, n.Change = "1.2.1", ChangePatch
		}, ErrChange}, // prev has {contracts}; this replaces it: data
		{"new parent digest declared patch", func(n *Manifest) {
			n.Version, n.Change = "1.2.1", ChangePatch
			n.Lineage.Parents[0].Digest = dg("base2")
		}, ErrChange},
		{"major bump allowed for data", func(n *Manifest) {
			n.Version, n.Change = "2.0.0", ChangeData
			n.Lineage.Datasets = nil
		}, nil},
		{"overclaiming is allowed", func(n *Manifest) { n.Version, n.Change = "1.3.0", ChangeData }, nil},
		{"same version", func(n *Manifest) { n.Change = ChangePatch }, ErrChange},
		{"lower version", func(n *Manifest) { n.Version, n.Change = "1.1.9", ChangePatch }, ErrChange},
		{"renamed", func(n *Manifest) { n.Name, n.Version = "acme/other", "1.3.0" }, ErrChange},
		{"invalid next", func(n *Manifest) { n.Version = "1.3" }, ErrInvalid},
	}
	for _, c := range cases {
		prev, next := validManifest(), validManifest()
		c.edit(next)
		err := CheckChange(prev, next)
		if (c.wantErr == nil) != (err == nil) || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.wantErr)
		}
	}
}

func TestCheckChangeDatasetOrder(t *testing.T) {
	prev, next := validManifest(), validManifest()
	prev.Lineage.Datasets = []string{dg("a"), dg("b")}
	next.Lineage.Datasets = []string{dg("b"), dg("a")}
	next.Version, next.Change = "1.2.1", ChangePatch
	if err := CheckChange(prev, next); err != nil {
		t.Errorf("reordered datasets: %v", err)
	}
	if got, _ := RequiredChange(prev, next); got != ChangePatch {
		t.Errorf("RequiredChange = %s, want patch", got)
	}
}

func TestCheckChangeFirstVersionAndBadPrev(t *testing.T) {
	if err := CheckChange(nil, validManifest()); err != nil {
		t.Errorf("first version: %v", err)
	}
	prev := validManifest()
	prev.Files[0].Path = "../x.bin"
	next := validManifest()
	next.Version = "1.3.0"
	if err := CheckChange(prev, next); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid previous: %v", err)
	}
}
