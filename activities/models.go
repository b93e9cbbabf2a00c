package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/exchange"
	"github.com/accordmesh/accord/models/registry"
	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// ModelExchange is the model registry as the job's activities use it: the
// control plane resolves and prices the models a plan uses, the provider
// fetches them verified, and a verified job publishes its outputs.
type ModelExchange interface {
	// Resolve pins name at the highest version matching constraint and
	// returns its name@version and OCI manifest digest. No matching
	// version is an error wrapping ErrModelRefused.
	Resolve(ctx context.Context, name, constraint string) (ref, digest string, err error)
	// Fee prices one use ("inference" or "fine_tune") of a pinned model
	// and splits the price among its owner and its ancestors' owners.
	Fee(ctx context.Context, ref, digest, use string) (specs.ModelFee, error)
	// Fetch places the pinned model on this host, verified (its
	// publisher's signatures against trusted keys, their log entries,
	// every file's digest), and returns the directory to mount read-only.
	// Idempotent.
	Fetch(ctx context.Context, ref, digest string) (string, error)
	// Publish pushes a model version. Idempotent: the same content under
	// the same version is success. A refusal (the version exists with
	// other content, the change class contradicts the facts) wraps
	// ErrModelRefused.
	Publish(ctx context.Context, req ModelPublish) (workflows.PublishedModel, error)
}

// ModelPublish is one model a verified job publishes.
type ModelPublish struct {
	JobID   string
	Task    string
	Owner   string // the job's tenant
	Dir     string // the files to publish, exactly
	Files   []specs.Output
	Spec    specs.Publish
	Parents []specs.ModelUse // the pinned models the task used
	Receipt workflows.PublishedReceipt
}

// ErrModelRefused is a model the registry does not have or will not take;
// retrying does not help.
var ErrModelRefused = errors.New("activities: model refused")

// modelUse is the use a task makes of the models it reads: a task that
// publishes a derivative fine-tunes them; otherwise it runs them.
func modelUse(t specs.Task) string {
	if len(t.Publish) > 0 {
		return "fine_tune"
	}
	return "inference"
}

// resolveModels pins every model the plan's tasks use and prices each
// use. The plan records the result: what the provider fetches and what
// settlement pays are what was resolved here.
func (a *Activities) resolveModels(ctx context.Context, plan *specs.Plan) error {
	var fees []specs.ModelFee
	for i := range plan.Tasks {
		t := &plan.Tasks[i]
		for j := range t.Models {
			m := &t.Models[j]
			if a.Models == nil {
				return permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("task %s uses model %s, but this control plane has no model registry (--registry)", t.Name, m.Name))
			}
			ref, digest, err := a.Models.Resolve(ctx, m.Name, m.Version)
			if err != nil {
				return modelErr(workflows.ErrTypeInvalidSpec, fmt.Sprintf("task %s: model %s %s", t.Name, m.Name, m.Version), err)
			}
			m.Ref, m.Digest = ref, digest
			fee, err := a.Models.Fee(ctx, ref, digest, modelUse(t.Task))
			if err != nil {
				return modelErr(workflows.ErrTypeInvalidSpec, fmt.Sprintf("task %s: price of %s", t.Name, ref), err)
			}
			if fee.Price > 0 && fee.Currency != plan.Spec.Budget.Currency {
				return permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("task %s: model %s is priced in %s, the budget in %s", t.Name, ref, fee.Currency, plan.Spec.Budget.Currency))
			}
			fee.Task = t.Name
			fees = append(fees, fee)
		}
	}
	plan.ModelFees = fees
	if total := plan.ModelFeeTotal(); total > 0 && total >= plan.Spec.Budget.MaxPrice {
		return permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("the models the tasks use cost %d, the whole budget of %d: nothing is left for compute", total, plan.Spec.Budget.MaxPrice))
	}
	return nil
}

