package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5/middleware"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/sse"
)

// wsStream is what a WebSocket session needs of a stream: the commands it
// carries (messages, markers, chat states, presence, rooms) and the idle
// clock.
type wsStream interface {
	messageStream
	presenceStream
	Touch()
	JoinRoom(ctx context.Context, room jid.JID, opts gateway.JoinOptions) error
	LeaveRoom(ctx context.Context, room jid.JID) error
	SendRoomMessage(ctx context.Context, m gateway.OutgoingMessage) (string, error)
}

// asWebSocket narrows a Stream for the WebSocket route.
func asWebSocket(st Stream) wsStream { return st }

// WebSocket transport limits. Variables so tests can shorten them.
var (
	// wsPingInterval keeps proxies from idling the connection out and
	// finds dead peers; a pong must come back within wsPongTimeout.
	wsPingInterval = 20 * time.Second
	wsPongTimeout  = 10 * time.Second
	// wsWriteTimeout bounds each frame write, so a client that stops
	// reading cannot hold the connection's goroutines.
	wsWriteTimeout = 10 * time.Second
)

const (
	// wsCommandQueue bounds the client commands waiting for the one
	// worker; beyond it a command is answered "busy" at once.
	wsCommandQueue = 32
	// Close codes in the private range (RFC 6455 §7.4.2): the token that
	// opened the connection was revoked or expired (reconnect with a fresh
	// one), the client fell too far behind (reconnect with last_event_id).
	wsCloseTokenRevoked = websocket.StatusCode(4401)
	wsCloseTokenExpired = websocket.StatusCode(4402)
	wsCloseSlowConsumer = websocket.StatusCode(4429)
)

// eventSubscriber is what the WebSocket route needs of the broker beyond
// Events (sse.Broker has it).
type eventSubscriber interface {
	Subscribe(topic, lastEventID string) (*sse.Subscription, error)
}

