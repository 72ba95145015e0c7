module github.com/captchagate/captchagate/htmlform

go 1.26.0

require (
	github.com/captchagate/captchagate v0.0.0
	github.com/gorilla/sessions v1.4.0
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/gorilla/securecookie v1.1.2 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/text v0.44.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)

replace github.com/captchagate/captchagate => ../
