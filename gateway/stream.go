package gateway

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
)

// Stream is one logged-in XMPP session driven over HTTP. Its long-lived
// goroutine is run, which reads stanzas, publishes them as events and
// reconnects after a drop; short-lived helpers (afterConnect's requests,
// invitation checks, pubsub renewals) run beside it, each counted in the
// manager's WaitGroup and bounded by the stream's stop context or a
// request timeout. Close ends them all.
type Stream struct {
	id       string
	user     jid.JID
	resource string
	created  time.Time
	mgr      *Manager
	log      *slog.Logger

	// creds log in again after a drop (a password is kept in memory only).
	creds credentials
	// pwMAC lets HTTP Basic be checked against a password login; nil for
	// streams opened on the user's behalf, which no password unlocks.
	pwMAC []byte
	// onBehalf is true for streams an admin opened without the password.
	onBehalf bool

	lastActivity atomic.Int64

	mu       sync.Mutex // guards the fields below
	conn     conn
	full     string
	state    string
	presence OutgoingPresence // last broadcast presence, re-sent after a reconnect
	closing  bool
	yielded  bool // another node owns the stream now (yield)

	pending  pendingSends
	catchUp  catchUp
	commands pendingCommands
	iqs      iqTracker
	probes   accountProbes // account.go
	archive  archiveState
	contacts presenceBook
	rooms    rooms
	pubsub   pubsubState
	// invitationChecks holds a token per disco#info lookup in flight for
	// an invitation (checkInvitation), bounding them per stream.
	invitationChecks chan struct{}

	closeOnce sync.Once
	// stopCtx is cancelled by Close; stop is its Done channel. Work a
	// stream starts for itself (afterConnect) runs under stopCtx.
	stopCtx    context.Context
	cancelStop context.CancelFunc
	stop       <-chan struct{}
	done       chan struct{} // closed when run returns
}

// ID returns the stream id (the unguessable capability in URLs).
func (s *Stream) ID() string { return s.id }

// User returns the bare JID of the stream's user.
func (s *Stream) User() jid.JID { return s.user }

// Created returns when the stream was logged in.
func (s *Stream) Created() time.Time { return s.created }

// Done is closed once the stream has ended for good.
func (s *Stream) Done() <-chan struct{} { return s.done }

// JID returns the full JID currently bound (it changes after a reconnect).
func (s *Stream) JID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full
}

// State returns online, reconnecting or offline.
func (s *Stream) State() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Touch records client activity, which keeps the stream from idling out.
func (s *Stream) Touch() { s.lastActivity.Store(time.Now().UnixNano()) }

// LastActivity returns the time of the last Touch.
func (s *Stream) LastActivity() time.Time { return time.Unix(0, s.lastActivity.Load()) }

// CheckPassword reports, in constant time, whether password is the one the
// stream logged in with; it lets HTTP Basic authenticate later calls without
// another XMPP login.
func (s *Stream) CheckPassword(password string) bool {
	return s.pwMAC != nil && hmac.Equal(s.pwMAC, s.mgr.passwordMAC(s.user, password))
}

// OnBehalf reports whether an admin opened the stream without the password.
func (s *Stream) OnBehalf() bool { return s.onBehalf }

// SendMessage sends a 1:1 message and returns its stanza id.
func (s *Stream) SendMessage(ctx context.Context, m OutgoingMessage) (string, error) {
	return s.sendPrepared(ctx, m, false)
}

// sendPrepared validates and sends a message; groupchat only for rooms.
func (s *Stream) sendPrepared(ctx context.Context, m OutgoingMessage, groupchat bool) (string, error) {
	if err := m.prepare(groupchat); err != nil {
		return "", err
	}
	raw, err := encodeMessage(m)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if err := s.send(ctx, raw); err != nil {
		return "", err
	}
	s.pending.record(m.To.Bare().String(), m.ID)
	return m.ID, nil
}

// SetPresence sends a presence. Broadcast presences (no To) are remembered
// and re-sent after a reconnect.
func (s *Stream) SetPresence(ctx context.Context, p OutgoingPresence) error {
	if err := p.Validate(); err != nil {
		return err
	}
	raw, err := encodePresence(p)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if err := s.send(ctx, raw); err != nil {
		return err
	}
	if p.To.Equal(jid.JID{}) && (p.Type == "" || p.Type == "unavailable") {
		s.mu.Lock()
		s.presence = p
		s.mu.Unlock()
		s.stateChanged()
	}
	return nil
}

