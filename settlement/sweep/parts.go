package sweep

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/settlement/sla"
)

// A split job (job layout 10, placement.split) has its tasks run by
// several providers, one part each. The operator signs the placement and
// execution statements, which list the parts; each part's provider signs
// its own execution statement over its tasks. A sweep pays each part to
// the provider that ran it, on what that provider signed.

// Bounds on a job's attested parts and failovers: far above any real job,
// low enough that a hostile statement cannot make a sweep do unbounded
// work.
const (
	maxParts        = 256
	maxPartTasks    = 4096
	maxPartEnvelope = 8 << 20 // bytes of one part's DSSE envelope
	maxFailovers    = 64
)

// PartWork is one part of a split job: the provider that ran its tasks (the
// negotiation's, or after failovers the last replacement's) and what its
// own signed execution statement says about them.
type PartWork struct {
	Provider string
	// Price is the negotiated part price, or after a failover the
	// replacement's (Failover.Price).
	Price int64
	Tasks []string
	// SLA is the terms of the negotiation record's award to Provider
	// (nil: none recorded; a replacement's renegotiated terms are not
	// attested).
	SLA *sla.Terms
	// Usage is the sum of the part's tasks' metered usage, Started and
	// Finished the earliest start and latest end among them; zero until
	// the execution stage is attested.
	Usage             runtimes.Usage
	Started, Finished time.Time
}

// notEvidence marks a verified statement whose content cannot be settled
// on: the stage is ignored and listed in Work.Rejected.
type notEvidence struct{ error }

// negotiatedParts checks a split negotiation's parts: providers distinct
// and valid, the first one the negotiation's provider, tasks non-empty and
// disjoint, prices adding up to the negotiation's.
func negotiatedParts(p predicate.Negotiation) error {
	if len(p.Parts) > maxParts {
		return fmt.Errorf("%d parts, at most %d", len(p.Parts), maxParts)
	}
	if p.Parts[0].Provider != p.Provider {
		return fmt.Errorf("provider %q is not the first part's (%q)", p.Provider, p.Parts[0].Provider)
	}
	providers, tasks := map[string]bool{}, map[string]bool{}
	var sum int64
	for i, pt := range p.Parts {
		if err := names.Provider(pt.Provider); err != nil {
			return fmt.Errorf("part %d: %w", i+1, err)
		}
		if providers[pt.Provider] {
			return fmt.Errorf("part %d: provider %s has two parts", i+1, pt.Provider)
		}
		providers[pt.Provider] = true
		if err := checkTasks(pt.Tasks, tasks); err != nil {
			return fmt.Errorf("part %d (%s): %w", i+1, pt.Provider, err)
		}
		if pt.Price < 0 || sum+pt.Price < sum {
			return fmt.Errorf("part %d (%s): price %d out of range", i+1, pt.Provider, pt.Price)
		}
		sum += pt.Price
	}
	if sum != p.Price {
		return fmt.Errorf("parts' prices add up to %d, the negotiation's price is %d", sum, p.Price)
	}
	return nil
}

// checkTasks checks one part's task list: non-empty, bounded, each task
// named once and in no earlier part (seen, which it extends).
func checkTasks(tasks []string, seen map[string]bool) error {
	if len(tasks) == 0 || len(tasks) > maxPartTasks {
		return fmt.Errorf("%d tasks, want 1 to %d", len(tasks), maxPartTasks)
	}
	for _, t := range tasks {
		if t == "" || seen[t] {
			return fmt.Errorf("task %q empty or in two parts", t)
		}
		seen[t] = true
	}
	return nil
}

// failedOver follows the execution's failovers from the negotiated parts
// as the audit does (provenance.ExecutingParts: a failover with Tasks
// moves the one part with those tasks, one without every part of the Lost
// provider; a moved part takes the replacement's price) and returns the
// parts as they finally ran, each with the SLA its provider's award in the
// negotiation record or its failover carries.
func failedOver(w *Work, fs []predicate.Failover) ([]PartWork, error) {
	if err := checkFailovers(fs, w.Currency); err != nil {
		return nil, err
	}
	final, broken := provenance.ExecutingParts(w.negotiated, fs)
	if broken != "" {
		return nil, errors.New(broken)
	}
	return partsWork(final, w.record, fs), nil
}

// checkFailovers bounds a job's failovers and checks each names a valid
// replacement priced in the job's currency.
func checkFailovers(fs []predicate.Failover, currency string) error {
	if len(fs) > maxFailovers {
		return fmt.Errorf("%d failovers, at most %d", len(fs), maxFailovers)
	}
	for i, f := range fs {
		if err := names.Provider(f.Provider); err != nil {
			return fmt.Errorf("failover %d: %w", i+1, err)
		}
		if f.Currency != "" && f.Currency != currency {
			return fmt.Errorf("failover %d to %s is priced in %s, the job in %s", i+1, f.Provider, f.Currency, currency)
		}
	}
	return nil
}