// streamWebSocket godoc
//
//	@Summary		The stream over a WebSocket (JSON frames)
//	@Description	Upgrades to a WebSocket carrying one JSON object per text frame (the Cloudonix frame model).
//	@Description	Server → client: every event of the SSE route, with "event_id" (the SSE id; "id" stays the stanza id of message events) for resuming with ?last_event_id=.
//	@Description	Client → server: {type, id?, ...}: message {to, body | message:{MessageRequest}}, presence {presence:{PresenceRequest}}, chatstate {to, state}, marker {to, marker, message_id, extraParams?}, join {room, service?, nick?, password?}, leave {room, service?}, room_message {room, service?, body | message:{...}}, ping.
//	@Description	Each command is answered by {type:"ok"|"error", "reply-to": id, ...}: ok carries the result (e.g. id of the sent stanza), error the API error (code, http, error). Malformed or unknown frames get an error frame; the connection stays open.
//	@Description	Auth as the events route (header, ?token=, login cookie). Revoking or expiry of that token closes the socket (code 4401 / 4402); a client too slow to read is closed with 4429 (resume with ?last_event_id=). Frames above the request size limit close with 1009.
//	@Tags			events
//	@Param			streamid		path		string	true	"stream id"
//	@Param			token			query		string	false	"bearer token (browsers cannot set WebSocket headers)"
//	@Param			last_event_id	query		string	false	"resume after this event id"
//	@Success		101				{string}	string	"switching protocols"
//	@Failure		401				{object}	ErrorResponse
//	@Failure		404				{object}	ErrorResponse
//	@Failure		410				{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		426				{object}	ErrorResponse	"not a WebSocket request"
//	@Failure		429				{object}	ErrorResponse	"too many subscribers"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/ws [get]
func (s *Server) streamWebSocket(w http.ResponseWriter, r *http.Request, p *principal, st wsStream) error {
	broker, ok := s.events.(eventSubscriber)
	if !ok {
		return errNotConfigured.wrap("the event broker has no subscription API")
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return errUpgradeRequired
	}
	// In cluster mode the socket is on the node holding the stream (its
	// commands act on the XMPP session; other nodes forward it here), and
	// its events come from the cluster's log like every node's.
	unmirror, err := s.mirrorEvents(r.Context(), st.ID())
	if err != nil {
		return err
	}
	defer unmirror()
	sub, err := broker.Subscribe(st.ID(), lastEventIDOf(r))
	if err != nil {
		return err
	}
	defer sub.Close()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.wsOriginPatterns()})
	if err != nil {
		// Accept has written the HTTP error itself (bad handshake, origin).
		s.log.Debug("websocket upgrade refused", slog.String("error", err.Error()))
		return nil
	}
	defer conn.CloseNow()
	conn.SetReadLimit(s.cfg.MaxRequestBytes)
	defer st.Touch() // the idle clock restarts when the connection ends

	// Two contexts: ctx is the connection's lifetime (its cause says why it
	// ended); io bounds reads and writes and ends only after the close
	// handshake, since the library drops the connection without a close
	// code when an I/O context is cancelled.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	ioCtx, ioCancel := context.WithCancel(context.Background())
	defer ioCancel()
	var wg sync.WaitGroup
	if p.claims != nil {
		life, release := s.tokens.tokenLife(p.claims)
		defer release()
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-life.Done():
				if cause := context.Cause(life); errors.Is(cause, errLifeRevoked) || errors.Is(cause, errLifeExpired) {
					cancel(cause)
				}
			case <-ctx.Done():
			}
		}()
	}

	ws := &wsConn{srv: s, conn: conn, st: st, io: ioCtx, reqID: middleware.GetReqID(r.Context())}
	cmds := make(chan wsFrame, wsCommandQueue)
	wg.Add(3)
	go func() { // reader: the only caller of Read, which also answers pings and sees pongs
		defer wg.Done()
		defer close(cmds)
		ws.readLoop(cancel, cmds)
	}()
	go func() { // worker: commands run one at a time, in order
		defer wg.Done()
		for f := range cmds {
			ws.write(ws.execute(ctx, f))
		}
	}()
	go func() { // keepalive
		defer wg.Done()
		t := time.NewTicker(wsPingInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				pctx, pcancel := context.WithTimeout(ioCtx, wsPongTimeout)
				err := conn.Ping(pctx)
				pcancel()
				if err != nil {
					cancel(errors.New("no pong"))
					return
				}
			}
		}
	}()

	code, reason := websocket.StatusNormalClosure, "stream closed"
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			cause := context.Cause(ctx)
			switch {
			case errors.Is(err, sse.ErrEvicted):
				code, reason = wsCloseSlowConsumer, "too slow: reconnect with last_event_id"
			case errors.Is(cause, errLifeRevoked):
				code, reason = wsCloseTokenRevoked, "token revoked"
			case errors.Is(cause, errLifeExpired):
				code, reason = wsCloseTokenExpired, "token expired"
			case cause != nil:
				code, reason = websocket.StatusGoingAway, "closing"
			}
			break
		}
		if !ws.write(eventFrame(ev)) {
			code, reason = websocket.StatusGoingAway, "write failed"
			break
		}
	}
	cancel(errors.New("closing"))
	_ = conn.Close(code, reason) // bounded wait for the client's close frame; Read then fails
	ioCancel()
	wg.Wait()
	return nil
}

// lastEventIDOf reads the resume point like the SSE route does.
func lastEventIDOf(r *http.Request) string {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return strings.TrimSpace(v)
	}
	return strings.TrimSpace(r.URL.Query().Get("last_event_id"))
}

// wsOriginPatterns allows same-origin pages (the library's default) plus
// the configured CORS origins; "*" allows any.
func (s *Server) wsOriginPatterns() []string {
	var out []string
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" {
			return []string{"*"}
		}
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			out = append(out, u.Host)
		}
	}
	return out
}

// eventFrame adds "event_id" to an event's JSON object.
func eventFrame(ev sse.Event) []byte {
	id := strconv.AppendQuote(nil, sse.EventID(ev.ID, ev.Epoch))
	data := ev.Data
	if len(data) < 2 || data[0] != '{' {
		b, _ := json.Marshal(map[string]any{"event_id": string(id[1 : len(id)-1]), "type": "xmpp", "data": json.RawMessage(data)})
		return b
	}
	out := make([]byte, 0, len(data)+len(id)+16)
	out = append(out, `{"event_id":`...)
	out = append(out, id...)
	if len(strings.TrimSpace(string(data[1:]))) > 1 { // not "{}"
		out = append(out, ',')
	}
	return append(out, data[1:]...)
}

// wsConn is one WebSocket's state shared by its goroutines.
type wsConn struct {
	srv   *Server
	conn  *websocket.Conn
	st    wsStream
	io    context.Context // reads and writes; ends after the close handshake
	reqID string
}

