package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("trainer "+name, flag.ContinueOnError)
	out := fs.String("out", defaultOut(), "output directory")
	return fs, out
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	return nil
}

func prepare(args []string) error {
	fs, out := newFlags("prepare")
	samples := fs.Int("samples", 1000, "number of samples")
	seed := fs.Int64("seed", 1, "random seed")
	if err := parse(fs, args); err != nil {
		return err
	}
	d, err := generate(*samples, *seed)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(*out, "dataset.csv"))
	if err != nil {
		return err
	}
	if err := d.writeCSV(f); err != nil {
		f.Close()
		return err
	}
	fmt.Printf("wrote %d samples to %s\n", d.n(), f.Name())
	return f.Close()
}

func train(args []string) error {
	fs, out := newFlags("train")
	data := fs.String("data", "", "dataset CSV (generated when empty)")
	samples := fs.Int("samples", 1000, "samples to generate when --data is empty")
	epochs := fs.Int("epochs", 200, "gradient-descent epochs")
	seed := fs.Int64("seed", 1, "random seed for generated data")
	initPath := fs.String("init", "", "model.json to start from (fine-tuning a base model)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *epochs < 1 {
		return fmt.Errorf("%w: --epochs must be positive", errUsage)
	}
	var d *dataset
	var err error
	if *data != "" {
		d, err = readCSV(*data)
	} else {
		d, err = generate(*samples, *seed)
	}
	if err != nil {
		return err
	}
	var start *model
	if *initPath != "" {
		if start, err = readModel(*initPath); err != nil {
			return err
		}
		if len(start.Weights) != d.features() {
			return fmt.Errorf("base model has %d weights, data has %d features", len(start.Weights), d.features())
		}
	}
	m := fit(d, *epochs, learningRate, start)
	acc, loss := m.evaluate(d)
	metrics := map[string]any{"accuracy": acc, "loss": loss, "epochs": *epochs, "samples": d.n()}
	if err := writeJSON(*out, "model.json", m); err != nil {
		return err
	}
	if err := writeJSON(*out, "metrics.json", metrics); err != nil {
		return err
	}
	fmt.Printf("trained on %d samples for %d epochs: accuracy %.4f loss %.4f\n", d.n(), *epochs, acc, loss)
	return nil
}

func eval(args []string) error {
	fs, out := newFlags("eval")
	modelPath := fs.String("model", "", "model.json from train")
	data := fs.String("data", "", "dataset CSV")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *data == "" {
		return fmt.Errorf("%w: --model and --data are required", errUsage)
	}
	m, err := readModel(*modelPath)
	if err != nil {
		return err
	}
	d, err := readCSV(*data)
	if err != nil {
		return err
	}
	if len(m.Weights) != d.features() {
		return fmt.Errorf("model has %d weights, data has %d features", len(m.Weights), d.features())
	}
	acc, loss := m.evaluate(d)
	fmt.Printf("accuracy %.4f loss %.4f on %d samples\n", acc, loss, d.n())
	return writeJSON(*out, "eval.json", map[string]any{"accuracy": acc, "loss": loss})
}

func check(args []string) error {
	fs := flag.NewFlagSet("trainer check", flag.ContinueOnError)
	file := fs.String("file", "", "JSON file")
	metric := fs.String("metric", "", "dotted path of a number in the file, e.g. accuracy")
	min := fs.String("min", "", "minimum value")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" || *metric == "" || *min == "" {
		return fmt.Errorf("%w: --file, --metric and --min are required", errUsage)
	}
	threshold, err := strconv.ParseFloat(*min, 64)
	if err != nil {
		return fmt.Errorf("%w: --min: %v", errUsage, err)
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	for _, key := range strings.Split(*metric, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %q is not an object at %q", *file, *metric, key)
		}
		if v, ok = obj[key]; !ok {
			return fmt.Errorf("%s: no %q", *file, *metric)
		}
	}
	x, ok := v.(float64)
	if !ok {
		return fmt.Errorf("%s: %q is not a number", *file, *metric)
	}
	if x < threshold {
		return fmt.Errorf("%w: %s = %g < %g", errBelow, *metric, x, threshold)
	}
	fmt.Printf("ok: %s = %g ≥ %g\n", *metric, x, threshold)
	return nil
}

func writeJSON(dir, name string, v any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644)
}

// readModel reads a model.json that train wrote.
func readModel(path string) (*model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return &m, nil
}
