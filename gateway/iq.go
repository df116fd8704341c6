package gateway

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrIQ is wrapped by IQError: the server answered a request with an error.
var ErrIQ = errors.New("xmpp request failed")

// ErrConnectionLost means the XMPP connection dropped while a request
// waited for its answer; the stream reconnects, so the call can be retried.
var ErrConnectionLost = errors.New("xmpp connection lost before the answer came")

// ErrStanzaSkipped wraps the reason when the server's answer was a stanza
// the gateway will not read (nested too deeply, too large, names not
// namespace-well-formed); the stream itself goes on.
var ErrStanzaSkipped = errors.New("the XMPP server's answer could not be read")

// IQError is an IQ error response (RFC 6120 §8.3) with its condition.
type IQError struct{ StanzaError }

func (e *IQError) Error() string {
	msg := fmt.Sprintf("%v: %s (%s)", ErrIQ, e.Condition, e.Type)
	if e.Text != "" {
		msg += ": " + e.Text
	}
	return msg
}

// Unwrap lets errors.Is(err, ErrIQ) match.
func (e *IQError) Unwrap() error { return ErrIQ }

// iqTracker matches IQ responses to the requests waiting for them, and
// fails them all when their connection is lost.
type iqTracker struct {
	mu      sync.Mutex
	pending map[string]chan xmlNode
	lost    *connLoss // of the requests registered since the last fail
}

// connLoss is closed (done) when the connection the waiting requests were
// sent on is lost; err, set before, says how.
type connLoss struct {
	done chan struct{}
	err  error
}

func (t *iqTracker) wait(id string) iqWait {
	ch := make(chan xmlNode, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending == nil {
		t.pending = map[string]chan xmlNode{}
	}
	if t.lost == nil {
		t.lost = &connLoss{done: make(chan struct{})}
	}
	t.pending[id] = ch
	return iqWait{id: id, ch: ch, lost: t.lost}
}

// fail ends every waiting request with err: the reader calls it once the
// connection is closed, when no answer can come any more. Requests
// registered later belong to the next connection.
func (t *iqTracker) fail(err error) {
	t.mu.Lock()
	l := t.lost
	t.lost, t.pending = nil, nil
	t.mu.Unlock()
	if l != nil {
		l.err = err
		close(l.done)
	}
}

func (t *iqTracker) forget(id string) {
	t.mu.Lock()
	delete(t.pending, id)
	t.mu.Unlock()
}

// deliver hands a response to its waiter, reporting whether one waited.
func (t *iqTracker) deliver(id string, n xmlNode) bool {
	t.mu.Lock()
	ch, ok := t.pending[id]
	delete(t.pending, id)
	t.mu.Unlock()
	if ok {
		ch <- n // buffered: never blocks the reader
	}
	return ok
}

// xmlIQRequest is an outgoing IQ get/set with one payload element.
type xmlIQRequest struct {
	XMLName xml.Name `xml:"iq"`
	Type    string   `xml:"type,attr"`
	ID      string   `xml:"id,attr"`
	To      string   `xml:"to,attr,omitempty"`
	Payload any
}

// requestTimeout bounds a request whose answer never comes (the server
// must answer, RFC 6120 §8.2.3, but a dropped connection loses it).
const requestTimeout = 15 * time.Second

// iqRequest is one IQ get/set to send: its type, addressee ("" for the
// account) and payload element.
type iqRequest struct {
	Type    string
	To      string
	Payload any
}

// request sends an IQ and waits for its result; an error response becomes
// an *IQError.
func (s *Stream) request(ctx context.Context, typ, to string, payload any) (xmlNode, error) {
	ids, err := s.sendRequests(ctx, iqRequest{Type: typ, To: to, Payload: payload})
	if err != nil {
		return xmlNode{}, err
	}
	defer s.iqs.forget(ids[0].id)
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return s.awaitAnswer(ctx, ids[0])
}

// requestAll sends several IQs in one write and waits for every answer;
// errs[i] is the outcome of reqs[i]. A client may have any number of
// requests outstanding (RFC 6120 §8.2.3), so none waits for another.
func (s *Stream) requestAll(ctx context.Context, reqs ...iqRequest) (errs []error) {
	errs = make([]error, len(reqs))
	waits, err := s.sendRequests(ctx, reqs...)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	for i, w := range waits {
		_, errs[i] = s.awaitAnswer(ctx, w)
		s.iqs.forget(w.id)
	}
	return errs
}

type iqWait struct {
	id   string
	ch   chan xmlNode
	lost *connLoss
}

// sendRequests marshals the IQs, registers their waiters and sends them
// in one write. On error no waiter is left registered.
func (s *Stream) sendRequests(ctx context.Context, reqs ...iqRequest) ([]iqWait, error) {
	var raw []byte
	waits := make([]iqWait, 0, len(reqs))
	forgetAll := func() {
		for _, w := range waits {
			s.iqs.forget(w.id)
		}
	}
	for _, r := range reqs {
		id := newStanzaID()
		one, err := xml.Marshal(xmlIQRequest{Type: r.Type, ID: id, To: r.To, Payload: r.Payload})
		if err != nil {
			forgetAll()
			return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
		raw = append(raw, one...)
		waits = append(waits, s.iqs.wait(id))
	}
	if err := s.send(ctx, raw); err != nil {
		forgetAll()
		return nil, err
	}
	return waits, nil
}

// awaitAnswer waits for one IQ's answer; the caller bounds ctx by
// requestTimeout. An answer the reader skipped comes back with
// ErrStanzaSkipped and what could be read of it (a caller that can use a
// partial answer, like Items, looks at it).
func (s *Stream) awaitAnswer(ctx context.Context, w iqWait) (xmlNode, error) {
	answer := func(n xmlNode) (xmlNode, error) {
		switch {
		case n.bad != "":
			return n, fmt.Errorf("%w: %s", ErrStanzaSkipped, n.bad)
		case n.attr("type") == "error":
			return n, &IQError{stanzaError(n.child("", "error"))}
		}
		return n, nil
	}
	select {
	case n := <-w.ch:
		return answer(n)
	case <-w.lost.done:
		select {
		case n := <-w.ch: // it made it before the drop
			return answer(n)
		default:
		}
		return xmlNode{}, w.lost.err
	case <-s.done:
		return xmlNode{}, ErrStreamClosed
	case <-ctx.Done():
		return xmlNode{}, fmt.Errorf("%w: no answer to the request", ErrServerTimeout)
	}
}

// pendingCommands remembers the ids of x:oob commands this stream sent, so
// replies that echo the id can say which request they answer.
type pendingCommands struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

func (p *pendingCommands) add(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ids == nil {
		p.ids = map[string]time.Time{}
	}
	now := time.Now()
	for k, t := range p.ids {
		if now.Sub(t) > pendingSendsTTL {
			delete(p.ids, k)
		}
	}
	if len(p.ids) < pendingSendsMax {
		p.ids[id] = now
	}
}

func (p *pendingCommands) answers(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.ids[id]
	delete(p.ids, id)
	return ok && id != ""
}
