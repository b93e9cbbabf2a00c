package local

import (
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement/sweep"
)

// Sweeper is an escrow sweeper over this host's ledger, quota and
// provenance: it reads the home's attestations (trusted by the home's trust
// store, read at each sweep), attests with the worker's key and settles at
// the host's platform fee, as the host's settle activity does. jobs tells it
// which workflows still run; after is the minimum age of a hold (0:
// sweep.DefaultAfter).
func (l *Host) Sweeper(jobs sweep.JobStates, after time.Duration) *sweep.Sweeper {
	home := l.home
	return &sweep.Sweeper{
		Ledger: l.Ledger, Jobs: jobs, Attestor: l.Recorder, Quota: l.Store, After: after, FeeBP: l.feeBP,
		Evidence: sweep.Attestations{Store: l.Provenance, Trust: func() (*provenance.TrustStore, error) {
			return provenance.LoadTrustStore(provenance.DefaultTrustPath(home))
		}},
	}
}
