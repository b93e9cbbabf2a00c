package settlement

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// HeldEscrow is a job whose escrow still holds the tenant's money: what a
// sweeper needs to decide whether to settle or refund it.
type HeldEscrow struct {
	Job      string `json:"job"`
	Tenant   string `json:"tenant"`
	Provider string `json:"provider"`
	Currency string `json:"currency"`
	// Held is what the hold reserved (the escrow's balance while held).
	Held int64 `json:"held"`
	// Since is when the job was last held (its hold's time).
	Since time.Time `json:"since"`
}

// MaxHeldEscrows bounds one HeldEscrows answer; a sweeper that finds this
// many acts on them and comes back for the rest.
const MaxHeldEscrows = 10_000

// HeldEscrows lists the jobs still held whose hold is older than before,
// oldest first, at most limit of them (0 or more than [MaxHeldEscrows]:
// MaxHeldEscrows). It reads only.
func (l *Ledger) HeldEscrows(ctx context.Context, before time.Time, limit int) ([]HeldEscrow, error) {
	if limit <= 0 || limit > MaxHeldEscrows {
		limit = MaxHeldEscrows
	}
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT job, tenant, provider, currency, held, updated FROM ledger_jobs
		WHERE state = ? AND updated < ? ORDER BY updated, job LIMIT ?`), JobHeld, before.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("settlement: held escrows: %w", err)
	}
	defer rows.Close()
	out := []HeldEscrow{}
	for rows.Next() {
		var h HeldEscrow
		var since int64
		if err := rows.Scan(&h.Job, &h.Tenant, &h.Provider, &h.Currency, &h.Held, &since); err != nil {
			return nil, fmt.Errorf("settlement: held escrows: %w", err)
		}
		h.Since = time.Unix(0, since).UTC()
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("settlement: held escrows: %w", err)
	}
	return out, nil
}

// Sweep kinds: what a sweeper decided for a job's escrow.
const (
	SweepSettle  = "settle"  // pay the attested work, refund the rest
	SweepRelease = "release" // refund the whole escrow
)

// Sweep is a sweeper's journal entry for one job: the ledger request it
// decided on, recorded before the request is posted and marked attested
// once the sweep's attestation is logged. A sweep that posted but was not
// attested (the process died in between) is pending, and the next pass
// replays its request (the ledger's idempotency key returns the original
// transaction) and attests it.
type Sweep struct {
	Job    string `json:"job"`
	Kind   string `json:"kind"` // SweepSettle or SweepRelease
	Reason string `json:"reason"`
	// Escrow is what was held when the sweep was decided.
	Escrow HeldEscrow `json:"escrow"`
	// Settle is the request of a SweepSettle, Release that of a SweepRelease.
	Settle  *SettleRequest  `json:"settle,omitempty"`
	Release *ReleaseRequest `json:"release,omitempty"`
	Created time.Time       `json:"created"`
	// Attested is the digest of the sweep's attestation; empty while pending.
	Attested string `json:"attested,omitempty"`
}

func (s Sweep) validate() error {
	if err := checkName(s.Job); err != nil {
		return fmt.Errorf("%w: sweep job: %v", ErrBadRequest, err)
	}
	switch {
	case s.Escrow.Job != s.Job:
		return fmt.Errorf("%w: sweep of %s records the escrow of %s", ErrBadRequest, s.Job, s.Escrow.Job)
	case s.Kind == SweepSettle && s.Settle != nil && s.Settle.Job == s.Job && s.Release == nil:
	case s.Kind == SweepRelease && s.Release != nil && s.Release.Job == s.Job && s.Settle == nil:
	default:
		return fmt.Errorf("%w: sweep of %s: kind %q needs its own request for the same job", ErrBadRequest, s.Job, s.Kind)
	}
	return nil
}

// RecordSweep journals a sweep unless one is already recorded for the job,
// and returns the recorded one: the first decision wins, so a replay after
// a crash posts exactly the request first decided on.
func (l *Ledger) RecordSweep(ctx context.Context, s Sweep) (Sweep, error) {
	if err := s.validate(); err != nil {
		return Sweep{}, err
	}
	req, err := json.Marshal(struct {
		Escrow  HeldEscrow      `json:"escrow"`
		Settle  *SettleRequest  `json:"settle,omitempty"`
		Release *ReleaseRequest `json:"release,omitempty"`
	}{s.Escrow, s.Settle, s.Release})
	if err != nil {
		return Sweep{}, fmt.Errorf("settlement: record sweep of %s: %w", s.Job, err)
	}
	err = l.retry(ctx, func() error {
		_, err := l.db.ExecContext(ctx, l.q(`INSERT INTO ledger_sweeps (job, kind, reason, request, created, attested)
			VALUES (?, ?, ?, ?, ?, '') ON CONFLICT (job) DO NOTHING`), s.Job, s.Kind, s.Reason, string(req), l.now().UnixNano())
		return err
	})
	if err != nil {
		return Sweep{}, fmt.Errorf("settlement: record sweep of %s: %w", s.Job, err)
	}
	return l.sweep(ctx, s.Job)
}

func (l *Ledger) sweep(ctx context.Context, job string) (Sweep, error) {
	rows, err := l.sweeps(ctx, `WHERE job = ?`, job)
	if err != nil {
		return Sweep{}, err
	}
	if len(rows) == 0 {
		return Sweep{}, fmt.Errorf("%w: sweep of %s", ErrNotFound, job)
	}
	return rows[0], nil
}

// PendingSweeps lists the sweeps not yet attested, oldest first.
func (l *Ledger) PendingSweeps(ctx context.Context) ([]Sweep, error) {
	return l.sweeps(ctx, `WHERE attested = '' ORDER BY created, job`)
}

func (l *Ledger) sweeps(ctx context.Context, where string, args ...any) ([]Sweep, error) {
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT job, kind, reason, request, created, attested FROM ledger_sweeps `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("settlement: read sweeps: %w", err)
	}
	defer rows.Close()
	out := []Sweep{}
	for rows.Next() {
		var s Sweep
		var req string
		var created int64
		if err := rows.Scan(&s.Job, &s.Kind, &s.Reason, &req, &created, &s.Attested); err != nil {
			return nil, fmt.Errorf("settlement: read sweeps: %w", err)
		}
		if err := json.Unmarshal([]byte(req), &s); err != nil {
			return nil, fmt.Errorf("settlement: sweep of %s: stored request: %w", s.Job, err)
		}
		s.Created = time.Unix(0, created).UTC()
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("settlement: read sweeps: %w", err)
	}
	return out, nil
}

