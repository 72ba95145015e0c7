// Package demo holds what the example programs share: listening, saying
// where to open the demo, and shutting down gracefully.
package demo

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Serve listens on addr, logs the URL to open, and serves h until ctx ends
// (main passes signal.NotifyContext's), then shuts the server down,
// waiting up to 5 seconds for requests in flight, and returns nil; or it
// returns the error the server failed with. After it returns no handler
// runs, so the caller can flush and close its stores.
func Serve(ctx context.Context, logger *slog.Logger, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	logger.Info("captchagate demo", "url", URL(ln.Addr()))
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("captchagate demo: shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// URL is the URL to open for a server listening on addr: an unspecified
// address (":8080" listens on all of them) is reached at localhost.
func URL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
