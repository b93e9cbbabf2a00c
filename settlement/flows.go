package settlement

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
)

// DepositRequest credits a tenant with money from outside the ledger.
type DepositRequest struct {
	Tenant   string `json:"tenant"`
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
	// Key makes the deposit idempotent (e.g. a payment reference); it is
	// namespaced as "deposit/<Key>".
	Key string `json:"key"`
}

// Deposit moves Amount from the external world into the tenant's account.
// Idempotent by "deposit/"+Key: a replay returns the original transaction.
func (l *Ledger) Deposit(ctx context.Context, r DepositRequest) (*Transaction, error) {
	if err := checkTenant(r.Tenant); err != nil {
		return nil, err
	}
	return l.fund(ctx, TxDeposit, TenantAccount(r.Tenant), r.Currency, r.Amount, r.Key, r)
}

// BondRequest deposits a provider's bond.
type BondRequest struct {
	Provider string `json:"provider"`
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
	// Key makes the deposit idempotent; namespaced as "bond/<Key>".
	Key string `json:"key"`
}

// DepositBond moves Amount from the external world into the provider's bond
// account, from which SLA breaches are slashed. Idempotent by "bond/"+Key.
func (l *Ledger) DepositBond(ctx context.Context, r BondRequest) (*Transaction, error) {
	if err := checkName(r.Provider); err != nil {
		return nil, fmt.Errorf("%w: provider: %v", ErrBadAccount, err)
	}
	return l.fund(ctx, TxBond, BondAccount(r.Provider), r.Currency, r.Amount, r.Key, r)
}

func (l *Ledger) fund(ctx context.Context, kind, account, currency string, amount int64, key string, req any) (*Transaction, error) {
	if err := checkCurrency(currency); err != nil {
		return nil, err
	}
	if amount <= 0 || amount > MaxAmount {
		return nil, fmt.Errorf("%w: %s amount %d outside (0, %d]", ErrBadAmount, kind, amount, MaxAmount)
	}
	if key == "" {
		return nil, fmt.Errorf("%w: %s needs an idempotency key", ErrBadRequest, kind)
	}
	t, err := l.apply(ctx, kind+"/"+key, kind, "", req, func(context.Context, *sql.Tx) ([]Posting, any, error) {
		return []Posting{
			{Account: ExternalAccount, Currency: currency, Amount: -amount, Memo: kind},
			{Account: account, Currency: currency, Amount: amount, Memo: kind},
		}, nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("settlement: %s to %s: %w", kind, account, err)
	}
	return t, nil
}

// SetFloor sets the floor of a tenant's account in currency: 0 (the
// default) means no credit, a negative floor is a credit line. The account
// must not already be below the new floor. Setting a value is naturally
// idempotent.
func (l *Ledger) SetFloor(ctx context.Context, tenant, currency string, floor int64) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	if err := checkCurrency(currency); err != nil {
		return err
	}
	if floor > 0 || floor < -MaxAmount {
		return fmt.Errorf("%w: tenant floor %d outside [-%d, 0]", ErrBadAmount, floor, MaxAmount)
	}
	acct := TenantAccount(tenant)
	return l.retry(ctx, func() error {
		tx, err := l.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, l.q(`INSERT INTO ledger_accounts (id, currency, kind, floor, balance, created)
			VALUES (?, ?, ?, 0, 0, ?) ON CONFLICT (id, currency) DO NOTHING`), acct, currency, KindTenant, l.now().UnixNano()); err != nil {
			return fmt.Errorf("settlement: set floor: %w", err)
		}
		var bal int64
		if err := tx.QueryRowContext(ctx, l.q(`UPDATE ledger_accounts SET floor = ? WHERE id = ? AND currency = ? RETURNING balance`),
			floor, acct, currency).Scan(&bal); err != nil {
			return fmt.Errorf("settlement: set floor: %w", err)
		}
		if bal < floor {
			return fmt.Errorf("%w: %s balance %d is below the new floor %d", ErrInsufficientFunds, acct, bal, floor)
		}
		return tx.Commit()
	})
}

