// Package specs reads Accord's Markdown specs: documents that people read as
// prose and that Accord executes as contracts. It parses, composes,
// normalises and validates a spec (Load), and compiles it into the plan a
// workflow executes (Compile).
//
// # Format
//
// A spec is a Markdown file. Accord reads two kinds of machine content and
// ignores everything else (prose, other code blocks, HTML):
//
//   - YAML front matter, between "---" lines at the very top: identity
//     (accord, name, version, tenant, owner, description, labels, tags) and
//     composition (extends, imports).
//   - Fenced ```yaml blocks under the well-known level-2 headings "## Tasks",
//     "## Defaults", "## Placement", "## Budget", "## Negotiation",
//     "## Verification", "## Settlement" and "## Approval" (case-insensitive).
//     A section runs to the next level-1 or level-2 heading; several blocks
//     in one section are merged, and a key defined twice is an error.
//     yaml blocks under other headings are prose, except under a heading
//     that looks like a misspelt section name, which is reported.
//
// the README's spec reference documents every field, its type, unit and default.
//
// # Units
//
// Quantities are normalised to integers: CPU to millicores ("500m", "2",
// "0.5"), sizes to bytes ("16GiB", "512Mi" binary; "1G", "1GB" SI; plain
// byte counts), durations to nanoseconds ("90s", "1h30m", "1d"; units d, h,
// m, s, ms, largest first) and money to integer minor units of a currency.
// Negative and overflowing quantities are errors.
//
// # Composition
//
// "extends: base.md" lays the spec over another file: mappings merge key by
// key (recursively, so a task may override one resource), scalars and
// lists are replaced. "imports: {alias: child.md}" loads a complete child
// spec and adds its tasks as "alias.task" (tests as "alias.test"); the
// child's placement, budget and settlement are not imported, and a child
// placement stricter than the parent's is reported as a conflict. Cycles
// through extends and imports are reported with the chain of files. Paths
// are relative to the file that names them; oci-archive and input paths
// from extended and imported files are rebased onto the composed spec's
// directory, so Spec.Resolve works for every task.
//
// # Errors
//
// Every problem is reported, all at once, as an Error at "file:line:col"
// (ErrorList, which wraps ErrInvalid). Input is bounded: files over
// MaxFileSize (4 MiB), invalid UTF-8, NUL bytes, YAML aliases and merge keys
// (no alias bombs), values nested deeper than 32 levels, unknown keys (with
// a "did you mean" suggestion), duplicate task names, unknown or cyclic
// depends_on, and "from:" references to unknown tasks or outputs are all
// errors, never panics.
//
// # Digests
//
// The document digest is sha256 of the file's exact bytes: what a signature
// covers. The contract digest is sha256 of CanonicalJSON(spec): the
// composed, normalised machine content with sorted keys and set-like lists
// sorted; prose and positions are not part of it. A prose edit keeps the
// contract digest; any change of terms changes it.
//
// # Plans
//
// Compile orders tasks topologically (ties by name), assigns DAG levels,
// finds the critical path by max_duration (ties by name), annotates each
// task with trust facts (image pinning, TEE, attestation, how each input is
// pinned) and data-flow edges ("task:path" it consumes). Plan.MaxCost is the
// budget cap, budget.max_price: the most the job can cost, across every task
// and retry, since the market rejects bids above it and settlement never
// pays more. Plan.Envelope is the worst-case resource use (every attempt of
// every task running its full max_duration) and Plan.ReferenceCost prices it
// at the RefPrice* rates, as a check that the cap is plausible.
package specs