// MarkSweepAttested records the digest of a sweep's attestation; the sweep
// is then done. Setting the same digest again is harmless.
func (l *Ledger) MarkSweepAttested(ctx context.Context, job, digest string) error {
	if digest == "" {
		return fmt.Errorf("%w: sweep of %s: empty attestation digest", ErrBadRequest, job)
	}
	return l.updateSweep(ctx, `UPDATE ledger_sweeps SET attested = ? WHERE job = ?`, digest, job)
}

// DropSweep forgets a pending sweep that posted nothing: the job's workflow
// settled or released the escrow first, and attests that itself.
func (l *Ledger) DropSweep(ctx context.Context, job string) error {
	return l.updateSweep(ctx, `DELETE FROM ledger_sweeps WHERE job = ? AND attested = ''`, job)
}

func (l *Ledger) updateSweep(ctx context.Context, query string, args ...any) error {
	err := l.retry(ctx, func() error {
		_, err := l.db.ExecContext(ctx, l.q(query), args...)
		return err
	})
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("settlement: update sweep: %w", err)
	}
	return nil
}

// Validate reports a request that [Ledger.Settle] would refuse whatever the
// ledger holds (bad names, amounts, usage, rates, shares or SLA terms, of
// the job or of any of a split job's parts, see [SettleRequest].Parts), so
// that a sweeper can decide on another request instead of journalling one
// that can never post.
func (r SettleRequest) Validate() error {
	if err := r.validate(); err != nil {
		return err
	}
	if _, err := Meter(r.Usage, r.Rates); err != nil {
		return err
	}
	_, err := EvaluateSLA(r.SLA, r.Outcome)
	return err
}
