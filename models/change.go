package models

import (
	"fmt"
	"sort"
)

// RequiredChange is the smallest change class the facts allow between two
// versions of a model:
//
//   - data: the set of training data set digests differs (added, removed or
//     replaced), whatever else changed;
//   - behaviour: the same data sets, but the set of parents (ref, digest,
//     relation) differs, or a file of kind weights, config or code was
//     added, removed or changed: outputs may differ, and Accord cannot
//     prove they do not;
//   - patch: otherwise — only doc or dataset-kind files, or metadata
//     (description, tags, benchmarks, licence, economics) changed.
//
// Both manifests must already be valid.
func RequiredChange(prev, next *Manifest) (ChangeClass, string) {
	if !sameSet(prev.Lineage.Datasets, next.Lineage.Datasets) {
		return ChangeData, "the training data sets differ"
	}
	if !sameSet(parentKeys(prev), parentKeys(next)) {
		return ChangeBehaviour, "the parents differ"
	}
	if p, changed := behaviourFileChange(prev, next); changed {
		return ChangeBehaviour, fmt.Sprintf("%s changed", p)
	}
	return ChangePatch, "only documentation or metadata changed"
}

// minBump is the smallest version bump each change class needs:
// behaviour and data changes need at least a minor bump (users pinned with
// ~ keep their behaviour), a patch change any bump. A major bump is always
// allowed.
var minBump = map[ChangeClass]Bump{
	ChangePatch:     BumpPatch,
	ChangeBehaviour: BumpMinor,
	ChangeData:      BumpMinor,
}

// CheckChange checks next as the successor of prev: both valid, the same
// name, a higher version, a declared change class at least RequiredChange,
// and a version bump at least minBump of the declared class. prev nil means
// next is the first version, which only has to be valid. Errors wrap
// ErrChange (or ErrInvalid for an invalid manifest).
func CheckChange(prev, next *Manifest) error {
	if err := next.Validate(); err != nil {
		return err
	}
	if prev == nil {
		return nil
	}
	if err := prev.Validate(); err != nil {
		return fmt.Errorf("models: previous version: %w", err)
	}
	if prev.Name != next.Name {
		return fmt.Errorf("%w: name %s is not the previous version's %s", ErrChange, next.Name, prev.Name)
	}
	// The first version of a name fixes its owner: nobody else publishes
	// versions under it, and its royalties cannot be redirected.
	if prev.Owner != next.Owner {
		return fmt.Errorf("%w: %s is owned by %s; %s cannot publish a version of it", ErrChange, next.Name, prev.Owner, next.Owner)
	}
	pv, _ := ParseVersion(prev.Version)
	nv, _ := ParseVersion(next.Version)
	bump := nv.BumpFrom(pv)
	if bump == BumpNone {
		return fmt.Errorf("%w: version %s is not higher than %s", ErrChange, nv, pv)
	}
	need, why := RequiredChange(prev, next)
	if next.Change.rank() < need.rank() {
		return fmt.Errorf("%w: declared %s but %s: needs %s", ErrChange, next.Change, why, need)
	}
	if bump < minBump[next.Change] {
		return fmt.Errorf("%w: a %s change needs at least a %s bump, %s → %s is a %s bump",
			ErrChange, next.Change, minBump[next.Change], pv, nv, bump)
	}
	return nil
}

func parentKeys(m *Manifest) []string {
	ks := make([]string, len(m.Lineage.Parents))
	for i, p := range m.Lineage.Parents {
		ks[i] = p.Ref + " " + p.Digest + " " + string(p.Relation)
	}
	return ks
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = sortedCopy(a), sortedCopy(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// behaviourFileChange returns the first path (in path order) of a file of
// kind weights, config or code, before or after, that was added, removed
// or changed (digest or kind) between prev and next.
func behaviourFileChange(prev, next *Manifest) (string, bool) {
	before, after := fileIndex(prev), fileIndex(next)
	paths := make([]string, 0, len(before)+len(after))
	for p := range before {
		paths = append(paths, p)
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		f, inBefore := before[p]
		g, inAfter := after[p]
		if inBefore && inAfter && f.Digest == g.Digest && kindOrEmpty(f) == kindOrEmpty(g) {
			continue
		}
		if (inBefore && affectsBehaviour(f)) || (inAfter && affectsBehaviour(g)) {
			return p, true
		}
	}
	return "", false
}

func fileIndex(m *Manifest) map[string]File {
	idx := make(map[string]File, len(m.Files))
	for _, f := range m.Files {
		idx[f.Path] = f
	}
	return idx
}

func kindOrEmpty(f File) FileKind {
	k, _ := KindOf(f)
	return k
}

func affectsBehaviour(f File) bool {
	switch kindOrEmpty(f) {
	case KindWeights, KindConfig, KindCode:
		return true
	}
	return false
}
