// Package mcp is Accord's agent interface: a Model Context Protocol server
// (the official Go SDK) that gives a software agent the job life cycle as
// typed tools — lint and compile a spec, quote it on the market, submit,
// watch, read logs, cancel, approve, fetch and verify the receipt, search
// the log, read a ledger statement and, when a model registry is
// configured, search and inspect models — with resources (a job's spec,
// plan and receipt, a ledger statement and the spec reference by URI) and
// a prompt that helps write a spec.
//
// Every tool acts as one principal (policies.Principal), exactly as the
// HTTP API does: job operations go through the same apiserver.Jobs
// implementation, another tenant's job is "not found", and an auditor's
// session lists only the read-only tools. Specs arrive as text and are
// parsed standalone: nothing in them is resolved against the server's
// files. A failed call is a tool error (isError) whose text is the CLI's
// JSON error object ({"error": {"class", "message", "exit_code"}}), with a
// fixed message per class unless the error is public (an
// apiserver.PublicError, a spec's positioned problems); details go to the
// server's log.
//
// The package imports no Temporal: `accord mcp` (stdio) and `accord serve`
// (streamable HTTP at /mcp, see Handler) give it the job system.
package mcp
