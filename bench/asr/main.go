// Command asr renders Digits captchas' sounds for a speech-recognition
// check of the audio (bench/asr.sh): n WAV files and, beside each, the
// digits it speaks. It uses only captchagate's exported Digits.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/captchagate/captchagate"
)

func main() {
	n := flag.Int("n", 50, "captchas to render")
	out := flag.String("out", "asr-out", "directory for the WAV files")
	lang := flag.String("lang", "en", "language of the sound")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	d := captchagate.Digits{}
	for i := range *n {
		secret, err := d.Issue(captchagate.IssueInfo{Now: time.Now(), Expires: time.Now().Add(time.Minute)})
		if err != nil {
			log.Fatal(err)
		}
		name := filepath.Join(*out, fmt.Sprintf("%03d", i))
		f, err := os.Create(name + ".wav")
		if err != nil {
			log.Fatal(err)
		}
		if _, err := d.Render(f, fmt.Sprintf("asr%03d", i), secret, "wav", *lang); err != nil {
			log.Fatal(err)
		}
		f.Close()
		digits := make([]byte, 0, 6)
		for _, b := range secret[:6] {
			digits = append(digits, '0'+b)
		}
		if err := os.WriteFile(name+".txt", append(digits, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
