// Command trainer is Accord's example workload: it generates a labelled
// dataset, trains a logistic-regression classifier on it with gonum, and
// evaluates models, writing JSON results into an output directory (/out in
// a container). It is built statically and shipped as examples/images/trainer.tar.
//
//	trainer prepare --samples N --seed S            → dataset.csv
//	trainer train [--data FILE] [--samples N] [--epochs E] [--seed S] [--init MODEL]
//	                                                → model.json, metrics.json
//	trainer eval --model FILE --data FILE           → eval.json
//	trainer check --file F --metric M --min X       exit 0 if F's M ≥ X, else 1
//
// Every subcommand takes --out (default $ACCORD_OUTPUT_DIR, else /out).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: trainer prepare|train|eval|check [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "prepare":
		err = prepare(args)
	case "train":
		err = train(args)
	case "eval":
		err = eval(args)
	case "check":
		err = check(args)
	default:
		err = fmt.Errorf("%w: unknown subcommand %q", errUsage, cmd)
	}
	switch {
	case err == nil:
	case errors.Is(err, errBelow):
		fmt.Fprintln(os.Stderr, "trainer:", err)
		os.Exit(1)
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(os.Stderr, "trainer:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "trainer:", err)
		os.Exit(3)
	}
}

var (
	errUsage = errors.New("usage")
	errBelow = errors.New("below threshold")
)

func defaultOut() string {
	if d := os.Getenv("ACCORD_OUTPUT_DIR"); d != "" {
		return d
	}
	return "/out"
}