func (s *Stream) send(ctx context.Context, raw []byte) error {
	if len(raw) > s.mgr.cfg.MaxStanzaBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), s.mgr.cfg.MaxStanzaBytes)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	c, state, closing := s.conn, s.state, s.closing
	s.mu.Unlock()
	switch {
	case closing:
		return ErrStreamClosed
	case state != StateOnline || c == nil:
		return ErrStreamReconnecting
	}
	s.Touch()
	s.mgr.stanzasOut.Add(1)
	if err := c.Write(raw); err != nil {
		// The reader sees the broken connection too and starts reconnecting.
		return fmt.Errorf("%w: %v", ErrStreamReconnecting, err)
	}
	return nil
}

// Close sends unavailable presence, closes the XMPP stream and waits (up
// to ctx) for the reader goroutine to end. It is idempotent.
func (s *Stream) Close(ctx context.Context, reason string) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		c, online := s.conn, s.state == StateOnline
		s.mu.Unlock()
		s.cancelStop()
		if c != nil && online {
			s.unsubscribeOnLogoff(c)
			// Say goodbye (RFC 6120 §4.4) and let the reader see the server's
			// </stream:stream>; the reader goroutine then closes the socket,
			// so nothing closes it under a concurrent read.
			if raw, err := encodePresence(OutgoingPresence{Type: "unavailable"}); err == nil {
				_ = c.Write(raw)
			}
			_ = c.EndStream(3 * time.Second)
		}
		s.log.Info("stream closing", slog.String("reason", reason))
	})
	select {
	case <-s.done:
	case <-ctx.Done():
		s.log.Warn("stream did not close in time; its reader ends when the server closes the socket")
	}
}

func (s *Stream) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// run is the stream's reader goroutine: read until the connection breaks,
// then reconnect on the backoff schedule, until Close or until the stream
// gives up (credentials rejected, or a connection that cannot stay up).
func (s *Stream) run(c conn) {
	defer close(s.done)
	defer s.mgr.remove(s)
	b := newBackoff(s.mgr.cfg)
	up := time.Now()
	for {
		err := s.readLoop(c)
		_ = c.Close() // the reader has returned: nothing reads the socket any more
		if s.stopping() {
			s.iqs.fail(ErrStreamClosed)
			s.goOffline("logged off")
			return
		}
		// No answer can come over the closed socket: fail the waiting
		// requests now rather than at their timeout.
		s.iqs.fail(ErrConnectionLost)
		upFor := time.Since(up)
		s.log.Warn("xmpp connection lost", slog.String("error", err.Error()), slog.Duration("up_for", upFor))
		s.contacts.forget() // the server re-sends presence after the new login
		s.rooms.awaitRejoin()
		if !b.dropped(upFor) {
			reason := fmt.Sprintf("connection keeps dropping: %d drops in a row within %s of connecting", b.flaps, s.mgr.cfg.StableAfter)
			s.log.Warn("closing stream", slog.String("reason", reason))
			s.giveUp(reason)
			return
		}
		s.setState(StateReconnecting, nil, "")
		c = s.reconnect(b)
		if c == nil {
			return
		}
		up = time.Now()
	}
}

func (s *Stream) readLoop(c conn) error {
	for {
		n, err := c.Read()
		if err != nil {
			return err
		}
		s.mgr.stanzasIn.Add(1)
		if n.bad != "" {
			s.handleSkipped(c, n)
			continue
		}
		s.handle(c, n)
	}
}

// goOffline reports the stream offline for good, with the reason.
func (s *Stream) goOffline(reason string) {
	s.setState(StateOffline, nil, "")
	if s.hasYielded() {
		return // the stream lives on with its new owner, which reports it
	}
	s.publish(StreamEvent{Type: EventStream, State: StateOffline, JID: s.user.String(), Reason: reason})
}

func (s *Stream) hasYielded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.yielded
}

// giveUp ends a stream from its own goroutine: offline with the reason,
// and the work it started for itself (stopCtx) cancelled, as Close would.
func (s *Stream) giveUp(reason string) {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancelStop()
	s.goOffline(reason)
}

