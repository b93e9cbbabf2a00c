package stack

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// UI is the Temporal Web UI (github.com/temporalio/ui-server, assets
// embedded) served next to the embedded server.
type UI struct {
	srv  *uiserver.Server
	Addr string
}

// StartUI serves the Web UI on host:port for the frontend at temporalAddr
// and waits until it answers.
func StartUI(host string, port int, temporalAddr string) (*UI, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if l, err := net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("stack: ui port: %w", err)
	} else {
		l.Close()
	}
	srv := uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
		Host:                host,
		Port:                port,
		TemporalGRPCAddress: temporalAddr,
		EnableUI:            true,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
		DisableNewsFetch:    true,
	}))
	errc := make(chan error, 1)
	go func() { errc <- srv.Start() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errc:
			return nil, fmt.Errorf("stack: ui: %w", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return &UI{srv: srv, Addr: addr}, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.Stop()
	return nil, errors.New("stack: ui did not answer within 10s")
}

// Stop stops the UI server.
func (u *UI) Stop() { u.srv.Stop() }
