package prosody

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

const (
	logRingLines   = 2000
	maxPartialLine = 64 << 10

	// Prosody 0.12 keeps running when it cannot bind a port; these log
	// lines are how startup tells "our server is listening" from "someone
	// else answers on that port".
	portFailureMarker = "Failed to open server port"
	c2sActiveMarker   = "Activated service 'c2s' on ["
	// modulemanager logs these when an auth provider module (e.g.
	// mod_auth_xmppgw_jwt without a secret) fails to load or initialise.
	authLoadMarker = "Unable to load module 'auth_"
	authInitMarker = "Error initializing module 'auth_"
)

// logRing keeps the last lines of Prosody's output and counts the port
// events startup waits for. It is shared by all runs of one Server.
type logRing struct {
	mu      sync.Mutex
	lines   []string // circular once full
	next    int
	full    bool
	partial []byte
	counts  logCounts
}

// logCounts are how often the lines startup watches for have been seen.
type logCounts struct {
	portFailures int // portFailureMarker
	c2sActive    int // c2sActiveMarker
	authErrors   int // authLoadMarker or authInitMarker
}

func newLogRing() *logRing {
	return &logRing{lines: make([]string, logRingLines)}
}

func (r *logRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data := p
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			r.partial = append(r.partial, data...)
			if len(r.partial) > maxPartialLine {
				r.addLocked(string(r.partial))
				r.partial = r.partial[:0]
			}
			break
		}
		r.partial = append(r.partial, data[:i]...)
		r.addLocked(string(bytes.TrimRight(r.partial, "\r")))
		r.partial = r.partial[:0]
		data = data[i+1:]
	}
	return len(p), nil
}

// flush ends a partial last line (called when a run of Prosody ended).
func (r *logRing) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.partial) > 0 {
		r.addLocked(string(r.partial))
		r.partial = r.partial[:0]
	}
}

func (r *logRing) addLocked(line string) {
	if strings.Contains(line, portFailureMarker) {
		r.counts.portFailures++
	}
	if strings.Contains(line, c2sActiveMarker) {
		r.counts.c2sActive++
	}
	if strings.Contains(line, authLoadMarker) || strings.Contains(line, authInitMarker) {
		r.counts.authErrors++
	}
	r.lines[r.next] = line
	r.next++
	if r.next == len(r.lines) {
		r.next, r.full = 0, true
	}
}

// counters returns how often the watched lines have been seen so far.
func (r *logRing) counters() logCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts
}

func (r *logRing) tail(n int) string {
	if n <= 0 {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []string
	if r.full {
		all = append(all, r.lines[r.next:]...)
	}
	all = append(all, r.lines[:r.next]...)
	if len(r.partial) > 0 {
		all = append(all, string(r.partial))
	}
	if n < len(all) {
		all = all[len(all)-n:]
	}
	return strings.Join(all, "\n")
}

// teeWriter feeds the ring and, best effort, a destination. Errors from the
// destination are ignored: returning them would stop os/exec's copy loop
// and eventually block Prosody on a full pipe.
type teeWriter struct {
	ring *logRing
	dest io.Writer
}

func (w teeWriter) Write(p []byte) (int, error) {
	_, _ = w.ring.Write(p)
	if w.dest != nil {
		_, _ = w.dest.Write(p)
	}
	return len(p), nil
}