// modelErr classifies a registry error: a refusal is final, anything else
// (the registry is down) is retried.
func modelErr(errType, what string, err error) error {
	if errors.Is(err, ErrModelRefused) {
		return permanent(errType, fmt.Errorf("%s: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// modelMounts fetches the models a task uses and mounts them read-only.
func (a *Activities) modelMounts(ctx context.Context, t specs.Task) ([]modelMount, error) {
	var out []modelMount
	for _, m := range t.Models {
		if m.Digest == "" || m.Ref == "" {
			return nil, permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("model %s was not pinned when the job was compiled", m.Name))
		}
		if a.Models == nil {
			return nil, permanent(workflows.ErrTypeExecution, fmt.Errorf("model %s: this worker has no model registry (--registry)", m.Ref))
		}
		stop := heartbeat(ctx, "fetching model "+m.Ref)
		dir, err := a.Models.Fetch(ctx, m.Ref, m.Digest)
		stop()
		if err != nil {
			return nil, modelErr(workflows.ErrTypeExecution, "model "+m.Ref, err)
		}
		out = append(out, modelMount{src: dir, target: m.As})
	}
	return out, nil
}

type modelMount struct{ src, target string }

// PublishModels pushes the outputs a verified job publishes as new model
// versions. What is pushed is exactly what execution collected and
// attested: the files under each publish output, with the digests of the
// sealed results. Idempotent through the exchange.
func (a *Activities) PublishModels(ctx context.Context, in workflows.PublishInput) (workflows.PublishOutput, error) {
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return workflows.PublishOutput{}, err
	}
	if a.Models == nil {
		return workflows.PublishOutput{}, permanent(workflows.ErrTypePublish, errors.New("publish: this worker has no model registry (--registry)"))
	}
	results, err := a.results(ctx, in.Results)
	if err != nil {
		return workflows.PublishOutput{}, err
	}
	var out workflows.PublishOutput
	for _, t := range plan.Tasks {
		for _, pub := range t.Publish {
			if err := a.localOutputs(ctx, in.JobID, t.Name, results[t.Name].Outputs); err != nil {
				return out, err
			}
			req, err := a.publishRequest(in, plan.Tenant, t.Task, pub, results[t.Name])
			if err != nil {
				return out, err
			}
			stop := heartbeat(ctx, "publishing "+pub.Name+"@"+pub.Version)
			pm, err := a.Models.Publish(ctx, req)
			stop()
			if err != nil {
				return out, modelErr(workflows.ErrTypePublish, "publish "+pub.Name+"@"+pub.Version, err)
			}
			a.logger(ctx, in.JobID).Info("published", "model", pm.Ref, "digest", pm.Digest)
			out.Models = append(out.Models, pm)
		}
	}
	return out, nil
}

// publishRequest gathers one publish entry's files from the task's sealed
// results: the output itself, or every output under it.
func (a *Activities) publishRequest(in workflows.PublishInput, tenant string, t specs.Task, pub specs.Publish, run workflows.TaskStatus) (ModelPublish, error) {
	req := ModelPublish{JobID: in.JobID, Task: t.Name, Owner: tenant, Spec: pub, Parents: t.Models, Receipt: in.Receipt}
	base := pub.Output
	for _, o := range run.Outputs {
		switch {
		case o.Path == pub.Output:
			base = path.Dir(pub.Output)
			req.Files = append(req.Files, specs.Output{Path: path.Base(o.Path), SHA256: "sha256:" + o.SHA256})
		case strings.HasPrefix(o.Path, pub.Output+"/"):
			req.Files = append(req.Files, specs.Output{Path: strings.TrimPrefix(o.Path, pub.Output+"/"), SHA256: "sha256:" + o.SHA256})
		}
	}
	if len(req.Files) == 0 {
		return req, permanent(workflows.ErrTypePublish, fmt.Errorf("publish %s@%s: task %s collected no output at %s", pub.Name, pub.Version, t.Name, pub.Output))
	}
	req.Dir = a.OutputsDir(in.JobID, t.Name)
	if base != "." {
		req.Dir = filepath.Join(req.Dir, filepath.FromSlash(base))
	}
	if _, err := os.Stat(req.Dir); err != nil {
		return req, permanent(workflows.ErrTypeExecution, fmt.Errorf("publish %s@%s: collected outputs of %s: %w", pub.Name, pub.Version, t.Name, err))
	}
	return req, nil
}

// Exchange adapts the model exchange (package models/exchange) to
// ModelExchange.
type Exchange struct{ X *exchange.Exchange }

func (e Exchange) Resolve(ctx context.Context, name, constraint string) (string, string, error) {
	ref, digest, err := e.X.Resolve(ctx, name, constraint)
	return ref, digest, refusal(err)
}

func (e Exchange) Fee(ctx context.Context, ref, digest, use string) (specs.ModelFee, error) {
	f, err := e.X.Fee(ctx, ref, digest, models.Use(use))
	if err != nil {
		return specs.ModelFee{}, refusal(err)
	}
	out := specs.ModelFee{Model: f.Model, Digest: f.Digest, Use: string(f.Use), Currency: f.Currency, Price: f.Price}
	for _, s := range f.Shares {
		out.Shares = append(out.Shares, specs.ModelShare{Owner: s.Owner, Model: s.Model, Amount: s.Amount})
	}
	return out, nil
}

func (e Exchange) Fetch(ctx context.Context, ref, digest string) (string, error) {
	dir, err := e.X.Fetch(ctx, ref, digest)
	return dir, refusal(err)
}

func (e Exchange) Publish(ctx context.Context, req ModelPublish) (workflows.PublishedModel, error) {
	o := exchange.JobOutput{
		Owner: req.Owner, Name: req.Spec.Name, Version: req.Spec.Version, Change: req.Spec.Change,
		Relation: req.Spec.Relation, License: req.Spec.License, Description: req.Spec.Description, Tags: req.Spec.Tags,
		Currency: req.Spec.Prices.Currency, PerInference: req.Spec.Prices.PerInference,
		PerFineTune: req.Spec.Prices.PerFineTune, PerDeployment: req.Spec.Prices.PerDeployment,
		RoyaltyBP: req.Spec.RoyaltyBP, Files: map[string]string{},
		Receipt: models.Receipt{JobID: req.JobID, SpecDigest: req.Receipt.SpecDigest, LogIndex: req.Receipt.LogIndex},
	}
	for _, m := range req.Parents {
		o.Parents = append(o.Parents, models.Parent{Ref: m.Ref, Digest: m.Digest})
	}
	for _, f := range req.Files {
		o.Files[f.Path] = f.SHA256
	}
	p, err := e.X.PublishJobOutput(ctx, req.Dir, o)
	if err != nil {
		return workflows.PublishedModel{}, refusal(err)
	}
	return workflows.PublishedModel{Task: req.Task, Ref: p.Ref, Digest: p.Digest, LogIndex: p.Signature.LogIndex}, nil
}

// refusal marks the exchange's errors that retrying cannot fix.
func refusal(err error) error {
	for _, e := range []error{registry.ErrNotFound, registry.ErrExists, registry.ErrInvalid, models.ErrInvalid,
		models.ErrChange, models.ErrVerify, models.ErrLineage, models.ErrVersion, exchange.ErrUnverified} {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %w", ErrModelRefused, err)
		}
	}
	return err
}

// ServedModels adapts the model exchange to services.ModelExchange: what a
// services host resolves, prices and mounts for a service's model.
type ServedModels struct{ X *exchange.Exchange }

var _ services.ModelExchange = ServedModels{}

func (s ServedModels) Resolve(ctx context.Context, name, constraint string) (string, string, error) {
	ref, digest, err := s.X.Resolve(ctx, name, constraint)
	return ref, digest, servedRefusal(err)
}

// InferenceFee prices one inference and splits it up the verified lineage.
func (s ServedModels) InferenceFee(ctx context.Context, ref, digest string) (services.ModelFee, error) {
	f, err := s.X.Fee(ctx, ref, digest, models.UseInference)
	if err != nil {
		return services.ModelFee{}, servedRefusal(err)
	}
	out := services.ModelFee{Currency: f.Currency, Price: f.Price}
	for _, sh := range f.Shares {
		out.Shares = append(out.Shares, services.ModelShare{Owner: sh.Owner, Model: sh.Model, Amount: sh.Amount})
	}
	return out, nil
}

func (s ServedModels) Fetch(ctx context.Context, ref, digest string) (string, error) {
	dir, err := s.X.Fetch(ctx, ref, digest)
	return dir, servedRefusal(err)
}

// servedRefusal marks the exchange's final errors as services'.
func servedRefusal(err error) error {
	if err = refusal(err); errors.Is(err, ErrModelRefused) {
		return fmt.Errorf("%w: %w", services.ErrModelRefused, err)
	}
	return err
}
