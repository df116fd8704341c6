//go:build !linux

package main

import (
	"context"
	"errors"
	"time"
)

// defaultFanoutReader is the fan-out subscriber implementation used unless
// -fanout-reader says otherwise: the epoll reader needs Linux.
const defaultFanoutReader = "http"

// haveEpoll says whether -fanout-reader epoll is available.
const haveEpoll = false

// epollReadBuf mirrors the Linux read buffer size so callers compile.
const epollReadBuf = 64 << 10

var errNoEpoll = errors.New("-fanout-reader epoll needs Linux; use http")

// epollReader is the Linux-only raw-socket reader (see sse_epoll_linux.go).
type epollReader struct{}

func newEpollReader(context.Context, string, int, int) (*epollReader, error) {
	return nil, errNoEpoll
}

func (*epollReader) subscribe(context.Context, gwStream, func(string, time.Time)) error {
	return errNoEpoll
}

func (*epollReader) close() error { return nil }
