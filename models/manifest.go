package models

import (
	"fmt"
	"math"
	"regexp"

	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/models/modelref"
)

// SchemaVersion identifies this manifest format.
const SchemaVersion = "accord.model/v1"

// Bounds on a manifest. Each list and string is bounded so that a hostile
// manifest costs little to reject.
const (
	MaxNameLen        = modelref.MaxNameLen
	MaxDescriptionLen = 4096
	MaxParents        = 16
	MaxDatasets       = 256
	MaxTags           = 64
	MaxBenchmarks     = 256
	MaxFiles          = 10000
	MaxPathLen        = 1024
	MaxIDLen          = 128
	// MaxFileSize is the largest file a manifest may list (1 TiB).
	MaxFileSize = 1 << 40
	// MaxPrice bounds each price in minor units, far below int64's range
	// so that sums over many uses cannot overflow.
	MaxPrice = 1 << 40
	// MaxRoyaltyBP is 100 % in basis points: parents' royalties together
	// may take at most the whole usage price.
	MaxRoyaltyBP = 10000
)

// ChangeClass is the kind of change a version declares over the previous
// one. The classes are ordered: patch < behaviour < data.
type ChangeClass string

// Change classes.
const (
	// ChangePatch: same behaviour (metadata, documentation).
	ChangePatch ChangeClass = "patch"
	// ChangeBehaviour: outputs may change (new weights, config or code, a
	// different parent).
	ChangeBehaviour ChangeClass = "behaviour"
	// ChangeData: the training data changed; users must revalidate.
	ChangeData ChangeClass = "data"
)

// rank orders change classes; 0 is unknown.
func (c ChangeClass) rank() int {
	switch c {
	case ChangePatch:
		return 1
	case ChangeBehaviour:
		return 2
	case ChangeData:
		return 3
	}
	return 0
}

// Relation is how a model derives from a parent, in Hugging Face's
// base_model_relation vocabulary.
type Relation string

// Relations.
const (
	RelationFinetune  Relation = "finetune"
	RelationAdapter   Relation = "adapter"
	RelationMerge     Relation = "merge"
	RelationQuantized Relation = "quantized"
	RelationDistilled Relation = "distilled"
)

// Manifest is Accord's description of one model version.
type Manifest struct {
	SchemaVersion string `json:"schemaVersion"`
	Name          string `json:"name"`
	Version       string `json:"version"`
	// Owner is the tenant that publishes the model and is paid its usage
	// prices and the royalties its descendants owe it.
	Owner       string      `json:"owner"`
	Change      ChangeClass `json:"change"`
	Description string      `json:"description,omitempty"`
	Lineage     Lineage     `json:"lineage"`
	Tags        []Tag       `json:"tags,omitempty"`
	Benchmarks  []Benchmark `json:"benchmarks,omitempty"`
	// License is an SPDX licence expression (Apache-2.0, MIT OR
	// Apache-2.0, LicenseRef-acme-model).
	License   string    `json:"license"`
	Economics Economics `json:"economics"`
	Files     []File    `json:"files"`
}

// Lineage is where a model came from.
type Lineage struct {
	Parents []Parent `json:"parents,omitempty"`
	// Datasets are the sha256 digests of the training data sets.
	Datasets []string `json:"datasets,omitempty"`
	// Receipt is the Accord training job's receipt, when Accord trained it.
	Receipt *Receipt `json:"receipt,omitempty"`
}

// Parent is a direct ancestor.
type Parent struct {
	// Ref is the parent's name@MAJOR.MINOR.PATCH.
	Ref string `json:"ref"`
	// Digest is the sha256 digest of the parent's artifact, pinning Ref.
	Digest   string   `json:"digest"`
	Relation Relation `json:"relation"`
}

// Receipt identifies the Accord job that trained the model.
type Receipt struct {
	JobID      string `json:"job_id"`
	SpecDigest string `json:"spec_digest"`
	// LogIndex is the receipt's transparency-log index.
	LogIndex int64 `json:"log_index"`
}

// Tag is a semantic tag "key:value" from the vocabulary in TagKeys.
type Tag struct {
	Tag string `json:"tag"`
	// AuthorConfidence is the author's confidence, 0..1.
	AuthorConfidence float64 `json:"author_confidence"`
	// AccordConfidence is Accord's own confidence, 0..1, once it has
	// checked the tag; absent until then.
	AccordConfidence *float64 `json:"accord_confidence,omitempty"`
}

