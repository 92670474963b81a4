module github.com/roapproxy/roapproxy

go 1.26.8

require (
	github.com/elazarl/goproxy v1.9.2
	github.com/gorilla/websocket v1.5.3
	golang.org/x/crypto v0.58.0
	golang.org/x/sys v0.49.0
)

require (
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)
