// Package market is Accord's compute market: provider agents sell capacity,
// buyer agents (one per job, built from its compiled plan) buy it, and a
// protocol clears the trade. The workflow's negotiate stage calls Negotiate;
// its Result (offers, bids, winners, prices, diagnostics) is what the
// negotiation attestation records.
//
// # Agents
//
// A Provider reports a Profile: capabilities (region, jurisdictions, TEE,
// attestation, reputation, free and total capacity with exact GPU models and
// memory), a Pricing policy (minor units per resource-hour, surge
// 1 + s·u² on utilisation u after placement, reserve price) and a bidding
// Strategy. Static is a fixed profile (configured with LoadProviders, used in
// tests and simulations); a live pool implements Provider from its
// inventory. A Buyer carries a job's budget cap, deadline, cost-vs-latency
// preference, placement constraints and co-location groups.
//
// # From jobs and providers to winner determination
//
// A clearing of jobs J₁…Jₖ against providers P₁…Pₘ becomes a set-packing
// instance (package wdp) with k+m goods:
//
//   - good j (0 ≤ j < k) is job Jⱼ: a job is placed at most once;
//   - good k+i is provider Pᵢ's capacity: a provider wins at most one bid,
//     and every bid of Pᵢ is a bundle it can host in full, so capacity is
//     never oversold (the CATS dummy-good convention for XOR).
//
// Bids are built from offers, which name the exact hardware per task:
//
//   - a single-provider bid: Pᵢ hosts every task of the jobs in a bundle
//     (one job, or up to Options.MaxBundle jobs fitted jointly); goods
//     {jobs} ∪ {k+i}. A job is all-or-nothing (gang placement): no bid
//     places part of it.
//   - a split bid: a job whose co-location groups (spec task.group and
//     placement.colocate, merged) do not fit one provider places each group
//     on a distinct provider; goods {j} ∪ {k+i for each provider}.
//
// The price of a bid in the instance is its surplus Σ(reserveⱼ+1) − ask: the
// buyer's value is its reserve (negotiation.reserve, by default
// DefaultReserveShare of the budget) plus one minor unit, so that an ask
// exactly at the reserve still trades; asks above it never become bids.
// Winner determination maximises total surplus. Prices follow the job's
// negotiation.pricing: vcg (default) pays a winning provider p its ask plus
// its Clarke-pivot premium W − W₋ₚ, where W₋ₚ is the optimum without p's
// bids, and at most the job's reserve — for one job, the lower of the
// next-best ask and the reserve, so truthful asks are a dominant strategy;
// second-price pays the next-best ask for the job (the reserve without
// one); first-price pays the ask. Each Award says which bound set its price
// (Basis) and why, in major units (Explanation). Money is int64 minor units
// throughout; the solver works in float64 on integer-valued surpluses,
// which are exact below 2⁵³.
//
// # Alternating offers
//
// For a job whose spec asks for "alternating-offers" (the object of the
// bargain is the whole job on one provider), the buyer bargains with each
// eligible provider (Rubinstein-style: the buyer opens,
// offers alternate, utilities are discounted by δᵗ, negotiation.rounds is
// the deadline) and takes the cheapest agreement. Each side concedes by a
// time-dependent tactic (boulware, linear, conceder) from its opening to its
// reservation price and accepts by the AC-next rule.
//
// # Stacked alternating offers
//
// For a job whose spec asks for "stacked-alternating-offers" (SAOP,
// Aydoğan et al. 2017) the object of the bargain is an allocation of the
// job's co-location groups to providers with a price per group. The buyer
// allocates each group to the provider whose opening quote rises least by
// taking it, splits its budget (its limits) and its opening over the groups
// in proportion to the quotes, and then the buyer and the providers
// involved move in a fixed order, round by round up to the one deadline
// negotiation.rounds: accept the standing offer, make a new one (a
// provider re-prices only its own groups), or walk away (a provider whose
// ask exceeds the buyer's limit for its groups; the buyer re-allocates
// them). Agreement is every party but the proposer accepting the standing
// offer; each provider is awarded its groups at their prices (stacked.go).
//
// # Diagnostics
//
// When a provider cannot offer, a Diagnostic names the provider, the job,
// the task where relevant and the constraint (region, residency, allow,
// deny, tee, attestation, currency, deadline, sla, cpu, memory, disk, gpu,
// budget, capacity, walk-away).
//
// # SLA terms
//
// A provider's SLAOffer says which money terms it accepts to be held to: the
// largest refund and slash percentages, the stake of its bond at risk per
// job, whether failing tenant tests slash, and the shortest deadline. A
// spec's settlement.sla is matched only with offers that cover it (a "sla"
// diagnostic otherwise), and each Award carries the agreed sla.Terms. Negotiate returns ErrNoOffers or ErrNoAgreement with
// the Result, so callers can show why.
package market
