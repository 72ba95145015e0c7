package redistest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/internal/redistest"
)

// A Sentinel deployment fails over when its master dies: the sentinels
// report the replica, which answers as the master and has the master's
// data.
func TestSentinelFailover(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.SentinelOptions{})
	old := s.Master()
	require.Equal(t, s.Servers()[0], old)
	require.Len(t, s.Replicas(), 1)
	_, err := s.Do(old, "SET", "k", "v")
	require.NoError(t, err)
	n, err := s.Do(old, "WAIT", "1", "1000")
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	s.Kill(old)
	now := s.WaitFailover(old)
	assert.Equal(t, s.Servers()[1], now)
	assert.Equal(t, now, s.Master())
	v, err := s.Do(now, "GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "v", v, "the replica had the write")
	assert.False(t, s.FailoverAt().IsZero())
	assert.Empty(t, s.Replicas(), "the old master stays dead")

	// Restarted empty and pointed at the new master, the old master
	// replicates it, and the sentinels list it as its replica.
	s.Rejoin(old)
	require.Eventually(t, func() bool {
		v, err := s.Do(old, "GET", "k")
		return err == nil && v == "v"
	}, 30*time.Second, 20*time.Millisecond, "the old master replicates the new one")
	require.Eventually(t, func() bool { return slices.Equal(s.Replicas(), []string{old}) }, 30*time.Second,
		50*time.Millisecond, "the sentinels see it as the new master's replica")
}