// partsWork are parts with their providers' agreed terms: those a
// failover to the part's provider records (job layout 11), else those of
// its award in the negotiation record.
func partsWork(parts []predicate.Part, record json.RawMessage, fs []predicate.Failover) []PartWork {
	out := make([]PartWork, 0, len(parts))
	for _, p := range parts {
		terms := awardSLA(record, p.Provider)
		for _, f := range fs {
			if f.Provider == p.Provider && f.SLA != nil {
				t := *f.SLA
				terms = &t
			}
		}
		out = append(out, PartWork{Provider: p.Provider, Price: p.Price, Tasks: slices.Clone(p.Tasks), SLA: terms})
	}
	return out
}

// sameTasks reports whether a and b name the same tasks.
func sameTasks(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// executedParts checks a split job's (operator-verified) execution
// statement: after its failovers, each part must have exactly one signed
// part, by its final provider, verifying with that provider's key and
// naming the job, the execution stage, the outer statement's previous
// stage and the part's tasks. It returns the parts with the usage and
// times of their own signed task runs.
func executedParts(ctx context.Context, ts *provenance.TrustStore, jobID string, st *provenance.Statement, w *Work) ([]PartWork, error) {
	var ex predicate.Execution
	if err := st.DecodePredicate(&ex); err != nil {
		return nil, err
	}
	h, err := st.Header()
	if err != nil {
		return nil, err
	}
	parts, err := failedOver(w, ex.Failovers)
	if err != nil {
		return nil, err
	}
	if len(ex.Parts) != len(parts) {
		return nil, fmt.Errorf("%d signed parts, the job has %d", len(ex.Parts), len(parts))
	}
	done := make([]bool, len(parts))
	for _, sp := range ex.Parts {
		i := slices.IndexFunc(parts, func(p PartWork) bool { return sameTasks(p.Tasks, sp.Tasks) })
		switch {
		case i < 0:
			return nil, fmt.Errorf("signed part of %q has tasks %v, which are no part's", sp.Provider, sp.Tasks)
		case done[i]:
			return nil, fmt.Errorf("part with tasks %v signed twice", sp.Tasks)
		case sp.Provider != parts[i].Provider:
			return nil, fmt.Errorf("part with tasks %v is listed as %q's, it ran on %q", sp.Tasks, sp.Provider, parts[i].Provider)
		}
		done[i] = true
		if err := parts[i].attested(ctx, ts, jobID, h.Previous, sp.Envelope); err != nil {
			return nil, fmt.Errorf("part of %s: %w", parts[i].Provider, err)
		}
	}
	return parts, nil
}

// errPartStatement reports a part envelope whose statement is not the
// part's execution statement.
var errPartStatement = errors.New("not the part's execution statement")

// attested verifies the part's signed execution statement with the keys
// trusted for its provider (provider:<name>; no operator or legacy stage
// key: the provider vouches for its own work) and takes the part's usage
// and times from its task runs, which must be exactly the part's tasks.
func (p *PartWork) attested(ctx context.Context, ts *provenance.TrustStore, jobID, previous string, env json.RawMessage) error {
	if len(env) == 0 || len(env) > maxPartEnvelope {
		return fmt.Errorf("envelope of %d bytes, want 1 to %d", len(env), maxPartEnvelope)
	}
	st, err := provenance.CheckPart(ctx, ts, jobID, provenance.StageExecution, previous, predicate.SignedPart{Provider: p.Provider, Tasks: p.Tasks, Envelope: env})
	if err != nil {
		return err
	}
	var ex predicate.Execution
	if err := st.DecodePredicate(&ex); err != nil {
		return err
	}
	switch {
	case ex.Provider != p.Provider:
		return fmt.Errorf("%w: it names provider %q", errPartStatement, ex.Provider)
	case ex.SpotRole != "":
		return fmt.Errorf("%w: it is a spot check's (%s)", errPartStatement, ex.SpotRole)
	case !sameTasks(ex.PartTasks, p.Tasks):
		return fmt.Errorf("%w: it is for tasks %v, the part's are %v", errPartStatement, ex.PartTasks, p.Tasks)
	case len(ex.Tasks) != len(p.Tasks):
		return fmt.Errorf("%w: it has %d task runs, the part %d tasks", errPartStatement, len(ex.Tasks), len(p.Tasks))
	}
	for _, name := range p.Tasks {
		t, ok := ex.Tasks[name]
		if !ok {
			return fmt.Errorf("%w: no run of task %s", errPartStatement, name)
		}
		p.addRun(t)
	}
	return nil
}

// addRun adds a task run's usage and widens the part's start and end.
func (p *PartWork) addRun(t predicate.TaskRun) {
	p.Usage = p.Usage.Add(t.Usage)
	if t.StartedAt != nil && (p.Started.IsZero() || t.StartedAt.Before(p.Started)) {
		p.Started = t.StartedAt.UTC()
	}
	if t.FinishedAt != nil && t.FinishedAt.After(p.Finished) {
		p.Finished = t.FinishedAt.UTC()
	}
}

// operatorKeys are the keys that may sign a split job's placement and
// execution statements: the operator's, and the legacy stage scope's.
func operatorKeys(ts *provenance.TrustStore) []crypto.PublicKey {
	return append(slices.Clip(ts.KeysFor(provenance.ScopeOperator)), ts.KeysFor(provenance.ScopeStage)...)
}