// HoldRequest reserves a job's money in escrow at placement.
type HoldRequest struct {
	Job      string `json:"job"`
	Tenant   string `json:"tenant"`
	Provider string `json:"provider"`
	Currency string `json:"currency"`
	// Price is the negotiated price (the auction's clearing price).
	Price int64 `json:"price"`
	// MarginBP is added on top of Price, in basis points, to cover metered
	// usage beyond the price; the hold never exceeds Cap.
	MarginBP int64 `json:"margin_bp"`
	// Cap is the spec's budget (max_price); Price above Cap fails.
	Cap int64 `json:"cap"`
	// Attempt of the placement, for the idempotency key.
	Attempt int `json:"attempt"`
}

// Escrow is the result of [Ledger.Hold].
type Escrow struct {
	Job         string      `json:"job"`
	Account     string      `json:"account"`
	Currency    string      `json:"currency"`
	Amount      int64       `json:"amount"`
	Transaction Transaction `json:"transaction"`
}

// HoldAmount is what [Ledger.Hold] reserves: price plus marginBP basis
// points of it (rounded up), at most cap. Inputs are those Hold accepts
// (non-negative, within [MaxAmount]); the product cannot overflow.
func HoldAmount(price, marginBP, cap int64) int64 {
	if price < 0 || marginBP < 0 {
		return min(max(price, 0), cap)
	}
	hi, lo := bits.Mul64(uint64(price), uint64(marginBP))
	if hi >= 10_000 {
		return cap
	}
	margin, rem := bits.Div64(hi, lo, 10_000)
	if rem != 0 {
		margin++
	}
	if margin > uint64(MaxAmount) || price > MaxAmount {
		return cap
	}
	return min(price+int64(margin), cap)
}

