package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchagate/captchagate/examples/internal/axe"
	"github.com/captchagate/captchagate/examples/internal/browsertest"
)

// sliderLoaded is true once the slider's picture and piece have loaded.
const sliderLoaded = `(function(){var i=document.querySelector(".captchagate-board img:first-child"),p=document.querySelector("[data-cg-piece]");
	return !!i && !!p && i.complete && i.naturalWidth === 320 && p.complete && p.naturalWidth === 48;})()`

// sliderPage drives the slider page of d in ctx.
type sliderPage struct {
	t   *testing.T
	ctx context.Context
	d   *demo
}

func (p sliderPage) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	browsertest.Do(p.t, p.ctx, actions...)
}

func (p sliderPage) js(expr string) string {
	p.t.Helper()
	return browsertest.Eval[string](p.t, p.ctx, expr)
}

func (p sliderPage) clear() {
	p.t.Helper()
	browsertest.ClearState(p.t, p.ctx)
}

// open loads the slider page, sends one code to phone (the first send
// passes) and asks again, so the puzzle comes; it returns the puzzle's id.
func (p sliderPage) open(phone string) string {
	p.t.Helper()
	p.do(chromedp.Navigate(p.d.srv.URL+"/slider"), chromedp.SendKeys("#phone", phone))
	p.do(chromedp.Click("#go"))
	assert.Contains(p.t, browsertest.State(p.t, p.ctx, "ok"), "Code sent to "+phone)
	p.clear()
	p.do(chromedp.Click("#go"))
	browsertest.Wait(p.t, p.ctx, "the puzzle", sliderLoaded)
	return p.id()
}

// again asks for another code once the last was sent: the puzzle comes.
func (p sliderPage) again() string {
	p.t.Helper()
	p.clear()
	p.do(chromedp.Click("#go"))
	browsertest.Wait(p.t, p.ctx, "the puzzle", sliderLoaded)
	return p.id()
}

func (p sliderPage) id() string {
	p.t.Helper()
	src := p.js(`document.querySelector(".captchagate-board img").getAttribute("src")`)
	return strings.TrimSuffix(strings.TrimPrefix(src, "/slider/captcha/"), ".png")
}

func (p sliderPage) gap(id string) int {
	p.t.Helper()
	x, ok := p.d.slider.Gap(id)
	require.True(p.t, ok, "the browser loaded puzzle %s", id)
	return x
}

func (p sliderPage) active(attr string) bool {
	p.t.Helper()
	return browsertest.Eval[bool](p.t, p.ctx, `document.activeElement.hasAttribute("`+attr+`")`)
}

// keyboardTo moves the piece with the keyboard alone: from the page's
// button, Tab to the range, ArrowRight to x (in the picture's pixels).
func (p sliderPage) keyboardTo(x int) {
	p.t.Helper()
	p.do(chromedp.Focus("#go"), chromedp.KeyEvent(kb.Tab))
	require.True(p.t, p.active("data-cg-range"), "Tab from the form's button reaches the slider")
	p.do(chromedp.KeyEvent(strings.Repeat(kb.ArrowRight, x)))
	require.Equal(p.t, fmt.Sprint(x), p.js(`document.querySelector("[data-cg-range]").value`), "each arrow key is one pixel of the picture")
}

// accepted waits for the page's answer to a solve of a fresh puzzle: the
// code sent to phone, or the widget's refusal (an alert), which fails the
// test at once.
func (p sliderPage) accepted(phone, what string) {
	p.t.Helper()
	browsertest.Wait(p.t, p.ctx, "the answer to the solve", `document.getElementById("state").className === "ok" ||
		document.querySelector("[data-cg-message][role=alert]") !== null`)
	require.Equal(p.t, "", p.js(`(document.querySelector("[data-cg-message][role=alert]") || {}).textContent || ""`), "%s: refused", what)
	assert.Contains(p.t, browsertest.State(p.t, p.ctx, "ok"), "Code sent to "+phone, what)
}

// layout is where the slider's parts are drawn, in CSS pixels.
type layout struct {
	ScrollWidth, InnerWidth float64 // the document's and the viewport's
	Picture, Piece, Range   float64 // widths
	PieceLeft               float64 // from the picture's left edge
}

func (p sliderPage) layout() layout {
	p.t.Helper()
	return browsertest.Eval[layout](p.t, p.ctx, `(function(){
		var r = function (s) { return document.querySelector(s).getBoundingClientRect(); };
		var pic = r(".captchagate-board img:first-child"), piece = r("[data-cg-piece]"), range = r("[data-cg-range]");
		return { ScrollWidth: document.documentElement.scrollWidth, InnerWidth: window.innerWidth,
			Picture: pic.width, Piece: piece.width, Range: range.width, PieceLeft: piece.left - pic.left };
	})()`)
}

