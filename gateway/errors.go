package gateway

import "errors"

// Sentinel errors returned by the gateway; package api maps each to one HTTP
// status in its error mapper.
var (
	// ErrStreamNotFound means no live stream has that id (or it belongs to
	// someone else: callers must not learn which).
	ErrStreamNotFound = errors.New("stream not found")
	// ErrStreamLost means the stream died with its cluster node and was not
	// re-opened: the client must log in again.
	ErrStreamLost = errors.New("stream lost with the gateway node holding it")
	// ErrAuthFailed means the XMPP server rejected the credentials.
	ErrAuthFailed = errors.New("xmpp authentication failed")
	// ErrServerUnreachable means the XMPP server could not be reached or broke
	// the connection during login.
	ErrServerUnreachable = errors.New("xmpp server unreachable")
	// ErrServerTimeout means the XMPP server did not finish the login in time.
	ErrServerTimeout = errors.New("xmpp server did not answer in time")
	// ErrStreamReconnecting means the stream lost its XMPP connection and is
	// reconnecting; the call can be retried.
	ErrStreamReconnecting = errors.New("xmpp stream is reconnecting")
	// ErrStreamClosed means the stream was logged off or closed.
	ErrStreamClosed = errors.New("xmpp stream is closed")
	// ErrInvalidAddress means a JID or username failed validation.
	ErrInvalidAddress = errors.New("invalid address")
	// ErrInvalidInput means a request value failed validation.
	ErrInvalidInput = errors.New("invalid input")
	// ErrTooLarge means the stanza would exceed the configured size limit.
	ErrTooLarge = errors.New("stanza too large")
	// ErrOnBehalfDisabled means no XMPP token secret is configured, so the
	// gateway cannot log in for a user without their password.
	ErrOnBehalfDisabled = errors.New("login on a user's behalf is not configured (XMPPGW_XMPP_TOKEN_SECRET)")
	// ErrNotificationsDisabled means no service account is configured.
	ErrNotificationsDisabled = errors.New("system notifications are not configured (XMPPGW_NOTIFY_FROM)")
	// ErrTooManyStreams means the user already has the most streams allowed.
	ErrTooManyStreams = errors.New("too many streams for this user")
	// ErrCapacity means the gateway holds the most streams it allows.
	ErrCapacity = errors.New("gateway at stream capacity")
	// ErrClosed means the manager is shutting down.
	ErrClosed = errors.New("gateway is shutting down")
	// ErrRegistryUnavailable means the cluster's stream registry (Redis)
	// did not answer, so no new stream can be admitted; the open ones go on.
	ErrRegistryUnavailable = errors.New("cluster stream registry not reachable")
)

// StreamLostError is ErrStreamLost naming the stream's user, so a caller
// can tell its own lost stream (410) from someone else's (a 404, as for
// any stream it may not see).
type StreamLostError struct{ User string }

func (e StreamLostError) Error() string { return ErrStreamLost.Error() }

// Is makes errors.Is(err, ErrStreamLost) true.
func (e StreamLostError) Is(target error) bool { return target == ErrStreamLost }
