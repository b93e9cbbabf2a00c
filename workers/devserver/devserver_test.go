package devserver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
)

func dial(t *testing.T, s *Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: s.Address(), Namespace: s.Namespace()})
	if err != nil {
		t.Fatalf("dial %s: %v", s.Address(), err)
	}
	return c
}

func searchAttributes(t *testing.T, c client.Client) map[string]enumspb.IndexedValueType {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	return resp.CustomAttributes
}

// An in-memory server registers the namespace and the custom search
// attributes; a file server keeps them across a restart on the same file.
func TestStartInMemoryAndFile(t *testing.T) {
	attrs := map[string]enumspb.IndexedValueType{"AccordTenant": enumspb.INDEXED_VALUE_TYPE_KEYWORD}
	mem, err := Start(Options{SearchAttributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, mem)
	if got := searchAttributes(t, c); got["AccordTenant"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
		t.Errorf("in-memory search attributes %v", got)
	}
	c.Close()
	mem.Stop()
	mem.Stop() // harmless

	db := filepath.Join(t.TempDir(), "temporal.db")
	for i := 0; i < 2; i++ {
		s, err := Start(Options{DatabaseFile: db, SearchAttributes: attrs})
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		c := dial(t, s)
		if got := searchAttributes(t, c); got["AccordTenant"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			t.Errorf("start %d: search attributes %v", i, got)
		}
		c.Close()
		s.Stop()
	}
}
