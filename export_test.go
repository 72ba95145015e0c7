package captchagate

import "net/http"

// Exported for the black-box tests of canonical identities and of how the
// guard reads a request (canon_test.go, reading_test.go).

var (
	CanonFold  = canonFold
	CanonPhone = canonPhone
	SenderNorm = senderNorm
	DigitValue = digitValue
)

// KeyValue is the value the guard counts for src in r (whose body it reads
// as a guard does, bounded by 1 MiB, and puts back), whether there is one,
// and the error a source refusing the request set (CodeAmbiguousKey).
func KeyValue(src Source, r *http.Request) (string, bool, error) {
	in := input{r: r}
	if src.body {
		b, err := readBody(r, 1<<20)
		if err != nil {
			return "", false, err
		}
		in.body = b
	}
	v, ok := src.value(&in, nil)
	return string(v), ok, in.err
}

var FoldRep = foldRep
