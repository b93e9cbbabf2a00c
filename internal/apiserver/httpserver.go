package apiserver

import (
	"net/http"
	"time"
)

// Limits bound what one connection may cost the server: a client that
// sends its headers or body slowly, reads the answer slowly, keeps an idle
// connection open or sends huge headers is cut off.
type Limits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration // the whole request, body included
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// DefaultLimits are `accord serve`'s: a 6 MiB upload at 100 KiB/s fits the
// read timeout.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       60 * time.Second,
	WriteTimeout:      60 * time.Second,
	IdleTimeout:       120 * time.Second,
	MaxHeaderBytes:    32 << 10,
}

// NewHTTPServer returns an http.Server for h with the given limits.
func NewHTTPServer(h http.Handler, l Limits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}
