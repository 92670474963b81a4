module github.com/roapproxy/roapproxy

go 1.26.8

require (
	github.com/elazarl/goproxy v1.9.2 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)
