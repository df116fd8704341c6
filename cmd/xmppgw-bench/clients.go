package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	// The bench talks XMPP directly for the baseline with the same library
	// the gateway uses; production code imports go-xmpp only in gateway/.
	xmpp "github.com/xmppo/go-xmpp"
)

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// benchBody carries a sequence number and the send time (Unix ns), so the
// receiver can compute one-way latency on the same clock.
func benchBody(seq int64, sent time.Time) string {
	return "bench " + strconv.FormatInt(seq, 10) + " " + strconv.FormatInt(sent.UnixNano(), 10)
}

func parseBenchBody(body string) (seq int64, sent time.Time, ok bool) {
	f := strings.Fields(body)
	if len(f) != 3 || f[0] != "bench" {
		return 0, time.Time{}, false
	}
	seq, err1 := strconv.ParseInt(f[1], 10, 64)
	ns, err2 := strconv.ParseInt(f[2], 10, 64)
	return seq, time.Unix(0, ns), err1 == nil && err2 == nil
}

// --- gateway (REST + SSE) ---

type gwClient struct {
	base string
	hc   *http.Client // REST calls (keep-alive pool)
	sse  *http.Client // event streams (no timeout)
	msgs *restSender  // the message POSTs of the measured paths
}

func newGWClient(base string) *gwClient {
	tr := func() *http.Transport {
		return &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConns: 0, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	}
	host := strings.TrimPrefix(base, "http://")
	return &gwClient{base: base, hc: &http.Client{Transport: tr(), Timeout: 90 * time.Second}, sse: &http.Client{Transport: tr()},
		msgs: &restSender{addr: host, host: host, idle: make(chan *restConn, 4096)}}
}

// restSender POSTs messages over keep-alive HTTP/1.1 connections, one
// request at a time per connection, the way a browser's fetch does. It
// does without net/http's client, whose two goroutines per connection and
// hand-offs per request cost the load generator more CPU than the
// gateway's whole request handling; that CPU is taken from the box the
// gateway and Prosody are measured on.
type restSender struct {
	addr, host string
	idle       chan *restConn // idle connections; one in flight per request
}

type restConn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

// restTimeout bounds one request on the wire.
const restTimeout = 90 * time.Second

// post sends one request and returns the response's status and body.
func (p *restSender) post(path, token, contentType, body string) (int, []byte, error) {
	var rc *restConn
	select {
	case rc = <-p.idle:
	default:
		c, err := net.DialTimeout("tcp", p.addr, 10*time.Second)
		if err != nil {
			return 0, nil, err
		}
		rc = &restConn{c: c, br: bufio.NewReaderSize(c, 4096)}
	}
	status, respBody, reuse, err := rc.roundTrip(p.host, path, token, contentType, body)
	if err != nil || !reuse {
		_ = rc.c.Close()
		return status, respBody, err
	}
	select {
	case p.idle <- rc:
	default:
		_ = rc.c.Close()
	}
	return status, respBody, nil
}

func (rc *restConn) roundTrip(host, path, token, contentType, body string) (status int, respBody []byte, reuse bool, err error) {
	_ = rc.c.SetDeadline(time.Now().Add(restTimeout))
	r := append(rc.req[:0], "POST "...)
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, host...)
	r = append(r, "\r\nContent-Type: "...)
	r = append(r, contentType...)
	if token != "" {
		r = append(r, "\r\nAuthorization: Bearer "...)
		r = append(r, token...)
	}
	r = append(r, "\r\nContent-Length: "...)
	r = strconv.AppendInt(r, int64(len(body)), 10)
	r = append(r, "\r\n\r\n"...)
	r = append(r, body...)
	rc.req = r
	if _, err = rc.c.Write(r); err != nil {
		return 0, nil, false, err
	}
	line, err := rc.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, false, err
	}
	// "HTTP/1.1 202 Accepted"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, nil, false, fmt.Errorf("bad status line %q", line)
	}
	length, reuse := -1, true
	for {
		h, err := rc.br.ReadSlice('\n')
		if err != nil {
			return status, nil, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, _ := bytes.Cut(h, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return status, nil, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return status, nil, false, fmt.Errorf("unexpected Transfer-Encoding %q", value)
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			reuse = false
		}
	}
	if length < 0 {
		return status, nil, false, errors.New("response without Content-Length")
	}
	respBody = make([]byte, length)
	if _, err = io.ReadFull(rc.br, respBody); err != nil {
		return status, nil, false, err
	}
	return status, respBody, reuse, nil
}

type gwStream struct {
	ID, Token, JID string
}

