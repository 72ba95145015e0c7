package captchagate

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fillOp sets every field of op to a value other than its zero value, as a
// slot of the pooled ev.opsBuf may hold from an earlier request.
func fillOp(t *testing.T, op *Op) {
	t.Helper()
	v := reflect.ValueOf(op).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Now()))
		case f.Type() == reflect.TypeFor[error]():
			f.Set(reflect.ValueOf(errors.New("stale")))
		case f.CanInt():
			f.SetInt(7)
		case f.CanUint():
			f.SetUint(7)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Kind() == reflect.String:
			f.SetString("stale")
		default:
			t.Fatalf("Op.%s: a field of a kind fillOp does not know; addOp must blank it too", v.Type().Field(i).Name)
		}
	}
}

// addOp reuses ev.opsBuf's slots without clearing them whole (dropOps
// leaves their plain fields): it must still hand out a blank Op, whatever
// fields Op gains.
func TestAddOpBlanksAReusedSlot(t *testing.T) {
	t.Parallel()
	ev := getEval()
	defer putEval(ev)
	for range 3 {
		ev.ops = ev.ops[:2]
		fillOp(t, &ev.ops[0])
		fillOp(t, &ev.ops[1])
		ev.dropOps()
		for j, op := range ev.ops[:2] {
			assert.Empty(t, op.Key, "op %d: dropOps keeps the key", j)
			assert.NoError(t, op.Err, "op %d: dropOps keeps the error", j)
			assert.Zero(t, op.Reset, "op %d: dropOps keeps the time", j)
		}
		require.Empty(t, ev.ops)
		for j := range 2 {
			op := ev.addOp(failureCount, j)
			assert.Zero(t, *op, "op %d: addOp hands out a slot with an earlier request's fields", j)
		}
	}
	// Past the pooled slots, addOp appends.
	for j := len(ev.ops); j < 2*len(ev.opsBuf); j++ {
		assert.Zero(t, *ev.addOp(sendRate, 0))
	}
	assert.Len(t, ev.notes, len(ev.ops))
}
