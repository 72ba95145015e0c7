package demo

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"[::]:8080":      "http://localhost:8080/",
		"0.0.0.0:8081":   "http://localhost:8081/",
		"127.0.0.1:8082": "http://127.0.0.1:8082/",
		"[::1]:8083":     "http://[::1]:8083/",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		require.NoError(t, err)
		assert.Equal(t, want, URL(a), addr)
	}
}

// Serve answers until its context ends, then lets the request in flight
// finish and returns nil.
func TestServeShutsDownGracefully(t *testing.T) {
	t.Parallel()
	urls := make(chan string, 1)
	logger := slog.New(urlCatcher{urls})
	inFlight, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inFlight)
		<-release
		io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, logger, "127.0.0.1:0", h) }()
	u := <-urls
	body := make(chan string, 1)
	go func() {
		res, err := http.Get(u)
		if err != nil {
			body <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		body <- string(b)
	}()
	<-inFlight
	cancel() // the signal
	close(release)
	assert.Equal(t, "done", <-body, "the request in flight finished")
	require.NoError(t, <-served)
	_, err := http.Get(u)
	assert.Error(t, err, "the server no longer listens")
}

// urlCatcher is a slog handler that hands over the url attribute.
type urlCatcher struct{ urls chan<- string }

func (urlCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (c urlCatcher) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "url" {
			c.urls <- a.Value.String()
		}
		return true
	})
	return nil
}
func (c urlCatcher) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c urlCatcher) WithGroup(string) slog.Handler      { return c }
