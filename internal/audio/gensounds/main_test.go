package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// sounds.bin is what the generator makes of the dchest/captcha go.mod
// requires: regenerate it (go generate ./internal/audio) when that changes.
func TestSoundsBinIsGenerated(t *testing.T) {
	dir, err := ModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	want, err := Build(filepath.Join(dir, "sounds.go"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../sounds.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/audio/sounds.bin is stale: run go generate ./internal/audio")
	}
}
