package api

import (
	"context"
	"net/http"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// Stream is what the API needs of one XMPP stream: its identity plus one
// small interface per resource, each declared beside its handlers
// (messageStream in messages.go, roomStream in rooms.go, ...). Handlers
// take only their resource's interface, so a handler can be tested with a
// fake that implements a few methods; *gateway.Stream implements them all.
type Stream interface {
	streamInfo
	Touch()
	CheckPassword(password string) bool
	messageStream
	presenceStream
	roomStream
	rosterStream
	pubsubStream
	historyStream
	vcardStream
	userStream
	commandStream
	agentStream
}

var _ Stream = (*gateway.Stream)(nil)

// streamIdentity is who a stream is: every resource needs some of it.
type streamIdentity interface {
	// ID is the streamid.
	ID() string
	// User is the bare JID logged in.
	User() jid.JID
	// JID is the full JID the server bound.
	JID() string
}

// asIdentity narrows a Stream for routes that only name it (logoff, token
// refresh).
func asIdentity(st Stream) streamIdentity { return st }

// streamInfo is what the admin listing and login answers show.
type streamInfo interface {
	streamIdentity
	Created() time.Time
	LastActivity() time.Time
	OnBehalf() bool
	State() string
}

// streamHandler is a handler of one resource: it sees the part S of the
// stream it uses.
type streamHandler[S any] func(w http.ResponseWriter, r *http.Request, p *principal, st S) error

// on adapts a resource's handler to the stream routes. view is the
// conversion from Stream to the resource's interface (asMessages,
// asRooms, ...), a one-line function the compiler checks.
func on[S any](view func(Stream) S, h streamHandler[S]) streamHandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *principal, st Stream) error {
		return h(w, r, p, view(st))
	}
}

// ManagerStreams is the Streams of a gateway.Manager (one node's streams).
func ManagerStreams(m *gateway.Manager) Streams { return managerStreams{m} }

type managerStreams struct{ *gateway.Manager }

func (m managerStreams) Login(ctx context.Context, username, password, resource string) (Stream, error) {
	return asStream(m.Manager.Login(ctx, username, password, resource))
}

func (m managerStreams) LoginAs(ctx context.Context, username, resource string) (Stream, error) {
	return asStream(m.Manager.LoginAs(ctx, username, resource))
}

func (m managerStreams) Stream(id string) (Stream, error) { return asStream(m.Manager.Stream(id)) }

func (m managerStreams) Streams() []Stream { return asStreams(m.Manager.Streams()) }

func (m managerStreams) StreamsOf(user jid.JID) []Stream {
	return asStreams(m.Manager.StreamsOf(user))
}

// asStream keeps a failed lookup a nil Stream (a nil *gateway.Stream in an
// interface would not be).
func asStream(st *gateway.Stream, err error) (Stream, error) {
	if err != nil || st == nil {
		return nil, err
	}
	return st, nil
}

func asStreams(list []*gateway.Stream) []Stream {
	out := make([]Stream, len(list))
	for i, st := range list {
		out[i] = st
	}
	return out
}
