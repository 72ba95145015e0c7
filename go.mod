module github.com/captchagate/captchagate

go 1.26.8

require (
	github.com/dchest/captcha v1.1.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/time v0.16.0 // indirect
)