// reconnect logs in again until it succeeds, the stream is closed, or the
// server rejects the credentials. It returns nil when the stream is over.
func (s *Stream) reconnect(b *backoff) conn {
	dropped := time.Now()
	for attempt := 1; ; attempt++ {
		s.publish(StreamEvent{Type: EventStream, State: StateReconnecting, JID: s.user.String(), Attempt: attempt})
		select {
		case <-s.stop:
			s.goOffline("logged off")
			return nil
		case <-time.After(b.next()):
		}
		if !s.stillOwned() {
			s.yield()
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.mgr.cfg.LoginTimeout)
		c, err := s.mgr.dialer(ctx, s.user, s.creds, s.resource)
		cancel()
		switch {
		case err == nil:
			// Going online and Close must not interleave: Close only says
			// goodbye on a connection it can see, so check and publish the
			// connection under the same lock Close reads it with.
			s.mu.Lock()
			if s.closing {
				s.mu.Unlock()
				_ = c.Close()
				continue // the select above reports offline
			}
			s.state, s.conn, s.full = StateOnline, c, c.JID()
			s.mu.Unlock()
			s.mu.Lock()
			p := s.presence
			s.mu.Unlock()
			if raw, err := encodePresence(p); err == nil {
				_ = s.send(context.Background(), raw)
			}
			s.publish(StreamEvent{Type: EventStream, State: StateOnline, JID: c.JID()})
			s.mgr.reconnects.Add(1)
			s.log.Info("xmpp connection restored", slog.Int("attempt", attempt))
			s.catchUp.begin() // before the reader reads on: the gap-fill ends it
			s.afterConnect(dropped)
			return c
		case isAuthError(err):
			s.goOffline("credentials rejected")
			s.log.Warn("reconnect rejected; closing stream", slog.String("error", err.Error()))
			return nil
		}
		s.log.Debug("reconnect failed", slog.Int("attempt", attempt), slog.String("error", err.Error()))
		b.failed()
	}
}

// afterConnect runs the requests a fresh connection needs once the reader
// is going: carbons, the roster, and after a reconnect the archive gap-fill from the
// moment of the drop. It runs in its own goroutine (the reader must be
// free to route the answers), owned by the manager and bounded by the
// request timeouts.
func (s *Stream) afterConnect(dropped time.Time) {
	s.mgr.wg.Add(1)
	go func() {
		defer s.mgr.wg.Done()
		ctx := s.stopCtx
		// Carbons (XEP-0280) let this stream see what the user's other
		// devices send and receive; fetching the roster makes it an
		// "interested resource" (RFC 6121 §2.1.6), the only kind that gets
		// roster pushes. Both go out in one write: the server reads them
		// together and neither waits for the other's answer.
		errs := s.requestAll(ctx, iqRequest{Type: "set", Payload: elem(nsCarbons, "enable")}, iqRequest{Type: "get", Payload: rosterQuery{}})
		for i, what := range []string{"carbons not enabled", "roster not fetched"} {
			if errs[i] != nil {
				s.log.Info(what, slog.String("error", errs[i].Error()))
			}
		}
		if dropped.IsZero() && s.mgr.cfg.AutojoinBookmarks {
			s.autojoinBookmarks(ctx)
		}
		if !dropped.IsZero() {
			s.rejoinRooms(ctx)
			s.gapFill(ctx, dropped.Add(-5*time.Second))
		}
	}()
}

func (s *Stream) setState(state string, c conn, full string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state, s.conn = state, c
	if full != "" {
		s.full = full
	}
}

func (s *Stream) publish(ev any) {
	data, err := json.Marshal(ev)
	if err != nil {
		s.log.Error("encode event", slog.String("error", err.Error()))
		return
	}
	s.mgr.pub.Publish(s.id, data)
}

// pendingSends remembers recently sent message ids per recipient, the
// fallback for a bounce without an id attribute: RFC 6120 §8.3.1 has the
// error echo the stanza's id (the reader sees it, and it wins), but a bounce
// carries no payload (so no XEP-0359 origin-id) and a server that drops the
// id would leave the client guessing. Bounces come back in send order, so
// the oldest pending id for the bouncing address is the one.
type pendingSends struct {
	mu    sync.Mutex
	items []pendingSend
}

type pendingSend struct {
	to, id string
	at     time.Time
}

const (
	pendingSendsMax = 256
	pendingSendsTTL = 2 * time.Minute
)

func (p *pendingSends) record(to, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(time.Now())
	if len(p.items) >= pendingSendsMax {
		p.items = p.items[1:]
	}
	p.items = append(p.items, pendingSend{to: to, id: id, at: time.Now()})
}

func (p *pendingSends) match(from string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(time.Now())
	for i, it := range p.items {
		if it.to == from {
			p.items = append(p.items[:i:i], p.items[i+1:]...)
			return it.id
		}
	}
	return ""
}

func (p *pendingSends) expire(now time.Time) {
	i := 0
	for i < len(p.items) && now.Sub(p.items[i].at) > pendingSendsTTL {
		i++
	}
	p.items = p.items[i:]
}
