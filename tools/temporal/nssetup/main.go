// Command temporal-ns-setup prepares a namespace on a Temporal cluster for
// Accord: it waits until the frontend answers, registers the namespace
// (an existing one is kept), adds the custom search attributes the job
// workflow writes, and waits until the frontend serves both. It is what
// `temporal operator namespace create` and `temporal operator
// search-attribute create` do, without the Temporal CLI.
//
// Usage:
//
//	temporal-ns-setup -address 127.0.0.1:7233 -namespace default -retention 24h \
//	    -search-attribute AccordTenant=Keyword -search-attribute AccordSpec=Keyword
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// attrFlags collect repeated -search-attribute NAME=TYPE flags.
type attrFlags map[string]enumspb.IndexedValueType

func (a attrFlags) String() string { return fmt.Sprint(map[string]enumspb.IndexedValueType(a)) }

func (a attrFlags) Set(v string) error {
	name, typ, ok := strings.Cut(v, "=")
	if !ok || name == "" || len(name) > 64 {
		return fmt.Errorf("want NAME=TYPE, got %q", v)
	}
	t, ok := enumspb.IndexedValueType_shorthandValue[typ]
	if !ok || t == 0 {
		return fmt.Errorf("unknown search attribute type %q (Keyword, Text, Int, Double, Bool, Datetime, KeywordList)", typ)
	}
	a[name] = enumspb.IndexedValueType(t)
	return nil
}

func main() {
	address := flag.String("address", "127.0.0.1:7233", "frontend host:port")
	namespace := flag.String("namespace", "default", "namespace to register")
	retention := flag.Duration("retention", 24*time.Hour, "workflow execution retention")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	attrs := attrFlags{}
	flag.Var(attrs, "search-attribute", "custom search attribute NAME=TYPE (repeatable)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := setup(ctx, *address, *namespace, *retention, attrs); err != nil {
		fmt.Fprintln(os.Stderr, "temporal-ns-setup:", err)
		os.Exit(1)
	}
}

func setup(ctx context.Context, address, namespace string, retention time.Duration, attrs attrFlags) error {
	c, err := dial(ctx, address)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := register(ctx, c, namespace, retention); err != nil {
		return err
	}
	if err := addAttributes(ctx, c, namespace, attrs); err != nil {
		return err
	}
	return waitServed(ctx, c, namespace, attrs)
}

// dial retries until the frontend answers a health check.
func dial(ctx context.Context, address string) (client.Client, error) {
	for {
		c, err := client.DialContext(ctx, client.Options{HostPort: address, Namespace: "temporal-system"})
		if err == nil {
			return c, nil
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return nil, fmt.Errorf("frontend %s: %w", address, err)
		}
	}
}

func register(ctx context.Context, c client.Client, namespace string, retention time.Duration) error {
	for {
		_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        namespace,
			WorkflowExecutionRetentionPeriod: durationpb.New(retention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err == nil || errors.As(err, &exists) {
			return nil
		}
		if !retryable(err) {
			return fmt.Errorf("register namespace %s: %w", namespace, err)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return fmt.Errorf("register namespace %s: %w", namespace, err)
		}
	}
}

func addAttributes(ctx context.Context, c client.Client, namespace string, attrs attrFlags) error {
	if len(attrs) == 0 {
		return nil
	}
	for {
		have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
		if err == nil {
			missing := map[string]enumspb.IndexedValueType{}
			for name, typ := range attrs {
				got, ok := have.GetCustomAttributes()[name]
				if ok && got != typ {
					return fmt.Errorf("search attribute %s exists as %v, want %v", name, got, typ)
				}
				if !ok {
					missing[name] = typ
				}
			}
			if len(missing) == 0 {
				return nil
			}
			_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
			var exists *serviceerror.AlreadyExists
			if err == nil || errors.As(err, &exists) {
				continue // list again to check the types
			}
		}
		if !retryable(err) {
			return fmt.Errorf("search attributes of %s: %w", namespace, err)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return fmt.Errorf("search attributes of %s: %w", namespace, err)
		}
	}
}

// waitServed waits until the frontend answers a visibility query that
// names every search attribute in the namespace: then jobs can start.
func waitServed(ctx context.Context, c client.Client, namespace string, attrs attrFlags) error {
	q := make([]string, 0, len(attrs))
	for name := range attrs {
		q = append(q, fmt.Sprintf("%s = 'probe'", name))
	}
	for {
		_, err := c.WorkflowService().CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: namespace, Query: strings.Join(q, " AND "),
		})
		if err == nil {
			return nil
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return fmt.Errorf("namespace %s not served: %w", namespace, err)
		}
	}
}

// retryable: the cluster is still starting (or the namespace cache has not
// caught up).
func retryable(err error) bool {
	var unavailable *serviceerror.Unavailable
	var notFound *serviceerror.NamespaceNotFound
	var deadline *serviceerror.DeadlineExceeded
	return errors.As(err, &unavailable) || errors.As(err, &notFound) || errors.As(err, &deadline)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