// Hold moves HoldAmount(Price, MarginBP, Cap) from the tenant to the job's
// escrow. It fails with [ErrInsufficientFunds] when the tenant cannot fund
// it (the job must then fail before execution; nothing is posted, so a
// later call with the same key may succeed after a deposit), with
// [ErrOverBudget] when Price exceeds Cap, and with [ErrJobState] when the
// job already has a hold or has been settled. A job whose hold was released
// can be held again with a new Attempt.
//
// Idempotent by Key(Job, "hold", Attempt): a replay returns the original.
func (l *Ledger) Hold(ctx context.Context, r HoldRequest) (*Escrow, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	amount := HoldAmount(r.Price, r.MarginBP, r.Cap)
	escrow := EscrowAccount(r.Job)
	key := Key(r.Job, "hold", r.Attempt)
	t, err := l.apply(ctx, key, TxHold, r.Job, r, func(ctx context.Context, tx *sql.Tx) ([]Posting, any, error) {
		j, err := l.job(ctx, tx, r.Job)
		switch {
		case errors.Is(err, ErrUnknownJob):
			_, err = tx.ExecContext(ctx, l.q(`INSERT INTO ledger_jobs (job, tenant, provider, currency, state, attempt, held, updated)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), r.Job, r.Tenant, r.Provider, r.Currency, JobHeld, r.Attempt, amount, l.now().UnixNano())
		case err != nil:
			return nil, nil, err
		case j.State != JobReleased:
			return nil, nil, fmt.Errorf("%w: job %s is %s (attempt %d)", ErrJobState, r.Job, j.State, j.Attempt)
		case j.Tenant != r.Tenant || j.Currency != r.Currency:
			return nil, nil, fmt.Errorf("%w: job %s belongs to tenant %s in %s", ErrBadRequest, r.Job, j.Tenant, j.Currency)
		default:
			_, err = tx.ExecContext(ctx, l.q(`UPDATE ledger_jobs SET provider = ?, state = ?, attempt = ?, held = ?, updated = ? WHERE job = ?`),
				r.Provider, JobHeld, r.Attempt, amount, l.now().UnixNano(), r.Job)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("settlement: record job: %w", err)
		}
		return []Posting{
			{Account: TenantAccount(r.Tenant), Currency: r.Currency, Amount: -amount, Memo: "hold"},
			{Account: escrow, Currency: r.Currency, Amount: amount, Memo: "hold"},
		}, nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("settlement: hold %d %s for %s: %w", amount, r.Currency, r.Job, err)
	}
	return &Escrow{Job: r.Job, Account: escrow, Currency: r.Currency, Amount: amount, Transaction: *t}, nil
}

func (r HoldRequest) validate() error {
	if err := checkName(r.Job); err != nil {
		return fmt.Errorf("%w: job: %v", ErrBadRequest, err)
	}
	if err := checkName(r.Tenant); err != nil {
		return fmt.Errorf("%w: tenant: %v", ErrBadAccount, err)
	}
	if err := checkName(r.Provider); err != nil {
		return fmt.Errorf("%w: provider: %v", ErrBadAccount, err)
	}
	if err := checkCurrency(r.Currency); err != nil {
		return err
	}
	if err := checkAmount("price", r.Price); err != nil {
		return err
	}
	if err := checkAmount("cap", r.Cap); err != nil {
		return err
	}
	if r.MarginBP < 0 || r.MarginBP > 1_000_000 {
		return fmt.Errorf("%w: margin %d bp outside [0, 1000000]", ErrBadRequest, r.MarginBP)
	}
	if r.Price > r.Cap {
		return fmt.Errorf("%w: price %d > cap %d", ErrOverBudget, r.Price, r.Cap)
	}
	return nil
}

// jobRow is a job's ledger record.
type jobRow struct {
	Job, Tenant, Provider, Currency, State string
	Attempt                                int
	Held                                   int64
}

func (l *Ledger) job(ctx context.Context, q queryer, job string) (jobRow, error) {
	j := jobRow{Job: job}
	err := q.QueryRowContext(ctx, l.q(`SELECT tenant, provider, currency, state, attempt, held FROM ledger_jobs WHERE job = ?`+l.forUpdate()), job).
		Scan(&j.Tenant, &j.Provider, &j.Currency, &j.State, &j.Attempt, &j.Held)
	if errors.Is(err, sql.ErrNoRows) {
		return j, fmt.Errorf("%w: %s", ErrUnknownJob, job)
	}
	if err != nil {
		return j, fmt.Errorf("settlement: read job %s: %w", job, err)
	}
	return j, nil
}

func (l *Ledger) balanceTx(ctx context.Context, q queryer, account, currency string, lock bool) (int64, error) {
	query := `SELECT balance FROM ledger_accounts WHERE id = ? AND currency = ?`
	if lock {
		query += l.forUpdate()
	}
	var b int64
	err := q.QueryRowContext(ctx, l.q(query), account, currency).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("settlement: balance of %s: %w", account, err)
	}
	return b, nil
}

// Royalty is a model owner's share of a job's payable amount.
type Royalty struct {
	Account     string `json:"account"` // "owner:NAME" or NAME
	BasisPoints int64  `json:"basis_points"`
}

// SettleRequest settles a held job.
type SettleRequest struct {
	Job string `json:"job"`
	// Attempt of the settle stage, for the idempotency key.
	Attempt int `json:"attempt"`
	// Succeeded is false when the job failed (execution or verification).
	Succeeded bool `json:"succeeded"`
	// PayOnSuccess: a failed job pays nothing and the whole escrow is
	// refunded. Without it a failed job is charged like a successful one.
	PayOnSuccess bool `json:"pay_on_success"`
	// Price is the auction's price (the fixed part of the charge).
	Price int64 `json:"price"`
	// Usage and Rates give the metered part of the charge (see [Meter]).
	Usage Usage `json:"usage"`
	Rates Rates `json:"rates"`
	// FeeBP is the platform fee in basis points of the payable amount.
	FeeBP int64 `json:"fee_bp"`
	// Royalties to model owners, in basis points of the payable amount.
	Royalties []Royalty `json:"royalties,omitempty"`
	// SLA are the terms the provider agreed to in negotiation.
	SLA     SLATerms `json:"sla"`
	Outcome Outcome  `json:"outcome"`
	// ModelFees are the prices of the models the job used, split up each
	// model's lineage (models.SplitFee); paid exactly when the charge is,
	// before it (see [Ledger.Settle]).
	ModelFees []ModelFee `json:"model_fees,omitempty"`
	// Parts settles a split job (placement.split): each provider is
	// charged, refunded under its own SLA and paid separately. With
	// Parts, Price, Usage, Rates, SLA and Outcome above must be zero;
	// at most MaxSettleParts parts, each for another provider.
	Parts []SettlePart `json:"parts,omitempty"`
}

// SettlePart is one provider's share of a split job: its price, the
// metered usage of its tasks at its rates, and the SLA terms it agreed to
// with the outcome of its tasks.
type SettlePart struct {
	Provider string   `json:"provider"`
	Price    int64    `json:"price"`
	Usage    Usage    `json:"usage"`
	Rates    Rates    `json:"rates"`
	SLA      SLATerms `json:"sla"`
	Outcome  Outcome  `json:"outcome"`
}

// PartSettlement is what one part of a split job was charged and paid,
// computed as a whole job's would be (see [Settlement]).
type PartSettlement struct {
	Provider    string    `json:"provider"`
	Price       int64     `json:"price"`
	Usage       Usage     `json:"usage"`
	Rates       Rates     `json:"rates"`
	Metered     Charges   `json:"metered"`
	Charge      int64     `json:"charge"`
	Capped      bool      `json:"capped,omitempty"`
	SLA         SLAResult `json:"sla"`
	SLARefund   int64     `json:"sla_refund"`
	Payable     int64     `json:"payable"`
	ProviderPay int64     `json:"provider_pay"`
	PlatformFee int64     `json:"platform_fee"`
	Royalties   []Payment `json:"royalties,omitempty"`
	Slashed     int64     `json:"slashed"`
}

// Payment is one amount paid out of escrow.
type Payment struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
	// Model is, for a model fee's share, the name@version whose owner it
	// pays.
	Model string `json:"model,omitempty"`
}

// Settlement is what [Ledger.Settle] did; it is JSON-serialisable so that the
// settlement attestation can record it, postings included.
type Settlement struct {
	Job      string `json:"job"`
	Tenant   string `json:"tenant"`
	Provider string `json:"provider"`
	Currency string `json:"currency"`
	Held     int64  `json:"held"`
	// Usage and Rates are what the metered charge was computed from, kept
	// so that an auditor can recompute it.
	Usage   Usage   `json:"usage"`
	Rates   Rates   `json:"rates"`
	Metered Charges `json:"metered"`
	// ModelFees are the model fees paid, each share as paid (cut to what
	// the escrow held, in order), and ModelFeeTotal their sum; none for a
	// failed pay-on-success job.
	ModelFees     []ModelFee `json:"model_fees,omitempty"`
	ModelFeeTotal int64      `json:"model_fee_total,omitempty"`
	// Charge is Price + Metered.Total, at most Held - ModelFeeTotal; zero
	// for a failed pay-on-success job.
	Charge int64 `json:"charge"`
	// Capped is true when the model fees or the charge were cut to what
	// the escrow held.
	Capped    bool      `json:"capped,omitempty"`
	SLA       SLAResult `json:"sla"`
	SLARefund int64     `json:"sla_refund"` // RefundPercent of Charge
	// Payable = Charge - SLARefund, split into ProviderPay, PlatformFee and
	// Royalties (fee and royalties rounded down; the provider gets the rest).
	Payable     int64     `json:"payable"`
	ProviderPay int64     `json:"provider_pay"`
	PlatformFee int64     `json:"platform_fee"`
	Royalties   []Payment `json:"royalties,omitempty"`
	// Refund is the escrow returned to the tenant (Held - ModelFeeTotal -
	// Payable).
	Refund int64 `json:"refund"`
	// Slashed is taken from the provider's bond and paid to the tenant: at
	// most the agreed stake.
	Slashed int64 `json:"slashed"`
	// Parts are a split job's parts, each paid to its provider; the
	// amounts above are then their sums (royalties summed per account in
	// the order first seen, Metered summed per component, Capped if the
	// model fees or any part were cut), while Usage, Rates and SLA stay
	// zero: each part has its own. Provider is the lead provider the
	// escrow was held under.
	Parts       []PartSettlement `json:"parts,omitempty"`
	Transaction Transaction      `json:"transaction"`
}

func (r SettleRequest) validate() error {
	if err := checkName(r.Job); err != nil {
		return fmt.Errorf("%w: job: %v", ErrBadRequest, err)
	}
	if err := checkAmount("price", r.Price); err != nil {
		return err
	}
	if err := checkUsage(r.Usage); err != nil {
		return err
	}
	if err := checkRates(r.Rates); err != nil {
		return err
	}
	if err := validateTerms(r.SLA); err != nil {
		return err
	}
	if err := CheckModelFees(r.ModelFees); err != nil {
		return err
	}
	if err := CheckShares(r.FeeBP, r.Royalties); err != nil {
		return err
	}
	if len(r.Parts) > 0 {
		return r.validateParts()
	}
	return nil
}

// CheckShares reports a platform fee and royalties that cannot be paid out
// of a charge: any share outside [0, 10000] basis points, a royalty account
// that is malformed or listed twice, or shares that add up to more than
// 10000 (100 %). Admission calls it with the platform's fee so that such a
// job is refused before it runs; Settle checks again.
func CheckShares(feeBP int64, royalties []Royalty) error {
	if feeBP < 0 || feeBP > 10_000 {
		return fmt.Errorf("%w: fee %d bp outside [0, 10000]", ErrBadRequest, feeBP)
	}
	total := feeBP
	seen := map[string]bool{}
	for _, ro := range royalties {
		acct := OwnerAccount(ro.Account)
		if _, _, err := ParseAccount(acct); err != nil {
			return fmt.Errorf("%w: royalty: %v", ErrBadRequest, err)
		}
		if seen[acct] {
			return fmt.Errorf("%w: royalty account %s listed twice", ErrBadRequest, acct)
		}
		seen[acct] = true
		if ro.BasisPoints < 0 || ro.BasisPoints > 10_000 {
			return fmt.Errorf("%w: royalty %d bp outside [0, 10000]", ErrBadRequest, ro.BasisPoints)
		}
		total += ro.BasisPoints
	}
	if total > 10_000 {
		return fmt.Errorf("%w: fee and royalties add up to %d bp, more than 10000", ErrBadRequest, total)
	}
	return nil
}

// Settle pays out a held job in one database transaction. First the model
// fees, share by share to the model owners (a share the escrow cannot cover
// is cut, those after it get nothing, and Capped is set: never an error,
// never money the escrow does not hold); then the charge (the auction price
// plus metered usage, at most what the escrow still holds), less the SLA
// refund, is split into the platform fee, royalties and the provider's pay;
// the rest of the escrow goes back to the tenant; on SLA breach
// SlashPercent of the agreed stake (at most what the provider's bond holds)
// is moved to the tenant. A failed pay-on-success job pays neither model
// fees nor charge. The SLA refund is of the charge only: the model owners
// did not breach. Afterwards the escrow is zero and the job is settled.
//
// A split job (r.Parts) is settled part by part in the same transaction:
// after the model fees, each part in order is charged like a whole job, at
// most what the escrow still holds after the parts before it, refunded
// under its own SLA terms, divided into its provider's pay, the fee and
// royalties, and its provider's bond is slashed on its own breach; the
// Settlement's amounts are then the parts' sums (see [Settlement].Parts).
//
// Idempotent by Key(Job, "settle", Attempt): a replay returns the original
// settlement with Transaction.Replayed set. Settling a job that is not held
// (unknown, released, or settled under another key) fails with
// [ErrUnknownJob] or [ErrJobState].
func (l *Ledger) Settle(ctx context.Context, r SettleRequest) (*Settlement, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	settle, err := r.settler(l)
	if err != nil {
		return nil, err
	}
	key := Key(r.Job, "settle", r.Attempt)
	t, err := l.apply(ctx, key, TxSettle, r.Job, r, func(ctx context.Context, tx *sql.Tx) ([]Posting, any, error) {
		j, err := l.job(ctx, tx, r.Job)
		if err != nil {
			return nil, nil, err
		}
		if j.State != JobHeld {
			return nil, nil, fmt.Errorf("%w: job %s is %s", ErrJobState, r.Job, j.State)
		}
		held, err := l.balanceTx(ctx, tx, EscrowAccount(r.Job), j.Currency, true)
		if err != nil {
			return nil, nil, err
		}
		s, ps, err := settle(ctx, tx, j, held)
		if err != nil {
			return nil, nil, err
		}
		if err := l.finishJob(ctx, tx, r.Job, JobSettled); err != nil {
			return nil, nil, err
		}
		return ps, s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("settlement: settle %s: %w", r.Job, err)
	}
	var s Settlement
	if err := json.Unmarshal(t.detail, &s); err != nil {
		return nil, fmt.Errorf("settlement: settle %s: decode stored settlement: %w", r.Job, err)
	}
	s.Transaction = *t
	return &s, nil
}

// settleFunc computes a held job's settlement and postings inside the
// transaction that settles it, from the escrow's balance held.
type settleFunc func(ctx context.Context, tx *sql.Tx, j jobRow, held int64) (*Settlement, []Posting, error)

// settler returns how r is settled: whole or split. Its pure parts (the
// meter and the SLA verdicts) run here, before any transaction.
func (r SettleRequest) settler(l *Ledger) (settleFunc, error) {
	if len(r.Parts) > 0 {
		slash, err := slashers(r.Parts)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, tx *sql.Tx, j jobRow, held int64) (*Settlement, []Posting, error) {
			return l.settleSplit(ctx, tx, r, j, held, slash)
		}, nil
	}
	metered, err := Meter(r.Usage, r.Rates)
	if err != nil {
		return nil, err
	}
	verdict, err := EvaluateSLA(r.SLA, r.Outcome)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, tx *sql.Tx, j jobRow, held int64) (*Settlement, []Posting, error) {
		return l.settleWhole(ctx, tx, r, j, held, metered, verdict)
	}, nil
}

// settleWhole settles a job one provider ran.
func (l *Ledger) settleWhole(ctx context.Context, tx *sql.Tx, r SettleRequest, j jobRow, held int64, metered Charges, verdict SLAResult) (*Settlement, []Posting, error) {
	escrow := EscrowAccount(r.Job)
	s := &Settlement{Job: r.Job, Tenant: j.Tenant, Provider: j.Provider, Currency: j.Currency,
		Held: held, Usage: r.Usage, Rates: r.Rates, Metered: metered, SLA: verdict}
	if r.Succeeded || !r.PayOnSuccess {
		s.ModelFees, s.ModelFeeTotal, s.Capped = payModelFees(r.ModelFees, held)
		s.Charge = r.Price + metered.Total
		if left := held - s.ModelFeeTotal; s.Charge > left {
			s.Charge, s.Capped = left, true
		}
	}
	d := divide(s.Charge, verdict, r.FeeBP, r.Royalties)
	s.SLARefund, s.Payable, s.PlatformFee, s.ProviderPay, s.Royalties = d.SLARefund, d.Payable, d.PlatformFee, d.ProviderPay, d.Royalties
	s.Refund = held - s.ModelFeeTotal - s.Payable
	if SlashAmount(verdict, MaxAmount) > 0 {
		bond, err := l.balanceTx(ctx, tx, BondAccount(j.Provider), j.Currency, true)
		if err != nil {
			return nil, nil, err
		}
		s.Slashed = SlashAmount(verdict, bond)
	}
	c := j.Currency
	ps := modelFeePostings(escrow, c, s.ModelFees)
	ps = append(ps, []Posting{
		{Account: escrow, Currency: c, Amount: -s.ProviderPay, Memo: "pay"},
		{Account: ProviderAccount(j.Provider), Currency: c, Amount: s.ProviderPay, Memo: "pay"},
		{Account: escrow, Currency: c, Amount: -s.PlatformFee, Memo: "fee"},
		{Account: PlatformFeeAccount, Currency: c, Amount: s.PlatformFee, Memo: "fee"},
	}...)
	for _, p := range s.Royalties {
		ps = append(ps,
			Posting{Account: escrow, Currency: c, Amount: -p.Amount, Memo: "royalty"},
			Posting{Account: p.Account, Currency: c, Amount: p.Amount, Memo: "royalty"})
	}
	ps = append(ps,
		Posting{Account: escrow, Currency: c, Amount: -s.Refund, Memo: "refund"},
		Posting{Account: TenantAccount(j.Tenant), Currency: c, Amount: s.Refund, Memo: "refund"},
		Posting{Account: BondAccount(j.Provider), Currency: c, Amount: -s.Slashed, Memo: "slash"},
		Posting{Account: TenantAccount(j.Tenant), Currency: c, Amount: s.Slashed, Memo: "slash"})
	return s, ps, nil
}

// settleSplit settles a split job: it reads the bonds of the providers in
// slash (sorted, see [slashers]) and posts [splitSettlement].
func (l *Ledger) settleSplit(ctx context.Context, tx *sql.Tx, r SettleRequest, j jobRow, held int64, slash []string) (*Settlement, []Posting, error) {
	bonds := make(map[string]int64, len(slash))
	for _, p := range slash {
		b, err := l.balanceTx(ctx, tx, BondAccount(p), j.Currency, true)
		if err != nil {
			return nil, nil, err
		}
		bonds[p] = b
	}
	s, err := splitSettlement(r, held, bonds)
	if err != nil {
		return nil, nil, err
	}
	s.Job, s.Tenant, s.Provider, s.Currency = r.Job, j.Tenant, j.Provider, j.Currency
	return s, splitPostings(s, EscrowAccount(r.Job), j.Tenant), nil
}

func (l *Ledger) finishJob(ctx context.Context, tx *sql.Tx, job, state string) error {
	if _, err := tx.ExecContext(ctx, l.q(`UPDATE ledger_jobs SET state = ?, updated = ? WHERE job = ?`), state, l.now().UnixNano(), job); err != nil {
		return fmt.Errorf("settlement: mark job %s %s: %w", job, state, err)
	}
	return nil
}

// ReleaseRequest refunds a job's escrow (compensation on cancel or failure).
type ReleaseRequest struct {
	Job     string `json:"job"`
	Attempt int    `json:"attempt"`
}

// Release moves the whole escrow of a held job back to the tenant and marks
// the job released. It is a compensation and is safe to call whatever
// happened before: for a job that was never held (its hold failed) or is
// already released it posts nothing and returns an empty transaction;
// a settled job fails with [ErrJobState].
//
// Idempotent by Key(Job, "release", Attempt): a replay returns the original.
func (l *Ledger) Release(ctx context.Context, r ReleaseRequest) (*Transaction, error) {
	if err := checkName(r.Job); err != nil {
		return nil, fmt.Errorf("%w: job: %v", ErrBadRequest, err)
	}
	key := Key(r.Job, "release", r.Attempt)
	t, err := l.apply(ctx, key, TxRelease, r.Job, r, func(ctx context.Context, tx *sql.Tx) ([]Posting, any, error) {
		j, err := l.job(ctx, tx, r.Job)
		if errors.Is(err, ErrUnknownJob) {
			return nil, nil, errNoop
		}
		if err != nil {
			return nil, nil, err
		}
		switch j.State {
		case JobReleased:
			return nil, nil, errNoop
		case JobSettled:
			return nil, nil, fmt.Errorf("%w: job %s is already settled", ErrJobState, r.Job)
		}
		escrow := EscrowAccount(r.Job)
		held, err := l.balanceTx(ctx, tx, escrow, j.Currency, true)
		if err != nil {
			return nil, nil, err
		}
		if err := l.finishJob(ctx, tx, r.Job, JobReleased); err != nil {
			return nil, nil, err
		}
		return []Posting{
			{Account: escrow, Currency: j.Currency, Amount: -held, Memo: "refund"},
			{Account: TenantAccount(j.Tenant), Currency: j.Currency, Amount: held, Memo: "refund"},
		}, nil, nil
	})
	if errors.Is(err, errNoop) {
		return &Transaction{Key: key, Kind: TxRelease, Job: r.Job, Postings: []Posting{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("settlement: release %s: %w", r.Job, err)
	}
	return t, nil
}
