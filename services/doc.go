// Package services is the data plane of Accord deployments: the
// per-endpoint reverse proxy that load-balances requests across a
// deployment's ready replicas and splits them for a canary, the
// measurements (request success and latency percentiles per window) that
// gate rollouts and decide the SLA, HTTP probes, and the CNI network that
// gives each replica its own network namespace with an address the host
// can reach.
//
// The deployment workflow (workflows/deployment.go) drives it through
// activities; nothing here imports Temporal. Every operation that a
// retried activity may repeat is idempotent by name: an endpoint by its
// name, routes by replacement, a measurement window by its cut key, a
// network attachment by its replica ID.
package services

import "errors"

// Sentinel errors.
var (
	// ErrNoReplica: no ready replica can take the request.
	ErrNoReplica = errors.New("services: no ready replica")
	// ErrInvalid: a malformed endpoint, route or network request (permanent).
	ErrInvalid = errors.New("services: invalid request")
	// ErrNotFound: no endpoint or attachment under that name.
	ErrNotFound = errors.New("services: not found")
	// ErrNetwork: the CNI plugins or the namespace tools failed.
	ErrNetwork = errors.New("services: network")
)