// login opens a stream for user. It goes over the lean message client
// too: the login burst of the scale scenario is measured, and its HTTP
// client shares the box with what is measured.
func (g *gwClient) login(ctx context.Context, user, password string) (gwStream, error) {
	if err := ctx.Err(); err != nil {
		return gwStream{}, err
	}
	status, body, err := g.msgs.post("/restapi/v1/chat/"+url.PathEscape(user)+"/login", "", "text/plain", password)
	if err != nil {
		return gwStream{}, fmt.Errorf("login %s: %w", user, err)
	}
	if status != http.StatusOK {
		return gwStream{}, fmt.Errorf("login %s: %d %s", user, status, bytes.TrimSpace(body))
	}
	var r struct {
		StreamID string `json:"streamid"`
		Token    string `json:"token"`
		JID      string `json:"jid"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return gwStream{}, err
	}
	return gwStream{ID: r.StreamID, Token: r.Token, JID: r.JID}, nil
}

// send POSTs a text message from stream s to the JID to.
func (g *gwClient) send(s gwStream, to, body string) error {
	return g.postText(s, "/messages/"+url.PathEscape(to), body)
}

// sendRoom POSTs a text message from stream s to a room it joined (a room
// name on the default MUC service): the gateway sends it as a groupchat
// message to the room's bare JID (XEP-0045 §7.4).
func (g *gwClient) sendRoom(s gwStream, room, body string) error {
	return g.postText(s, "/rooms/"+url.PathEscape(room), body)
}

// postText POSTs body as text/plain to path under stream s and expects 202.
func (g *gwClient) postText(s gwStream, path, body string) error {
	status, b, err := g.msgs.post("/restapi/v1/chat/"+s.ID+path, s.Token, "text/plain", body)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if status != http.StatusAccepted {
		return fmt.Errorf("send: %d %s", status, bytes.TrimSpace(b))
	}
	return nil
}

// close drops the idle message connections.
func (g *gwClient) close() {
	for {
		select {
		case rc := <-g.msgs.idle:
			_ = rc.c.Close()
		default:
			return
		}
	}
}

func (g *gwClient) logoff(ctx context.Context, s gwStream) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/restapi/v1/chat/"+s.ID+"/logoff", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	if resp, err := g.hc.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// subscribe opens the stream's SSE connection and returns once the
// preamble arrived. onChat gets the body of every chat event and the time
// its data line was read; it runs on the reader goroutine.
func (g *gwClient) subscribe(ctx context.Context, s gwStream, onChat func(body string, at time.Time)) (done <-chan error, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/restapi/v1/chat/"+s.ID+"/events?token="+url.QueryEscape(s.Token), nil)
	resp, err := g.sse.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("events: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	br := bufio.NewReaderSize(resp.Body, 4096)
	line, err := br.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(line, []byte("retry:")) {
		resp.Body.Close()
		return nil, fmt.Errorf("events: bad preamble %q: %v", line, err)
	}
	ch := make(chan error, 1)
	go func() {
		defer resp.Body.Close()
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				if ctx.Err() != nil {
					err = nil
				}
				ch <- err
				return
			}
			if body, ok := chatBody(line); ok {
				onChat(body, time.Now())
			}
		}
	}()
	return ch, nil
}

// chatBody parses a "data:" line of a chat or groupchat (room) event
// carrying a bench body. The gateway's JSON encoder writes "type" first and
// bench bodies need no escaping, so a scan suffices; anything else is left
// to the full decoder.
func chatBody(line []byte) (string, bool) {
	data, ok := bytes.CutPrefix(line, []byte("data: "))
	if !ok || !bytes.HasPrefix(data, []byte(`{"type":"chat"`)) && !bytes.HasPrefix(data, []byte(`{"type":"groupchat"`)) {
		return "", false
	}
	if _, rest, ok := bytes.Cut(data, []byte(`"body":"bench `)); ok {
		if end := bytes.IndexByte(rest, '"'); end >= 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
			return "bench " + string(rest[:end]), true
		}
	}
	var ev struct {
		Type string `json:"type"`
		Body string `json:"body"`
	}
	if json.Unmarshal(bytes.TrimSpace(data), &ev) != nil || ev.Type != "chat" && ev.Type != "groupchat" || !strings.HasPrefix(ev.Body, "bench ") {
		return "", false
	}
	return ev.Body, true
}

// --- direct XMPP (the baseline) ---

type directClient struct {
	c    *xmpp.Client
	jid  string
	done chan struct{}
	// presences counts the presence stanzas the reader saw: the room
	// fan-out checks that joining costs no M² presence broadcast.
	presences atomic.Int64
	// watch is the one pending await, if any (see await).
	watch atomic.Pointer[stanzaWatch]
}

// stanzaWatch is what await waits for: the first IQ or presence match
// accepts, handed over on got (capacity 1, so the reader never blocks).
type stanzaWatch struct {
	match func(any) bool
	got   chan any
}

func dialDirect(addr, domain, user, password, resource string) (*xmpp.Client, error) {
	return xmpp.Options{Host: addr, User: user + "@" + domain, Password: password, Resource: resource,
		NoTLS: true, InsecureAllowUnencryptedAuth: true, DialTimeout: 30 * time.Second}.NewClient()
}

// startDirect logs in and runs a reader calling onChat for bench messages.
// With setup, the client then asks for what every gateway stream asks for
// after its login (carbons, the roster), without waiting for the answers,
// as the gateway does not make its login wait for them either.
func startDirect(addr, domain, user, password, resource string, setup bool, onChat func(body string, at time.Time)) (*directClient, error) {
	c, err := dialDirect(addr, domain, user, password, resource)
	if err != nil {
		return nil, err
	}
	if setup {
		for i, iq := range []setupIQ{{Type: "set", Payload: carbonsEnable{}}, {Type: "get", Payload: rosterQuery{}}} {
			iq.ID = "setup" + strconv.Itoa(i)
			raw, err := xml.Marshal(iq)
			if err == nil {
				_, err = c.SendOrg(string(raw))
			}
			if err != nil {
				_ = c.Close()
				return nil, err
			}
		}
	}
	d := &directClient{c: c, jid: c.JID(), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		soft := 0
		for {
			v, err := c.Recv()
			if err != nil {
				if isFatal(err) || soft > 100 {
					return
				}
				soft++
				continue
			}
			switch v := v.(type) {
			case xmpp.Chat: // type chat or groupchat alike (go-xmpp returns both as Chat)
				if onChat != nil && strings.HasPrefix(v.Text, "bench ") {
					onChat(v.Text, time.Now())
				}
			case xmpp.Presence:
				d.presences.Add(1)
				d.notify(v)
			case xmpp.IQ:
				d.notify(v)
			}
		}
	}()
	return d, nil
}

// notify hands v to a pending await that wants it.
func (d *directClient) notify(v any) {
	if w := d.watch.Load(); w != nil && w.match(v) {
		select {
		case w.got <- v:
		default: // already has its answer
		}
	}
}

// await calls send and waits, at most timeout, for the first stanza of
// type T (xmpp.IQ or xmpp.Presence) after it that match accepts. go-xmpp
// has no request/response API, so the answer is picked out of d's
// receive loop; one await at a time per client.
func await[T xmpp.IQ | xmpp.Presence](d *directClient, send func() (int, error), match func(T) bool, timeout time.Duration) (T, error) {
	var zero T
	w := &stanzaWatch{got: make(chan any, 1), match: func(v any) bool {
		t, ok := v.(T)
		return ok && match(t)
	}}
	d.watch.Store(w) // before sending: the answer cannot overtake it
	defer d.watch.Store(nil)
	if _, err := send(); err != nil {
		return zero, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-w.got:
		return v.(T), nil
	case <-d.done:
		return zero, errors.New("stream closed while waiting for an answer")
	case <-t.C:
		return zero, fmt.Errorf("no answer within %v", timeout)
	}
}

// setupIQ, carbonsEnable (XEP-0280) and rosterQuery (RFC 6121 §2.1.3) are
// the session setup of the direct+ baseline and of the "direct + setup"
// logins, marshalled by encoding/xml.
type setupIQ struct {
	XMLName xml.Name `xml:"iq"`
	Type    string   `xml:"type,attr"`
	ID      string   `xml:"id,attr"`
	To      string   `xml:"to,attr,omitempty"` // none: the account
	Payload any
}

type carbonsEnable struct {
	XMLName xml.Name `xml:"urn:xmpp:carbons:2 enable"`
}

type rosterQuery struct {
	XMLName xml.Name `xml:"jabber:iq:roster query"`
}

func isFatal(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	m := err.Error()
	return strings.Contains(m, "closed") || strings.Contains(m, "stream error") || strings.Contains(m, "EOF") || strings.Contains(m, "syntax error")
}

// close ends the stream race-free (go-xmpp sharp edge 6): say goodbye, let
// the reader see the server close, then Close.
func (d *directClient) close() {
	_, _ = d.c.SendOrg("</stream:stream>")
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
	}
	_ = d.c.Close()
}
