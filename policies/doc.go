// Package policies decides whether a job may run and where: admission,
// placement and audit rules written in CEL, tenants with quotas, and the
// signed-spec requirement.
//
// A policy file is YAML:
//
//	policy: gpu-guardrails        # name
//	version: 3                    # bumped on every change; recorded in decisions
//	tenant: ml-platform           # omit for an organisation-wide policy
//	rules:
//	  - name: max-eight-gpus
//	    on: admission             # admission | placement | audit
//	    expr: spec.tasks.all(t, t.resources.gpu.count <= 8)
//	    message: at most 8 GPUs per task
//
// Every rule is a CEL expression that must evaluate to true for the subject
// to pass; false, a non-boolean or an evaluation error denies (fail closed).
// Each evaluation yields a Decision (policy name, version, digest of the
// policy file, rule, inputs digest, result, reason) that the admission
// attestation records verbatim.
//
// Inputs use the JSON field names of the spec (specs.Spec's tags); optional
// fields that are empty are absent, so test them with has(), e.g.
// `!has(spec.placement.tee) || has(provider.tee)`.
//
// The variables each kind of rule sees are documented on Admission,
// Placement and Audit inputs in input.go.
package policies
