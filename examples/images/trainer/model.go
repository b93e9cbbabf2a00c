package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

const (
	numFeatures  = 4
	learningRate = 0.5
	// eps keeps log() finite in the cross-entropy loss.
	eps = 1e-12
)

// dataset is a design matrix with one row per sample and 0/1 labels.
type dataset struct {
	x *mat.Dense
	y []float64
}

func (d *dataset) n() int        { r, _ := d.x.Dims(); return r }
func (d *dataset) features() int { _, c := d.x.Dims(); return c }

// generate draws two Gaussian classes whose means differ along every
// feature, so a linear model separates them well but not perfectly.
func generate(samples int, seed int64) (*dataset, error) {
	if samples < 2 {
		return nil, fmt.Errorf("%w: --samples must be at least 2", errUsage)
	}
	src := rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)
	norm := distuv.Normal{Mu: 0, Sigma: 1, Src: src}
	r := rand.New(src)
	x := mat.NewDense(samples, numFeatures, nil)
	y := make([]float64, samples)
	for i := range samples {
		label := float64(r.IntN(2))
		y[i] = label
		for j := range numFeatures {
			shift := (2*label - 1) * (0.6 + 0.2*float64(j))
			x.Set(i, j, norm.Rand()+shift)
		}
	}
	return &dataset{x: x, y: y}, nil
}

func (d *dataset) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := make([]string, 0, d.features()+1)
	for j := range d.features() {
		header = append(header, fmt.Sprintf("x%d", j+1))
	}
	if err := cw.Write(append(header, "label")); err != nil {
		return err
	}
	row := make([]string, d.features()+1)
	for i := range d.n() {
		for j := range d.features() {
			row[j] = strconv.FormatFloat(d.x.At(i, j), 'g', 10, 64)
		}
		row[d.features()] = strconv.FormatFloat(d.y[i], 'g', -1, 64)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func readCSV(path string) (*dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 || len(recs[0]) < 2 {
		return nil, fmt.Errorf("%s: need a header, at least one row and two columns", path)
	}
	cols := len(recs[0]) - 1
	rows := recs[1:]
	x := mat.NewDense(len(rows), cols, nil)
	y := make([]float64, len(rows))
	for i, rec := range rows {
		for j := range cols + 1 {
			v, err := strconv.ParseFloat(rec[j], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: row %d column %d: %w", path, i+2, j+1, err)
			}
			if j == cols {
				if v != 0 && v != 1 {
					return nil, fmt.Errorf("%s: row %d: label must be 0 or 1", path, i+2)
				}
				y[i] = v
			} else {
				x.Set(i, j, v)
			}
		}
	}
	return &dataset{x: x, y: y}, nil
}

// model is a logistic-regression classifier: p(y=1|x) = σ(w·x + b).
type model struct {
	Weights []float64 `json:"weights"`
	Bias    float64   `json:"bias"`
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// fit runs full-batch gradient descent on the mean cross-entropy loss,
// from start's weights when given (fine-tuning), else from zero.
func fit(d *dataset, epochs int, rate float64, start *model) model {
	n, k := d.x.Dims()
	w := mat.NewVecDense(k, nil)
	var b float64
	if start != nil {
		w = mat.NewVecDense(k, append([]float64(nil), start.Weights...))
		b = start.Bias
	}
	z := mat.NewVecDense(n, nil)
	resid := mat.NewVecDense(n, nil)
	grad := mat.NewVecDense(k, nil)
	for range epochs {
		z.MulVec(d.x, w)
		for i := range n {
			resid.SetVec(i, sigmoid(z.AtVec(i)+b)-d.y[i])
		}
		grad.MulVec(d.x.T(), resid)
		w.AddScaledVec(w, -rate/float64(n), grad)
		b -= rate * floats.Sum(resid.RawVector().Data) / float64(n)
	}
	return model{Weights: append([]float64(nil), w.RawVector().Data...), Bias: b}
}

// evaluate returns the accuracy and mean cross-entropy loss on d.
func (m model) evaluate(d *dataset) (accuracy, loss float64) {
	n, _ := d.x.Dims()
	w := mat.NewVecDense(len(m.Weights), append([]float64(nil), m.Weights...))
	z := mat.NewVecDense(n, nil)
	z.MulVec(d.x, w)
	correct := 0
	for i := range n {
		p := sigmoid(z.AtVec(i) + m.Bias)
		if (p >= 0.5) == (d.y[i] == 1) {
			correct++
		}
		loss -= d.y[i]*math.Log(p+eps) + (1-d.y[i])*math.Log(1-p+eps)
	}
	return float64(correct) / float64(n), loss / float64(n)
}
