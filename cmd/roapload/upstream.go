package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// The upstream RI runs, by default, as a process of its own (the tool re-executes itself with
// upstreamEnv naming a file of request/response pairs). A real RI is never inside the client's
// process: an in-process upstream makes "direct" a round trip without a single process switch,
// a baseline that no deployment has and that no proxy process can approach.
const (
	upstreamEnv       = "ROAPLOAD_UPSTREAM_PAIRS"
	upstreamListenEnv = "ROAPLOAD_UPSTREAM_LISTEN"
)

// writePairs stores the payload's request → response table for the upstream process.
func writePairs(path string, pl *payload) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var n [4]byte
	for req, resp := range pl.byRequest {
		for _, b := range [][]byte{[]byte(req), resp} {
			binary.BigEndian.PutUint32(n[:], uint32(len(b)))
			w.Write(n[:])
			w.Write(b)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readPairs(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	next := func() ([]byte, error) {
		var n [4]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return nil, err
		}
		b := make([]byte, binary.BigEndian.Uint32(n[:]))
		_, err := io.ReadFull(r, b)
		return b, err
	}
	out := map[string][]byte{}
	for {
		req, err := next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		resp, err := next()
		if err != nil {
			return nil, fmt.Errorf("truncated pairs file: %w", err)
		}
		out[string(req)] = resp
	}
}

// runUpstreamProcess serves the pairs until SIGTERM.
func runUpstreamProcess() int {
	pairs, err := readPairs(os.Getenv(upstreamEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "upstream: %v\n", err)
		return 1
	}
	l, err := net.Listen("tcp", os.Getenv(upstreamListenEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "upstream: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: pairHandler(pairs), ReadHeaderTimeout: 10 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() { <-sig; _ = srv.Close() }()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "upstream: %v\n", err)
		return 1
	}
	return 0
}

// startUpstreamProcess writes the pairs into dir and starts the upstream process on a free port.
func startUpstreamProcess(pl *payload, dir string) (*upstream, error) {
	pairs := dir + "/pairs.bin"
	if err := writePairs(pairs, pl); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &proxyProc{out: &capBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(self)
	p.cmd.Env = append(os.Environ(), upstreamEnv+"="+pairs, upstreamListenEnv+"="+addr)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the upstream process: %w", err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	if err := p.waitReady(20*time.Second, addr); err != nil {
		p.kill()
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return &upstream{URL: "http://" + addr, proc: p}, nil
}
