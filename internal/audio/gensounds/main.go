// Command gensounds writes internal/audio/sounds.bin: the digit recordings
// and the beep of github.com/dchest/captcha (MIT, Copyright 2011-2014 Dmitry
// Chestnykh; see internal/audio/LICENSE.dchest), read from the sounds.go of
// the module version go.mod requires, as raw 8 kHz unsigned 8-bit PCM.
//
//	go generate ./internal/audio
//
// sounds.bin is a sequence of records: a 2-byte name ("en", "ru", ..., or
// "bp" for the beep), one byte (the digit 0-9; 0 for the beep), a
// little-endian uint32 length, then that many samples.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	out := "sounds.bin"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	dir, err := ModuleDir()
	if err != nil {
		log.Fatal(err)
	}
	b, err := Build(filepath.Join(dir, "sounds.go"))
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

// ModuleDir is the directory of the dchest/captcha version go.mod requires.
func ModuleDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/dchest/captcha").Output()
	if err != nil {
		return "", fmt.Errorf("go list github.com/dchest/captcha: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("github.com/dchest/captcha is not downloaded (go mod download)")
	}
	return dir, nil
}

// Build reads dchest's sounds.go and returns the contents of sounds.bin.
func Build(path string) ([]byte, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, err
	}
	vars := map[string]ast.Expr{}
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						vars[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	var out bytes.Buffer
	record := func(name string, digit byte, e ast.Expr) error {
		samples, err := byteList(e)
		if err != nil {
			return fmt.Errorf("%s %d: %w", name, digit, err)
		}
		out.WriteString(name)
		out.WriteByte(digit)
		out.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(samples))))
		out.Write(samples)
		return nil
	}
	m, ok := vars["digitSounds"].(*ast.CompositeLit)
	if !ok {
		return nil, errors.New("no digitSounds map literal")
	}
	for _, el := range m.Elts {
		kv := el.(*ast.KeyValueExpr)
		lang, err := strconv.Unquote(kv.Key.(*ast.BasicLit).Value)
		if err != nil || len(lang) != 2 {
			return nil, fmt.Errorf("language key %s", kv.Key.(*ast.BasicLit).Value)
		}
		digits := kv.Value.(*ast.CompositeLit).Elts
		if len(digits) != 10 {
			return nil, fmt.Errorf("%s has %d digits", lang, len(digits))
		}
		for d, e := range digits {
			if err := record(lang, byte(d), e); err != nil {
				return nil, err
			}
		}
	}
	if err := record("bp", 0, vars["beepSound"]); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func byteList(e ast.Expr) ([]byte, error) {
	cl, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, errors.New("not a composite literal")
	}
	b := make([]byte, len(cl.Elts))
	for i, el := range cl.Elts {
		lit, ok := el.(*ast.BasicLit)
		if !ok || lit.Kind != token.INT {
			return nil, fmt.Errorf("element %d is not an integer", i)
		}
		v, err := strconv.ParseUint(lit.Value, 0, 8)
		if err != nil {
			return nil, err
		}
		b[i] = byte(v)
	}
	return b, nil
}
