// Package nodetest finds Node.js and an npm-installed client for the tests
// that drive a real client from npm. Without them those tests skip, unless
// CAPTCHAGATE_REQUIRE_BROWSER=1 is set (as CI does), which makes that a
// failure.
package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Need returns the node binary, or skips t (fails it under
// CAPTCHAGATE_REQUIRE_BROWSER=1) when node is missing or pkg is not
// installed in dir's node_modules; npmDir is the directory to name in the
// hint (the repository's path of dir).
func Need(t testing.TB, dir, pkg, npmDir string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	msg := ""
	switch {
	case err != nil:
		msg = "node is not installed (apt-get install npm)"
	default:
		if _, err := os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(pkg), "package.json")); err != nil {
			msg = pkg + " is not installed; run: npm ci --prefix " + npmDir
		}
	}
	if msg != "" {
		if os.Getenv("CAPTCHAGATE_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (CAPTCHAGATE_REQUIRE_BROWSER=1 is set)")
		}
		t.Skip(msg)
	}
	return node
}