// wsFrame is a client frame: type, optional id, and the whole object.
type wsFrame struct {
	Type string
	ID   string
	raw  []byte
	err  error // set when the frame could not be read as a command
}

func (c *wsConn) readLoop(cancel context.CancelCauseFunc, cmds chan<- wsFrame) {
	for {
		typ, data, err := c.conn.Read(c.io)
		if err != nil {
			cancel(err) // no-op when the connection was already ending
			return
		}
		f := parseFrame(typ, data)
		if f.err != nil {
			c.write(c.errorFrame(f.ID, f.err))
			continue
		}
		select {
		case cmds <- f:
		default:
			c.write(c.errorFrame(f.ID, errSendRateLimited.wrap("too many commands in flight")))
		}
	}
}

func parseFrame(typ websocket.MessageType, data []byte) wsFrame {
	if typ != websocket.MessageText {
		return wsFrame{err: errBadRequest.wrap("frames must be JSON text")}
	}
	// The frame goes through the API's one JSON decode path (UTF-8,
	// duplicate keys, error wording); its command's own fields are checked
	// when the command runs.
	var fields map[string]json.RawMessage
	if err := decodeJSON(data, &fields); err != nil {
		return wsFrame{ID: replyID(data), err: err}
	}
	f := wsFrame{raw: data}
	if err := frameString(fields["id"], &f.ID); err != nil {
		f.err = errInvalidParameter.wrap("id must be a string")
		return f
	}
	if err := frameString(fields["type"], &f.Type); err != nil {
		f.err = errInvalidParameter.wrap("type must be a string")
		return f
	}
	if f.Type == "" {
		f.err = errInvalidParameter.wrap("type is required")
	}
	return f
}

// replyID finds the "id" of a frame the strict decoder refused, so its
// error frame can still say what it answers. It only labels the reply:
// nothing of such a frame is acted on.
func replyID(data []byte) string {
	var head map[string]json.RawMessage // map keys match exactly, never by case
	if json.Unmarshal(data, &head) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(head["id"], &id) != nil {
		return ""
	}
	return id
}

// frameString decodes a frame member that must be a string or null;
// absent leaves dst empty.
func frameString(raw json.RawMessage, dst *string) error {
	if raw == nil {
		return nil
	}
	return decodeJSON(raw, dst)
}

// write sends one frame under the write timeout; false when it failed.
func (c *wsConn) write(frame []byte) bool {
	wctx, cancel := context.WithTimeout(c.io, wsWriteTimeout)
	defer cancel()
	return c.conn.Write(wctx, websocket.MessageText, frame) == nil
}

// errorFrame renders an error as the API's error shape plus reply-to.
func (c *wsConn) errorFrame(replyTo string, err error) []byte {
	ae := toAPIError(err)
	if ae.status >= 500 {
		c.srv.log.Error("websocket command failed", slog.Int("code", ae.code), slog.String("error", err.Error()), slog.String("request_id", c.reqID))
	}
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		ReplyTo string `json:"reply-to,omitempty"`
		ErrorResponse
	}{"error", replyTo, ErrorResponse{Code: ae.code, HTTP: ae.status, Error: ae.message, RequestID: c.reqID}})
	return b
}

// okFrame is {type:"ok", reply-to, ...result fields}.
func okFrame(replyTo string, result map[string]any) []byte {
	m := map[string]any{"type": "ok"}
	for k, v := range result {
		m[k] = v
	}
	if replyTo != "" {
		m["reply-to"] = replyTo
	}
	b, _ := json.Marshal(m)
	return b
}

// Client command bodies. Each is decoded strictly (unknown fields are an
// error) and handed to the same gateway method as the REST route.
type (
	wsMessageCmd struct {
		Type    string          `json:"type"`
		ID      string          `json:"id,omitempty"`
		To      string          `json:"to,omitempty"`
		Room    string          `json:"room,omitempty"`
		Service string          `json:"service,omitempty"`
		Body    *string         `json:"body,omitempty"`
		Message *MessageRequest `json:"message,omitempty"`
	}
	wsPresenceCmd struct {
		Type     string          `json:"type"`
		ID       string          `json:"id,omitempty"`
		Presence PresenceRequest `json:"presence"`
	}
	wsChatStateCmd struct {
		Type  string `json:"type"`
		ID    string `json:"id,omitempty"`
		To    string `json:"to"`
		State string `json:"state"`
	}
	wsMarkerCmd struct {
		Type        string         `json:"type"`
		ID          string         `json:"id,omitempty"`
		To          string         `json:"to"`
		Marker      string         `json:"marker"`
		MessageID   string         `json:"message_id"`
		ExtraParams map[string]any `json:"extraParams,omitempty"`
	}
	wsRoomCmd struct {
		Type     string `json:"type"`
		ID       string `json:"id,omitempty"`
		Room     string `json:"room"`
		Service  string `json:"service,omitempty"`
		Nick     string `json:"nick,omitempty"`
		Password string `json:"password,omitempty"`
	}
	wsPingCmd struct {
		Type string `json:"type"`
		ID   string `json:"id,omitempty"`
	}
)

