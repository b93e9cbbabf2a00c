package settlement

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/accordmesh/accord/internal/names"
)

// Transaction kinds of failover and spot checks.
const (
	// TxReassign moves a held job to another provider (a failover, or a
	// spot check that found the job's provider in the minority); it posts
	// nothing.
	TxReassign = "reassign"
	// TxSlash takes a spot check's verdict out of a provider's bond and
	// pays it to the job's tenant.
	TxSlash = "slash"
)

// ReassignRequest moves a held job's escrow from the provider it was held
// for (From) to another (To): the one that will be paid when it settles.
// N numbers the job's reassignments from 1, for the idempotency key.
type ReassignRequest struct {
	Job    string `json:"job"`
	From   string `json:"from"`
	To     string `json:"to"`
	N      int    `json:"n"`
	Reason string `json:"reason,omitempty"`
}

// Reassignment is what a reassignment recorded.
type Reassignment struct {
	Job         string      `json:"job"`
	From        string      `json:"from"`
	To          string      `json:"to"`
	Reason      string      `json:"reason,omitempty"`
	Transaction Transaction `json:"transaction"`
}

func (r ReassignRequest) validate() error {
	switch {
	case checkName(r.Job) != nil:
		return fmt.Errorf("%w: job: %v", ErrBadRequest, checkName(r.Job))
	case names.Provider(r.From) != nil:
		return fmt.Errorf("%w: from: %v", ErrBadRequest, names.Provider(r.From))
	case names.Provider(r.To) != nil:
		return fmt.Errorf("%w: to: %v", ErrBadRequest, names.Provider(r.To))
	case r.From == r.To:
		return fmt.Errorf("%w: reassign %s to the provider it has", ErrBadRequest, r.Job)
	case r.N < 1:
		return fmt.Errorf("%w: reassignment number %d", ErrBadRequest, r.N)
	case len(r.Reason) > 1024:
		return fmt.Errorf("%w: reason over 1024 bytes", ErrBadRequest)
	}
	return nil
}

// Reassign makes a held job payable to r.To instead of r.From: the
// abandoned provider is paid nothing when the job settles. It posts
// nothing; the escrow stays where it is. The job must be held for r.From.
//
// Idempotent by Key(Job, "reassign", N): a replay returns the original
// with Transaction.Replayed set; the same key for another provider fails
// with [ErrKeyReused].
func (l *Ledger) Reassign(ctx context.Context, r ReassignRequest) (*Reassignment, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	key := Key(r.Job, "reassign", r.N)
	t, err := l.apply(ctx, key, TxReassign, r.Job, r, func(ctx context.Context, tx *sql.Tx) ([]Posting, any, error) {
		j, err := l.job(ctx, tx, r.Job)
		if err != nil {
			return nil, nil, err
		}
		if j.State != JobHeld {
			return nil, nil, fmt.Errorf("%w: job %s is %s", ErrJobState, r.Job, j.State)
		}
		if j.Provider != r.From {
			return nil, nil, fmt.Errorf("%w: job %s is held for %s, not %s", ErrJobState, r.Job, j.Provider, r.From)
		}
		if _, err := tx.ExecContext(ctx, l.q(`UPDATE ledger_jobs SET provider = ?, updated = ? WHERE job = ?`),
			r.To, l.now().UnixNano(), r.Job); err != nil {
			return nil, nil, fmt.Errorf("settlement: reassign %s: %w", r.Job, err)
		}
		return nil, Reassignment{Job: r.Job, From: r.From, To: r.To, Reason: r.Reason}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("settlement: reassign %s to %s: %w", r.Job, r.To, err)
	}
	var out Reassignment
	if err := json.Unmarshal(t.detail, &out); err != nil {
		return nil, fmt.Errorf("settlement: reassign %s: decode stored reassignment: %w", r.Job, err)
	}
	out.Transaction = *t
	return &out, nil
}

// SlashRequest slashes a provider that a spot check found in the minority
// of job Job: SlashPercent of the Stake it agreed to for the job (its SLA
// terms), never more than its bond holds, paid to the job's tenant.
type SlashRequest struct {
	Job          string `json:"job"`
	Provider     string `json:"provider"`
	Stake        int64  `json:"stake"`
	SlashPercent int    `json:"slash_percent"`
	Reason       string `json:"reason"`
}

// Slash is what a slash took.
type Slash struct {
	Job      string `json:"job"`
	Provider string `json:"provider"`
	Tenant   string `json:"tenant"`
	Currency string `json:"currency"`
	// Slashed is what moved from the bond to the tenant (0 when the terms
	// put nothing at stake or the bond is empty).
	Slashed     int64       `json:"slashed"`
	Reason      string      `json:"reason"`
	Transaction Transaction `json:"transaction"`
}

func (r SlashRequest) validate() error {
	switch {
	case checkName(r.Job) != nil:
		return fmt.Errorf("%w: job: %v", ErrBadRequest, checkName(r.Job))
	case names.Provider(r.Provider) != nil:
		return fmt.Errorf("%w: provider: %v", ErrBadRequest, names.Provider(r.Provider))
	case r.SlashPercent < 0 || r.SlashPercent > 100:
		return fmt.Errorf("%w: slash %d%% outside [0, 100]", ErrBadRequest, r.SlashPercent)
	case r.Reason == "" || len(r.Reason) > 1024:
		return fmt.Errorf("%w: a slash needs a reason of at most 1024 bytes", ErrBadRequest)
	}
	return checkAmount("stake", r.Stake)
}

// Slash takes a spot-check verdict out of r.Provider's bond: SlashAmount of
// the agreed terms, in the job's currency, to the job's tenant. The job
// must be known (held or settled: the verdict may come either side of
// settlement).
//
// Idempotent by Key(Job, "slash-"+Provider, 1): one verdict per provider
// and job; a replay returns the original with Transaction.Replayed set.
func (l *Ledger) Slash(ctx context.Context, r SlashRequest) (*Slash, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	key := Key(r.Job, "slash-"+r.Provider, 1)
	t, err := l.apply(ctx, key, TxSlash, r.Job, r, func(ctx context.Context, tx *sql.Tx) ([]Posting, any, error) {
		j, err := l.job(ctx, tx, r.Job)
		if err != nil {
			return nil, nil, err
		}
		s := Slash{Job: r.Job, Provider: r.Provider, Tenant: j.Tenant, Currency: j.Currency, Reason: r.Reason}
		verdict := SLAResult{Breached: true, Reasons: []string{r.Reason}, SlashPercent: r.SlashPercent, Stake: r.Stake}
		if SlashAmount(verdict, MaxAmount) > 0 {
			bond, err := l.balanceTx(ctx, tx, BondAccount(r.Provider), j.Currency, true)
			if err != nil {
				return nil, nil, err
			}
			s.Slashed = SlashAmount(verdict, bond)
		}
		return []Posting{
			{Account: BondAccount(r.Provider), Currency: j.Currency, Amount: -s.Slashed, Memo: "slash"},
			{Account: TenantAccount(j.Tenant), Currency: j.Currency, Amount: s.Slashed, Memo: "slash"},
		}, s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("settlement: slash %s for %s: %w", r.Provider, r.Job, err)
	}
	var out Slash
	if err := json.Unmarshal(t.detail, &out); err != nil {
		return nil, fmt.Errorf("settlement: slash %s: decode stored slash: %w", r.Job, err)
	}
	out.Transaction = *t
	return &out, nil
}
