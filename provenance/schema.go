package provenance

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// StagePredicates maps each stage to a zero value of its predicate type;
// the JSON schemas under provenance/schemas are generated from these.
var StagePredicates = map[string]any{
	StageSpec:         SpecPredicate{},
	StageAdmission:    AdmissionPredicate{},
	StageNegotiation:  NegotiationPredicate{},
	StagePlacement:    PlacementPredicate{},
	StageExecution:    ExecutionPredicate{},
	StageVerification: VerificationPredicate{},
	StageSettlement:   SettlementPredicate{},
}

var stageDescriptions = map[string]string{
	StageSpec:         "The job's spec: document, plan and contract digests. Subjects: the job and the spec document digest.",
	StageAdmission:    "The admission policy decision.",
	StageNegotiation:  "The auction result: winning provider, price and currency; record holds offers, bids, winners and payments.",
	StagePlacement:    "Where the job runs (provider, pool, node, GPU IDs, reservation) and the escrow hold.",
	StageExecution:    "What ran, per task (image digest, command, env digest, resources, start, end, exit code, usage, outputs). Subjects: the job and every output digest, named <task>:<path>.",
	StageVerification: "Acceptance tests and their results. Subjects: the job and the output digests the tests ran against (must equal the execution subjects).",
	StageSettlement:   "What was paid and refunded; usage and rates let an auditor recompute the metered charge; record is the ledger's settlement with its postings.",
}

// PredicateSchema returns the JSON schema (draft 2020-12) of a stage's
// predicate, generated from its Go type.
func PredicateSchema(stage string) ([]byte, error) {
	if stage == "spec-bundle" {
		s := schemaOf(reflect.TypeOf(SpecBundlePredicate{}))
		s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
		s["$id"] = SpecBundlePredicateType
		s["title"] = "Accord spec signature predicate v1"
		s["description"] = "A spec author's signature over a whole composed spec for one tenant, until not_after: the root document and every file it extends or imports, by digest, paths relative to the root document's directory (subjects: the same files)."
		return json.MarshalIndent(s, "", "  ")
	}
	if stage == StageDeployment {
		s := schemaOf(reflect.TypeOf(DeploymentPredicate{}))
		s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
		s["$id"] = PredicateType(DeploymentStage(1))
		s["title"] = "Accord deployment event predicate v1"
		s["description"] = "One event of a deployment (start, hold, settle, window, canary, gate, promote, rollback, stop) with its figures: held and settled amounts with the metered replica time and rate, SLA window measurements and verdict, canary gate measurements and verdict. Stage is deployment.<seq, six digits>; previous is sha256 of the envelope of seq-1 (absent for seq 1); spec_digest is the current release's spec."
		return json.MarshalIndent(s, "", "  ")
	}
	v, ok := StagePredicates[stage]
	if !ok {
		return nil, ErrBadStatement
	}
	s := schemaOf(reflect.TypeOf(v))
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = PredicateType(stage)
	s["title"] = "Accord " + stage + " predicate v1"
	s["description"] = stageDescriptions[stage] + " Every predicate carries job_id, stage, previous (sha256 of the previous stage's DSSE envelope; absent for spec) and spec_digest."
	return json.MarshalIndent(s, "", "  ")
}

var (
	rawType  = reflect.TypeOf(json.RawMessage(nil))
	timeType = reflect.TypeOf(time.Time{})
)

func schemaOf(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == rawType:
		return map[string]any{"description": "free-form JSON"}
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64, reflect.Float32:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		structFields(t, props, &required)
		s := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	return map[string]any{}
}

func structFields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			structFields(f.Type, props, required)
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := schemaOf(f.Type)
		if strings.HasSuffix(name, "digest") || name == "previous" {
			s["pattern"] = "^sha256:[0-9a-f]{64}$"
		}
		props[name] = s
		if !strings.Contains(opts, "omitempty") {
			*required = append(*required, name)
		}
	}
}
