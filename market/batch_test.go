package market

import (
	"context"
	"testing"
	"time"
)

func TestClearBatchSynthetic(t *testing.T) {
	dir := t.TempDir()
	jobsDir, provFile, err := WriteSynthetic(dir, 1, 40, 8)
	if err != nil {
		t.Fatal(err)
	}
	plans, names, err := LoadJobs(jobsDir)
	if err != nil {
		t.Fatal(err)
	}
	provs, err := LoadProviders(provFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ClearBatch(context.Background(), plans, names, provs, Options{TimeLimit: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("goods %d bids %d objective %v bound %v awards %d optimal %v timings %+v", b.Goods, b.Bids, b.Objective, b.Bound, len(b.Result.Awards), b.Result.Optimal, b.Timings)
}
