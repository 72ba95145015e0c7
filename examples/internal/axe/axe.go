// Package axe runs axe-core (npm axe-core, installed from this directory's
// committed lockfile: npm ci --prefix examples/internal/axe) in a page of a
// browsertest Chromium and fails the test on any WCAG 2.0/2.1 A or AA
// violation. Without the package installed the check skips, unless
// CAPTCHAGATE_REQUIRE_BROWSER=1 is set, which makes that a failure.
package axe

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"
)

// Tags are the rules axe runs: WCAG 2.0 and 2.1, levels A and AA.
var Tags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa"}

// Script returns axe.min.js, or skips (fails under
// CAPTCHAGATE_REQUIRE_BROWSER=1) when it is not installed.
func Script(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "node_modules", "axe-core", "axe.min.js")
	b, err := os.ReadFile(p)
	if err != nil {
		msg := "axe-core is not installed; run: npm ci --prefix examples/internal/axe"
		if os.Getenv("CAPTCHAGATE_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (CAPTCHAGATE_REQUIRE_BROWSER=1 is set)")
		}
		t.Skip(msg)
	}
	return string(b)
}

// Violation is one rule axe found broken, with the nodes that break it.
type Violation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// Result is what one run found.
type Result struct {
	Violations []Violation
	Passes     int // rules that passed
	Incomplete int // rules axe could not decide (reviewed by hand)
}

// Run injects axe (once a page) into ctx's page, runs Tags' rules over the
// whole document and reports the result. state names the page's state in
// failures.
func Run(t *testing.T, ctx context.Context, state string) Result {
	t.Helper()
	script := Script(t)
	tags, _ := json.Marshal(Tags)
	expr := `(function () {
		if (!window.axe) { (0, eval)(` + jsString(script) + `); }
		return axe.run(document, { runOnly: { type: "tag", values: ` + string(tags) + ` }, resultTypes: ["violations"] })
			.then(function (r) { return JSON.stringify({ violations: r.violations, passes: r.passes.length, incomplete: r.incomplete.length }); });
	})()`
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe (%s): %v", state, err)
	}
	var out struct {
		Violations []Violation `json:"violations"`
		Passes     int         `json:"passes"`
		Incomplete int         `json:"incomplete"`
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("axe (%s): %v", state, err)
	}
	for _, v := range out.Violations {
		var where []string
		for _, n := range v.Nodes {
			b, _ := json.Marshal(n.Target)
			where = append(where, string(b)+": "+n.Summary)
		}
		t.Errorf("axe (%s): %s (%s): %s\n  %s", state, v.ID, v.Impact, v.Help, strings.Join(where, "\n  "))
	}
	t.Logf("axe (%s): %d violations, %d rules passed, %d incomplete", state, len(out.Violations), out.Passes, out.Incomplete)
	return Result{Violations: out.Violations, Passes: out.Passes, Incomplete: out.Incomplete}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Node is a node of Chromium's accessibility tree, as a screen reader gets
// it: role, name, description, live-region politeness, and its text (the
// names of its static-text descendants).
type Node struct {
	Role, Name, Description, Live, Text string
	Focused                             bool
}

// Tree returns the page's accessibility tree (accessibility.GetFullAXTree),
// without ignored nodes, in document order.
func Tree(t *testing.T, ctx context.Context) []Node {
	t.Helper()
	res, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatalf("accessibility tree: %v", err)
	}
	byID := map[accessibility.NodeID]*accessibility.Node{}
	for _, n := range res.Nodes {
		byID[n.NodeID] = n
	}
	var text func(n *accessibility.Node) string
	text = func(n *accessibility.Node) string {
		if str(n.Role) == "StaticText" {
			return str(n.Name)
		}
		var s string
		for _, c := range n.ChildIDs {
			if cn := byID[c]; cn != nil {
				s += text(cn)
			}
		}
		return s
	}
	var out []Node
	for _, n := range res.Nodes {
		if n.Ignored {
			continue
		}
		o := Node{Role: str(n.Role), Name: str(n.Name), Description: str(n.Description), Text: text(n)}
		for _, p := range n.Properties {
			switch p.Name {
			case accessibility.PropertyNameLive:
				o.Live = str(p.Value)
			case accessibility.PropertyNameFocused:
				o.Focused = str(p.Value) == "true"
			}
		}
		out = append(out, o)
	}
	return out
}

// Find returns the nodes of tree with role whose text or name contains s.
func Find(tree []Node, role, s string) []Node {
	var out []Node
	for _, n := range tree {
		if n.Role == role && (strings.Contains(n.Text, s) || strings.Contains(n.Name, s)) {
			out = append(out, n)
		}
	}
	return out
}

// Focused returns the focused node of tree: the innermost (the page's root
// says it is focused too while the page has focus); zero if none.
func Focused(tree []Node) Node {
	var f Node
	for _, n := range tree {
		if n.Focused {
			f = n
		}
	}
	return f
}

func str(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal([]byte(v.Value), &s) == nil {
		return s
	}
	return string(v.Value) // a boolean or number
}

// Live returns the politeness of the live region of tree whose text
// contains s ("" if none is live).
func Live(tree []Node, s string) string {
	for _, n := range tree {
		if n.Live != "" && n.Live != "off" && strings.Contains(n.Text, s) {
			return n.Live
		}
	}
	return ""
}
