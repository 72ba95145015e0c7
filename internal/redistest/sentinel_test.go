package redistest_test

import (
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

	// Restarted, the old master comes back empty and the sentinels make it
	// a replica of the new one.
	s.Restart(old)
	require.Eventually(t, func() bool {
		v, err := s.Do(old, "GET", "k")
		return err == nil && v == "v"
	}, 90*time.Second, 20*time.Millisecond, "the old master replicates the new one (the sentinels convert it on their next INFO of it, every 10 s; slower on a loaded machine)")
	assert.Equal(t, []string{old}, s.Replicas())
}
