// Package settlement is Accord's double-entry ledger: it holds a job's
// escrow at placement, meters what the job used, pays the provider, the
// platform and model owners when the job settles, refunds the rest to the
// tenant, and slashes provider bonds when a service level is breached.
//
// # Model
//
// Money is int64 minor units (cents, satoshis, token base units) and never
// a float. An account is a name ("tenant:acme", "escrow:job-42", see
// [ParseAccount]) together with one currency code; the same name in another
// currency is another account. Every transaction is a set of postings whose
// signed amounts sum to zero per currency, so the balances of all accounts
// sum to zero per currency at all times. Money enters and leaves the ledger
// through the "external:world" account, the only account without a floor;
// every other account has a floor it may not go below: zero for escrow,
// bonds, providers, the platform and model owners, and zero or a negative
// credit floor (see [Ledger.SetFloor]) for tenants.
//
// # Idempotency
//
// Every write carries an idempotency key (for job flows: job, stage and
// attempt, see [Key]). The key is claimed by inserting a row under a unique
// constraint in the same database transaction as the postings, so a write
// either happens completely, with its key, or not at all, even if the process
// dies half-way. A replay with the same key and the same request posts
// nothing and returns the original transaction (with Replayed set); the same
// key with a different request fails with [ErrKeyReused]. Concurrent replays
// are safe: the database serialises them on the unique key.
//
// # Flows
//
// What the workflow's activities call, each idempotent as noted:
//
//   - [Ledger.Deposit] funds a tenant (key "deposit/<key>"; `accord ledger
//     deposit TENANT AMOUNT --key REF` from the CLI, which is how a demo
//     tenant is funded) and [Ledger.DepositBond] a provider's bond (key
//     "bond/<key>"; `accord provider bond PROVIDER AMOUNT`).
//   - [Ledger.Hold] at placement: the negotiated price plus a margin, at
//     most the budget cap, from tenant to escrow; [ErrInsufficientFunds]
//     when the tenant cannot fund it (key job/hold/attempt).
//   - [Meter], [EvaluateSLA], [SlashAmount] and [CheckShares] are pure
//     functions. EvaluateSLA judges a breach from attested facts only
//     (placement time, end of execution, execution time, whether the
//     acceptance tests failed) against the terms the provider agreed in
//     negotiation (package sla): failing tests refund, and slash only under
//     SlashOnTests; a slash is a percentage of the agreed per-job stake,
//     never more than the bond holds.
//   - [Ledger.Settle] pays the model fees, then the provider, platform fee
//     and royalties from the escrow, refunds the rest, applies SLA refunds
//     and bond slashing, and returns the postings (key job/settle/attempt).
//     Fee and royalties over 100 % are refused here too, but admission
//     should have refused them first ([CheckShares]).
//   - A split job ([SettleRequest].Parts, one [SettlePart] per provider,
//     at most [MaxSettleParts], providers distinct and named as
//     names.Provider requires, no top-level price, usage, rates, SLA or
//     outcome) settles in the same transaction under the same key: the model fees first, from the whole escrow; then each
//     part in order is charged its price plus its metered usage, at most
//     what the escrow still holds after the fees and the charges before it
//     (an earlier part's SLA refund is the tenant's, not the later parts'),
//     refunded under its own terms, divided into its provider's pay, the
//     fee and royalties exactly as a whole job's charge, and its provider's
//     bond is slashed on its own breach. A failed pay-on-success job pays
//     no part. [Settlement].Parts records each part ([PartSettlement]) and
//     the top-level amounts are their sums; the postings are one "pay" pair
//     per part, one "fee" pair, one "royalty" pair per account, one
//     "refund" pair and one "slash" pair per slashed part.
//   - Model fees ([SettleRequest].ModelFees, one [ModelFee] per model use,
//     split up the model's lineage by models.SplitFee) are paid in the
//     same transaction, so a replay of the settle key pays nobody twice.
//     They are paid exactly when the charge is (a failed pay-on-success job
//     pays neither: the whole escrow goes back), first, share by share to
//     "owner:TENANT" accounts with the memos "model-fee <ref>" (the used
//     model's owner) and "royalty <ref>" (an ancestor's owner); the charge
//     is capped at what they leave. If the escrow cannot cover them they are
//     cut in order and Capped is set: never an error that would wedge
//     settlement, never money the escrow does not hold. The SLA refund is
//     of the charge only (the model owners did not breach).
//     [Settlement].ModelFees records what was paid, [Settlement.Paid] is
//     fees plus payable, and Paid + Refund = Held. [CheckModelFees] bounds
//     them (64 fees, 256 shares each, amounts and total within MaxAmount)
//     for admission; Settle checks again.
//   - [Ledger.Release] is the compensation: the whole escrow back to the
//     tenant; harmless on a job that was never held or already released
//     (key job/release/attempt).
//   - [Ledger.HeldEscrows] lists escrow still held past a cut-off, and
//     [Ledger.RecordSweep], [Ledger.PendingSweeps] and
//     [Ledger.MarkSweepAttested] journal what package settlement/sweep
//     decided for escrow no workflow will release (it posts through Settle
//     and Release under the workflow's own keys).
//
// # Storage
//
// One implementation over database/sql with two dialects: SQLite
// (modernc.org/sqlite, pure Go; WAL, synchronous=FULL, a busy timeout and
// BEGIN IMMEDIATE so writers queue rather than deadlock) as the embedded
// default, and PostgreSQL (pgx via database/sql) for shared deployments. See
// [Open].
//
// # Invariants
//
// [Ledger.Check] verifies, from the stored postings: every transaction
// balances per currency, cached balances equal the sum of their postings,
// all balances sum to zero per currency, no account is below its floor, the
// escrow of every finished (settled or released) job is zero and the escrow
// of every held job equals what was held.
package settlement