// Benchmark is one measured result.
type Benchmark struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	// Dataset is the sha256 digest of the evaluation data set.
	Dataset    string `json:"dataset"`
	MeasuredBy string `json:"measured_by"`
	// Verified results carry the digest of the verification attestation.
	Verified    bool   `json:"verified"`
	Attestation string `json:"attestation,omitempty"`
}

// Economics is the model's usage pricing and the royalties it owes.
type Economics struct {
	// Currency is an ISO 4217 code; prices are integer minor units.
	Currency      string    `json:"currency"`
	PerDeployment int64     `json:"per_deployment"`
	PerInference  int64     `json:"per_inference"`
	PerFineTune   int64     `json:"per_fine_tune"`
	Royalties     []Royalty `json:"royalties,omitempty"`
}

// Royalty is the share of each usage price owed to a parent's owner.
type Royalty struct {
	// Parent is a lineage parent's Ref.
	Parent      string `json:"parent"`
	BasisPoints int    `json:"basis_points"`
}

var (
	digestRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	idRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]*$`)
	metricRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.@-]{0,63}$`)
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
)

// Ref is the manifest's name@version.
func (m *Manifest) Ref() string { return m.Name + "@" + m.Version }

// CheckDigest checks a "sha256:<64 lowercase hex>" digest.
func CheckDigest(d string) error {
	if !digestRE.MatchString(d) {
		return fmt.Errorf("%q is not sha256:<64 lowercase hex>", clip(d))
	}
	return nil
}

// Validate checks every field of the manifest. The error is a *FieldError
// naming the first bad field, and wraps ErrInvalid.
func (m *Manifest) Validate() error {
	if m == nil {
		return fieldErr("manifest", "missing")
	}
	if m.SchemaVersion != SchemaVersion {
		return fieldErr("schemaVersion", "%q is not %q", clip(m.SchemaVersion), SchemaVersion)
	}
	if err := CheckName(m.Name); err != nil {
		return fieldErr("name", "%v", err)
	}
	if _, err := ParseVersion(m.Version); err != nil {
		return fieldErr("version", "%v", err)
	}
	if err := names.Tenant(m.Owner); err != nil {
		return fieldErr("owner", "%q is not a tenant name: lower-case letters, digits, . _ or - (at most 63, starting with a letter or digit)", clip(m.Owner))
	}
	if m.Change.rank() == 0 {
		return fieldErr("change", "%q is not patch, behaviour or data", clip(string(m.Change)))
	}
	if len(m.Description) > MaxDescriptionLen {
		return fieldErr("description", "longer than %d bytes", MaxDescriptionLen)
	}
	if err := CheckLicense(m.License); err != nil {
		return fieldErr("license", "%v", err)
	}
	for _, check := range []func() error{m.validateLineage, m.validateTags, m.validateBenchmarks, m.validateEconomics, m.validateFiles} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) validateLineage() error {
	l := m.Lineage
	if len(l.Parents) > MaxParents {
		return fieldErr("lineage.parents", "%d parents, at most %d", len(l.Parents), MaxParents)
	}
	seen := map[string]bool{}
	for i, p := range l.Parents {
		f := fmt.Sprintf("lineage.parents[%d]", i)
		name, _, err := ParseRef(p.Ref)
		if err != nil {
			return fieldErr(f+".ref", "%v", err)
		}
		if name == m.Name {
			return fieldErr(f+".ref", "a model cannot be its own parent")
		}
		if seen[p.Ref] {
			return fieldErr(f+".ref", "%s listed twice", p.Ref)
		}
		seen[p.Ref] = true
		if err := CheckDigest(p.Digest); err != nil {
			return fieldErr(f+".digest", "%v", err)
		}
		switch p.Relation {
		case RelationFinetune, RelationAdapter, RelationMerge, RelationQuantized, RelationDistilled:
		default:
			return fieldErr(f+".relation", "%q is not finetune, adapter, merge, quantized or distilled", clip(string(p.Relation)))
		}
	}
	if err := checkDigestList("lineage.datasets", l.Datasets, MaxDatasets); err != nil {
		return err
	}
	if r := l.Receipt; r != nil {
		if len(r.JobID) > MaxIDLen || !idRE.MatchString(r.JobID) {
			return fieldErr("lineage.receipt.job_id", "%q is not an ID of 1-%d letters, digits and ._:/-", clip(r.JobID), MaxIDLen)
		}
		if err := CheckDigest(r.SpecDigest); err != nil {
			return fieldErr("lineage.receipt.spec_digest", "%v", err)
		}
		if r.LogIndex < 0 {
			return fieldErr("lineage.receipt.log_index", "%d is negative", r.LogIndex)
		}
	}
	return nil
}

