// Command server is Accord's example model server: a small HTTP service
// that scores the sentiment of a text with a word-weight model, built
// statically and shipped as examples/images/server.tar for deployments.
//
//	server [--listen :8080] [--model FILE] [--version V] [--fail-rate F] [--delay D]
//
//	GET  /healthz      200 "ok" (readiness and liveness)
//	GET  /version      the --version string
//	POST /v1/predict   {"text": "..."} → {"label": "positive", "score": 0.8, "version": V}
//
// --fail-rate answers that share of predictions with 500 (a broken release
// for canary tests); --delay adds latency to each prediction. --model reads
// a JSON object of word → weight (a model mounted from the exchange);
// without it a built-in lexicon is used.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
)

// maxBody bounds a prediction request.
const maxBody = 64 << 10

// builtin is the default word-weight model.
var builtin = map[string]float64{
	"good": 1, "great": 1.5, "excellent": 2, "love": 1.5, "fine": 0.5, "happy": 1,
	"bad": -1, "terrible": -2, "awful": -1.5, "hate": -1.5, "poor": -1, "sad": -1,
}

type server struct {
	weights  map[string]float64
	version  string
	failRate float64
	delay    time.Duration
	served   atomic.Int64
}

func main() {
	listen := flag.String("listen", ":8080", "address to listen on")
	model := flag.String("model", "", "JSON file of word → weight (default: built-in lexicon)")
	version := flag.String("version", "1", "version string reported in answers")
	failRate := flag.Float64("fail-rate", 0, "share of predictions answered with 500 (0 to 1)")
	delay := flag.Duration("delay", 0, "added latency per prediction")
	flag.Parse()
	s := &server{weights: builtin, version: *version, failRate: *failRate, delay: *delay}
	if *model != "" {
		w, err := loadModel(*model)
		if err != nil {
			log.Fatalf("server: %v", err)
		}
		s.weights = w
	}
	if s.failRate < 0 || s.failRate > 1 || math.IsNaN(s.failRate) {
		log.Fatalf("server: --fail-rate %v must be between 0 and 1", s.failRate)
	}
	srv := &http.Server{Addr: *listen, Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	log.Printf("server: version %s listening on %s", s.version, *listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("server: %v", err)
	}
}

func loadModel(path string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	var w map[string]float64
	if err := json.NewDecoder(io.LimitReader(f, 16<<20)).Decode(&w); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return w, nil
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s.version+"\n") })
	mux.HandleFunc("POST /v1/predict", s.predict)
	return mux
}

type request struct {
	Text string `json:"text"`
}

type answer struct {
	Label   string  `json:"label"`
	Score   float64 `json:"score"`
	Version string  `json:"version"`
}

func (s *server) predict(w http.ResponseWriter, r *http.Request) {
	s.served.Add(1)
	// Every answer, failures included, says which version gave it.
	w.Header().Set("X-Model-Version", s.version)
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if s.failRate > 0 && rand.Float64() < s.failRate {
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	var req request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	score := s.score(req.Text)
	label := "neutral"
	switch {
	case score > 0:
		label = "positive"
	case score < 0:
		label = "negative"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer{Label: label, Score: score, Version: s.version})
}

// score is tanh of the summed word weights.
func (s *server) score(text string) float64 {
	var sum float64
	for _, word := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
		sum += s.weights[word]
	}
	return math.Round(math.Tanh(sum)*1000) / 1000
}
