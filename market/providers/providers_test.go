package providers

import (
	"context"
	"math"
	"testing"
)

func TestLocalPoolOvercommit(t *testing.T) {
	ctx := context.Background()
	base, err := (&LocalPool{Home: t.TempDir()}).Profile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	over, err := (&LocalPool{Home: t.TempDir(), Overcommit: 4}).Profile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if over.Free.MilliCPU != 4*base.Free.MilliCPU || over.Free.MemoryBytes != 4*base.Free.MemoryBytes {
		t.Errorf("overcommit 4: %+v, host %+v", over.Free, base.Free)
	}
	if over.Free.DiskBytes > 2*base.Free.DiskBytes {
		t.Errorf("disk is not overcommitted: %d vs %d", over.Free.DiskBytes, base.Free.DiskBytes)
	}
	for _, bad := range []float64{0.5, -1, math.NaN()} {
		if _, err := (&LocalPool{Home: t.TempDir(), Overcommit: bad}).Profile(ctx); err == nil {
			t.Errorf("overcommit %g accepted", bad)
		}
	}
}