// The slider on a phone: at 320 and 360 CSS pixels wide the page does not
// scroll sideways, the board is drawn smaller than the picture's 320
// pixels (picture, piece and range alike), and a puzzle solved with the
// keyboard alone (Tab to the range, arrow keys to the gap, Enter) is
// accepted on the first attempt: the range counts the picture's pixels.
// At 320 px a puzzle solved by dragging the piece the gap's distance as
// drawn (x times the board's scale) is accepted too: the drag is converted
// back to the picture's pixels. At a desktop width the board keeps its 320
// pixels and the same keyboard solve passes. axe-core finds no WCAG 2.1
// A/AA violation at any width, in the puzzle, solved, and (at 320 px) the
// digits.
func TestSliderNarrowInBrowser(t *testing.T) {
	log := &verifyLog{}
	d := newDemoWith(t, demoOptions{wrap: log.wrap})
	ctx := browsertest.New(t, 120*time.Second)
	axe.Script(t) // skips (or fails under CAPTCHAGATE_REQUIRE_BROWSER=1) without axe-core
	shots := browsertest.NewShots(t, ctx, "slider-narrow")
	p := sliderPage{t: t, ctx: ctx, d: d}
	sent := 0
	sentX := func() float64 {
		t.Helper()
		all := log.all()
		require.Len(t, all, sent+1, "one verify for the solve")
		sent++
		var pt struct{ X, Y float64 }
		require.NoError(t, json.Unmarshal([]byte(all[len(all)-1]["point_json"]), &pt))
		return pt.X
	}

	for i, width := range []int64{320, 360, 640} {
		phone := fmt.Sprintf("152 0000 01%02d", i)
		p.do(chromedp.EmulateViewport(width, 720))
		id := p.open(phone)
		l := p.layout()
		t.Logf("%d px wide: picture drawn %.0f px wide, piece %.1f px, range %.0f px; document %.0f px in a %.0f px viewport",
			width, l.Picture, l.Piece, l.Range, l.ScrollWidth, l.InnerWidth)
		assert.Equal(t, float64(width), l.InnerWidth)
		assert.LessOrEqual(t, l.ScrollWidth, l.InnerWidth, "%d px wide: no sideways scrolling", width)
		scale := l.Picture / 320
		if width < 400 {
			assert.Less(t, l.Picture, 320.0, "%d px wide: the board is drawn smaller", width)
		} else {
			assert.Equal(t, 320.0, l.Picture, "at a desktop width the board keeps the picture's size")
		}
		assert.InDelta(t, 48*scale, l.Piece, 0.5, "the piece scales with the picture")
		assert.LessOrEqual(t, l.Range, l.Picture+2, "the range fits the board")
		shots.Take(fmt.Sprint(width, "-puzzle"))
		axe.Run(t, ctx, fmt.Sprint(width, " px: puzzle shown"))

		x := p.gap(id)
		p.keyboardTo(x)
		assert.InDelta(t, float64(x)*scale, p.layout().PieceLeft, 1, "%d px wide: the piece is drawn over the gap", width)
		p.do(chromedp.KeyEvent(kb.Enter))
		p.accepted(phone, fmt.Sprint(width, " px wide: the keyboard's answer is accepted on the first attempt"))
		assert.Equal(t, float64(x), sentX(), "the answer is in the picture's pixels")
		shots.Take(fmt.Sprint(width, "-sent"))
		axe.Run(t, ctx, fmt.Sprint(width, " px: solved"))

		if width != 320 {
			continue
		}
		// The mouse, at 320 px: press on the piece, move it the gap's
		// distance as drawn, release.
		id = p.again()
		x = p.gap(id)
		require.Greater(t, float64(x)*(1-scale), 5.0,
			"unconverted, the drag would miss the gap by more than the slider's tolerance")
		type rect struct{ X, Y, W, H float64 }
		r := browsertest.Eval[rect](t, ctx, `(function(){var b=document.querySelector("[data-cg-piece]").getBoundingClientRect();
			return {X:b.left,Y:b.top,W:b.width,H:b.height};})()`)
		held := func(e *input.DispatchMouseEventParams) { e.Button, e.Buttons = input.MouseButtonLeft, 1 }
		sx, sy := r.X+r.W/2, r.Y+r.H/2
		dx := float64(x) * scale
		p.do(chromedp.MouseEvent(chromedp.MouseMoved, sx, sy), chromedp.MouseEvent(chromedp.MousePressed, sx, sy, held, chromedp.ClickCount(1)))
		for i := 1; i <= 10; i++ {
			p.do(chromedp.MouseEvent(chromedp.MouseMoved, sx+dx*float64(i)/10, sy, held))
		}
		p.clear()
		p.do(chromedp.MouseEvent(chromedp.MouseReleased, sx+dx, sy, held, chromedp.ClickCount(1)))
		p.accepted(phone, "320 px wide: the drag's answer is accepted on the first attempt")
		assert.InDelta(t, float64(x), sentX(), 1, "the drag's answer is in the picture's pixels")

		// The digits, at 320 px: no sideways scrolling, no violation.
		p.again()
		p.do(chromedp.Click("[data-cg-use-digits]"))
		browsertest.Wait(t, ctx, "the digits", `(function(){var i=document.querySelector("[data-cg-digits-image]");
			return !!i && i.complete && i.naturalWidth === 240;})()`)
		assert.LessOrEqual(t, browsertest.Eval[float64](t, ctx, `document.documentElement.scrollWidth`), float64(width),
			"320 px wide, the digits: no sideways scrolling")
		shots.Take("320-digits")
		axe.Run(t, ctx, "320 px: digits")
	}
}