func checkDigestList(field string, ds []string, max int) error {
	if len(ds) > max {
		return fieldErr(field, "%d entries, at most %d", len(ds), max)
	}
	seen := map[string]bool{}
	for i, d := range ds {
		if err := CheckDigest(d); err != nil {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		if seen[d] {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "%s listed twice", d)
		}
		seen[d] = true
	}
	return nil
}

func (m *Manifest) validateTags() error {
	if len(m.Tags) > MaxTags {
		return fieldErr("tags", "%d tags, at most %d", len(m.Tags), MaxTags)
	}
	seen := map[string]bool{}
	for i, t := range m.Tags {
		f := fmt.Sprintf("tags[%d]", i)
		if _, _, err := ParseTag(t.Tag); err != nil {
			return fieldErr(f+".tag", "%v", err)
		}
		if seen[t.Tag] {
			return fieldErr(f+".tag", "%s listed twice", t.Tag)
		}
		seen[t.Tag] = true
		if !unit(t.AuthorConfidence) {
			return fieldErr(f+".author_confidence", "%v is not in 0..1", t.AuthorConfidence)
		}
		if t.AccordConfidence != nil && !unit(*t.AccordConfidence) {
			return fieldErr(f+".accord_confidence", "%v is not in 0..1", *t.AccordConfidence)
		}
	}
	return nil
}

// unit reports whether x is a number in [0, 1] (NaN is not).
func unit(x float64) bool { return x >= 0 && x <= 1 }

func (m *Manifest) validateBenchmarks() error {
	if len(m.Benchmarks) > MaxBenchmarks {
		return fieldErr("benchmarks", "%d benchmarks, at most %d", len(m.Benchmarks), MaxBenchmarks)
	}
	for i, b := range m.Benchmarks {
		f := fmt.Sprintf("benchmarks[%d]", i)
		if !metricRE.MatchString(b.Metric) {
			return fieldErr(f+".metric", "%q is not 1-64 lowercase letters, digits and _.@-", clip(b.Metric))
		}
		if math.IsNaN(b.Value) || math.IsInf(b.Value, 0) {
			return fieldErr(f+".value", "%v is not a finite number", b.Value)
		}
		if err := CheckDigest(b.Dataset); err != nil {
			return fieldErr(f+".dataset", "%v", err)
		}
		if len(b.MeasuredBy) > MaxIDLen || !idRE.MatchString(b.MeasuredBy) {
			return fieldErr(f+".measured_by", "%q is not an ID of 1-%d letters, digits and ._:/-", clip(b.MeasuredBy), MaxIDLen)
		}
		switch {
		case b.Verified:
			if err := CheckDigest(b.Attestation); err != nil {
				return fieldErr(f+".attestation", "a verified benchmark needs its attestation digest: %v", err)
			}
		case b.Attestation != "":
			return fieldErr(f+".attestation", "set on an unverified benchmark")
		}
	}
	return nil
}

func (m *Manifest) validateEconomics() error {
	e := m.Economics
	if !currencyRE.MatchString(e.Currency) {
		return fieldErr("economics.currency", "%q is not an ISO 4217 code like EUR", clip(e.Currency))
	}
	for _, p := range []struct {
		field string
		v     int64
	}{{"per_deployment", e.PerDeployment}, {"per_inference", e.PerInference}, {"per_fine_tune", e.PerFineTune}} {
		if p.v < 0 || p.v > MaxPrice {
			return fieldErr("economics."+p.field, "%d is not in 0..%d minor units", p.v, int64(MaxPrice))
		}
	}
	parents := map[string]bool{}
	for _, p := range m.Lineage.Parents {
		parents[p.Ref] = true
	}
	seen := map[string]bool{}
	total := 0
	for i, r := range e.Royalties {
		f := fmt.Sprintf("economics.royalties[%d]", i)
		if i >= MaxParents {
			return fieldErr("economics.royalties", "more than %d royalties", MaxParents)
		}
		if !parents[r.Parent] {
			return fieldErr(f+".parent", "%q is not a lineage parent", clip(r.Parent))
		}
		if seen[r.Parent] {
			return fieldErr(f+".parent", "%s listed twice", r.Parent)
		}
		seen[r.Parent] = true
		if r.BasisPoints < 1 || r.BasisPoints > MaxRoyaltyBP {
			return fieldErr(f+".basis_points", "%d is not in 1..%d", r.BasisPoints, MaxRoyaltyBP)
		}
		total += r.BasisPoints
	}
	if total > MaxRoyaltyBP {
		return fieldErr("economics.royalties", "total %d bp is over %d bp (100 %%)", total, MaxRoyaltyBP)
	}
	return nil
}
