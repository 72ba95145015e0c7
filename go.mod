module github.com/captchagate/captchagate

go 1.26.0

require (
	github.com/dchest/captcha v1.1.0
	github.com/stretchr/testify v1.12.1
	golang.org/x/text v0.44.0
	golang.org/x/time v0.16.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