// The slider's states under axe-core (WCAG 2.1 A/AA) and in Chromium's
// accessibility tree: the puzzle shown, after a wrong answer (an alert,
// focus back on the range), the digits (the way without sight) and solved
// all have zero violations; the range is named and described by the
// message. Then the next puzzle is solved with the keyboard alone.
func TestSliderAccessibility(t *testing.T) {
	d := newDemo(t)
	ctx := browsertest.New(t, 120*time.Second)
	axe.Script(t) // skips (or fails under CAPTCHAGATE_REQUIRE_BROWSER=1) without axe-core
	p := sliderPage{t: t, ctx: ctx, d: d}

	id := p.open("152 0000 0200")
	tree := axe.Tree(t, ctx)
	focused := axe.Focused(tree)
	assert.Equal(t, "slider", focused.Role, "focus starts on the range")
	assert.Equal(t, "Piece position", focused.Name)
	assert.Contains(t, focused.Description, "Slide the piece into the gap")
	assert.Len(t, axe.Find(tree, "image", "Puzzle picture with a gap"), 1)
	axe.Run(t, ctx, "puzzle shown")

	// Enter at the start: the gap is never there, so this is wrong.
	require.Greater(t, p.gap(id), 5, "the gap is past the slider's tolerance")
	p.do(chromedp.KeyEvent(kb.Enter))
	browsertest.Wait(t, ctx, "a new puzzle", `document.querySelector("[data-cg-message][role=alert]") !== null && `+sliderLoaded+
		` && document.querySelector(".captchagate-board img").getAttribute("src") !== "/slider/captcha/`+id+`.png"`)
	tree = axe.Tree(t, ctx)
	assert.Len(t, axe.Find(tree, "alert", "not right"), 1, "the refusal is an alert")
	assert.Equal(t, "slider", axe.Focused(tree).Role, "focus is back on the range")
	axe.Run(t, ctx, "after a wrong answer")

	// The way without sight.
	id = p.id()
	p.do(chromedp.Click("[data-cg-use-digits]"))
	browsertest.Wait(t, ctx, "the digits", `(function(){var i=document.querySelector("[data-cg-digits-image]");
		return !!i && i.complete && i.naturalWidth === 240;})()`)
	focused = axe.Focused(axe.Tree(t, ctx))
	assert.Equal(t, "textbox", focused.Role)
	assert.Equal(t, "Type the digits you see or hear", focused.Name)
	axe.Run(t, ctx, "digits")
	digits, ok := d.slider.Digits(id)
	require.True(t, ok)
	p.do(chromedp.KeyEvent(digits), chromedp.KeyEvent(kb.Enter))
	assert.Contains(t, browsertest.State(t, ctx, "ok"), "Code sent to 152 0000 0200")
	axe.Run(t, ctx, "solved")

	// The puzzle itself, keyboard only.
	id = p.again()
	axe.Run(t, ctx, "puzzle shown again")
	p.keyboardTo(p.gap(id))
	p.do(chromedp.KeyEvent(kb.Enter))
	p.accepted("152 0000 0200", "the keyboard's answer is accepted on the first attempt")
	assert.False(t, browsertest.Eval[bool](t, ctx, `!!document.querySelector("[data-cg-range]")`), "the puzzle is gone")
	axe.Run(t, ctx, "solved by keyboard")
}
