//go:build !race

package slider_test

const raceEnabled = false
