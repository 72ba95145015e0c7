// Package demo holds what the example programs share: listening and saying
// where to open the demo.
package demo

import (
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Serve listens on addr, logs the URL to open, and serves h until the
// server fails.
func Serve(logger *slog.Logger, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	logger.Info("captchagate demo", "url", URL(ln.Addr()))
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	return srv.Serve(ln)
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
