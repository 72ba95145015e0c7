// Command backgrounds draws the slider puzzle's background pictures into
// slider/backgrounds (run it from the repository root: go run
// ./slider/internal/backgrounds). They are our own work, made of gradients,
// hills and shapes from a fixed seed, so the output is the same every run.
package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
)

const w, h = 640, 320

type palette struct{ sky0, sky1, hill0, hill1, accent color.RGBA }

var palettes = []palette{
	{rgb(0x1d3557), rgb(0x8ecae6), rgb(0x2a9d8f), rgb(0x264653), rgb(0xffb703)},
	{rgb(0xff7e5f), rgb(0xfeb47b), rgb(0x6a4c93), rgb(0x3d2c5e), rgb(0xfff1c1)},
	{rgb(0x0b132b), rgb(0x3a506b), rgb(0x5bc0be), rgb(0x1c2541), rgb(0xf4f1de)},
	{rgb(0x9bc53d), rgb(0xe8f1d0), rgb(0x5b8e7d), rgb(0x2f4858), rgb(0xe55934)},
	{rgb(0x48cae4), rgb(0xcaf0f8), rgb(0xe9c46a), rgb(0xbc6c25), rgb(0x023e8a)},
	{rgb(0x3c096c), rgb(0xff6d00), rgb(0x240046), rgb(0x10002b), rgb(0xffd60a)},
}

func rgb(v uint32) color.RGBA { return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255} }

func mix(a, b color.RGBA, t float64) color.RGBA {
	t = math.Max(0, math.Min(1, t))
	f := func(x, y uint8) uint8 { return uint8(float64(x)*(1-t) + float64(y)*t) }
	return color.RGBA{f(a.R, b.R), f(a.G, b.G), f(a.B, b.B), 255}
}

func main() {
	dir := "slider/backgrounds"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for i, p := range palettes {
		r := rand.New(rand.NewPCG(uint64(i)+1, 42))
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		// Sky.
		for y := range h {
			c := mix(p.sky0, p.sky1, float64(y)/h)
			for x := range w {
				img.SetRGBA(x, y, c)
			}
		}
		// Sun or moon, and shapes in the sky.
		circle(img, 80+r.Float64()*480, 40+r.Float64()*60, 24+r.Float64()*20, p.accent, 1)
		for range 14 {
			circle(img, r.Float64()*w, r.Float64()*h*0.6, 4+r.Float64()*18, mix(p.sky1, p.accent, r.Float64()), 0.35)
		}
		// Three layers of hills, the nearer darker; periodic in x so crops wrap.
		for layer := range 3 {
			base := h*0.45 + float64(layer)*h*0.14
			amp := 18 + r.Float64()*22
			k1, k2 := float64(1+r.IntN(3)), float64(3+r.IntN(4))
			ph1, ph2 := r.Float64()*2*math.Pi, r.Float64()*2*math.Pi
			top := mix(p.hill0, p.hill1, float64(layer)/2)
			for x := range w {
				t := float64(x) / w * 2 * math.Pi
				ridge := base + amp*math.Sin(k1*t+ph1) + amp*0.4*math.Sin(k2*t+ph2)
				for y := int(ridge); y < h; y++ {
					if y >= 0 {
						img.SetRGBA(x, y, mix(top, p.hill1, (float64(y)-ridge)/float64(h)*1.5))
					}
				}
			}
		}
		// Trees or stones on the nearest hill.
		for range 18 {
			x := r.Float64() * w
			y := h*0.8 + r.Float64()*h*0.15
			tri(img, x, y, 8+r.Float64()*10, 20+r.Float64()*30, mix(p.hill1, p.accent, 0.25))
		}
		name := filepath.Join(dir, fmt.Sprintf("bg%d.png", i))
		f, err := os.Create(name)
		if err != nil {
			log.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			log.Fatal(err)
		}
		f.Close()
	}
}

func circle(img *image.RGBA, cx, cy, rad float64, c color.RGBA, alpha float64) {
	for y := int(cy - rad - 1); y <= int(cy+rad+1); y++ {
		for x := int(cx - rad - 1); x <= int(cx+rad+1); x++ {
			xx := (x%w + w) % w
			if y < 0 || y >= h {
				continue
			}
			d := math.Hypot(float64(x)-cx, float64(y)-cy)
			if d <= rad {
				img.SetRGBA(xx, y, mix(img.RGBAAt(xx, y), c, alpha))
			}
		}
	}
}

func tri(img *image.RGBA, cx, base, half, height float64, c color.RGBA) {
	for y := int(base - height); y <= int(base); y++ {
		if y < 0 || y >= h {
			continue
		}
		t := (float64(y) - (base - height)) / height
		for x := int(cx - half*t); x <= int(cx+half*t); x++ {
			img.SetRGBA((x%w+w)%w, y, c)
		}
	}
}
