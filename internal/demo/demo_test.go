package demo

import (
	"net"
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