// execute runs one command and returns its reply frame.
func (c *wsConn) execute(ctx context.Context, f wsFrame) []byte {
	c.st.Touch()
	result, err := c.run(ctx, f)
	if err != nil {
		return c.errorFrame(f.ID, err)
	}
	return okFrame(f.ID, result)
}

func (c *wsConn) run(ctx context.Context, f wsFrame) (map[string]any, error) {
	s, st := c.srv, c.st
	// Every command that sends a stanza counts against the stream's rate,
	// as the REST route doing the same does.
	if f.Type != "ping" {
		if err := s.sendAllowed(st); err != nil {
			return nil, err
		}
	}
	switch f.Type {
	case "ping":
		return nil, decodeJSON(f.raw, &wsPingCmd{})
	case "message", "room_message":
		var cmd wsMessageCmd
		if err := decodeJSON(f.raw, &cmd); err != nil {
			return nil, err
		}
		req := MessageRequest{}
		switch {
		case cmd.Message != nil && cmd.Body != nil:
			return nil, errInvalidParameter.wrap("send body or message, not both")
		case cmd.Message != nil:
			req = *cmd.Message
		case cmd.Body != nil:
			req.Body = *cmd.Body
		}
		var id string
		if f.Type == "room_message" {
			room, err := s.parseRoom(cmd.Room, cmd.Service)
			if err != nil {
				return nil, err
			}
			m, err := s.checkedMessage(req, room)
			if err != nil {
				return nil, err
			}
			if id, err = st.SendRoomMessage(ctx, m); err != nil {
				return nil, err
			}
		} else {
			to, err := gateway.ParseAddress(cmd.To)
			if err != nil {
				return nil, err
			}
			m, err := s.checkedMessage(req, to)
			if err != nil {
				return nil, err
			}
			if id, err = st.SendMessage(ctx, m); err != nil {
				return nil, err
			}
		}
		return map[string]any{"id": id}, nil
	case "presence":
		var cmd wsPresenceCmd
		if err := decodeJSON(f.raw, &cmd); err != nil {
			return nil, err
		}
		p, err := cmd.Presence.toPresence()
		if err != nil {
			return nil, err
		}
		return nil, st.SetPresence(ctx, p)
	case "chatstate":
		var cmd wsChatStateCmd
		if err := decodeJSON(f.raw, &cmd); err != nil {
			return nil, err
		}
		to, err := gateway.ParseAddress(cmd.To)
		if err != nil {
			return nil, err
		}
		return nil, st.SendChatState(ctx, to, cmd.State)
	case "marker":
		var cmd wsMarkerCmd
		if err := decodeJSON(f.raw, &cmd); err != nil {
			return nil, err
		}
		to, err := gateway.ParseAddress(cmd.To)
		if err != nil {
			return nil, err
		}
		extra, err := stringMap("extraParams", cmd.ExtraParams)
		if err != nil {
			return nil, err
		}
		id, err := st.SendMarker(ctx, to, cmd.Marker, cmd.MessageID, extra)
		if err != nil {
			return nil, err
		}
		return map[string]any{"id": id}, nil
	case "join", "leave":
		var cmd wsRoomCmd
		if err := decodeJSON(f.raw, &cmd); err != nil {
			return nil, err
		}
		room, err := s.parseRoom(cmd.Room, cmd.Service)
		if err != nil {
			return nil, err
		}
		if f.Type == "leave" {
			return nil, st.LeaveRoom(ctx, room)
		}
		return map[string]any{"room": room.String()},
			st.JoinRoom(ctx, room, gateway.JoinOptions{Nick: cmd.Nick, Password: cmd.Password, MaxStanzas: -1})
	}
	return nil, errInvalidParameter.wrap("unknown command type %q", f.Type)
}
