// Package logbuf batches log output: a busy gateway logs a line per HTTP
// request, and writing each line with its own write(2) cost ~4 % of the
// gateway's CPU under load (docs/BENCHMARKS.md). Lines are held for at most
// a short delay, and records at warning level or above are written at once.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Writer buffers whole writes (log lines) and writes them to the
// underlying writer when the buffer fills, when Delay has passed since the
// first unwritten line, on Flush and on Close. It is safe for concurrent use.
type Writer struct {
	out   io.Writer
	delay time.Duration
	limit int

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // pending delayed flush, nil when none
	closed bool
}

// New returns a Writer in front of out. Lines wait at most delay; more than
// limit buffered bytes are written at once.
func New(out io.Writer, delay time.Duration, limit int) *Writer {
	return &Writer{out: out, delay: delay, limit: limit}
}

// Write buffers p (one log line from slog's handlers). A Writer that is
// closed, or has no delay, writes straight through.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.delay <= 0 {
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= w.limit {
		return len(p), w.flushLocked()
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(w.delay, func() { _ = w.Flush() })
	}
	return len(p), nil
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	if cap(w.buf) > 4*w.limit { // a burst grew it: do not keep the memory
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	return err
}

// Close flushes and makes later writes go straight through (logging
// during the last moments of shutdown is not lost).
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	return w.flushLocked()
}

// Handler wraps a slog.Handler writing to w so that records at level or
// above reach the output at once, together with everything buffered
// before them.
func Handler(h slog.Handler, w *Writer, level slog.Level) slog.Handler {
	return &flushingHandler{Handler: h, w: w, level: level}
}

type flushingHandler struct {
	slog.Handler
	w     *Writer
	level slog.Level
}

func (h *flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= h.level {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h *flushingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &flushingHandler{Handler: h.Handler.WithAttrs(as), w: h.w, level: h.level}
}

func (h *flushingHandler) WithGroup(name string) slog.Handler {
	return &flushingHandler{Handler: h.Handler.WithGroup(name), w: h.w, level: h.level}
}
