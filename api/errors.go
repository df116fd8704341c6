package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/sse"
)

// ErrorResponse is the one JSON shape of every error the API returns.
type ErrorResponse struct {
	// Code is stable: HTTP status × 100 + n. Never renumbered.
	Code      int    `json:"code" example:"40101"`
	HTTP      int    `json:"http" example:"401"`
	Error     string `json:"error" example:"invalid token"`
	RequestID string `json:"request_id" example:"3f2a9c1e5b7d4e6f8a0b1c2d3e4f5a6b"`
}

// apiError is an error with its place in the table. Wrap returns a copy with
// a more specific message, so the table values stay immutable.
type apiError struct {
	code    int
	status  int
	message string
	// challenge is the RFC 6750 error code for WWW-Authenticate on 401s.
	challenge string
	// retryAfter (seconds) is sent as Retry-After (429s, retryable 503s).
	retryAfter int
}

func (e *apiError) Error() string { return e.message }

func (e *apiError) wrap(format string, args ...any) *apiError {
	c := *e
	c.message = e.message + ": " + fmt.Sprintf(format, args...)
	return &c
}

// errorTable lists every entry in declaration order, for TestErrorTable.
var errorTable []*apiError

func tableErr(code, status int, message string) *apiError {
	return register(&apiError{code: code, status: status, message: message})
}

func register(e *apiError) *apiError {
	errorTable = append(errorTable, e)
	return e
}

// saying returns e with message in place of the table's text (a domain
// error that already says it all).
func (e *apiError) saying(message string) *apiError {
	c := *e
	c.message = message
	return &c
}

// retryErr is an error the client may retry after retryAfter seconds
// (Retry-After, RFC 9110 §10.2.3).
func retryErr(code, status int, message string, retryAfter int) *apiError {
	return register(&apiError{code: code, status: status, message: message, retryAfter: retryAfter})
}

// tokenErr is a 401 whose WWW-Authenticate names invalid_token (RFC 6750 §3.1).
func tokenErr(code, status int, message string) *apiError {
	return register(&apiError{code: code, status: status, message: message, challenge: "invalid_token"})
}

// The error table (ntfy-style): one value per distinct client-visible
// error, every one of them here, sorted by code. A code is HTTP status ×
// 100 + n and is never renumbered; TestErrorTable checks both rules.
var (
	errBadRequest         = tableErr(40000, http.StatusBadRequest, "bad request")
	errInvalidJSON        = tableErr(40001, http.StatusBadRequest, "invalid JSON body")
	errInvalidAddress     = tableErr(40002, http.StatusBadRequest, "invalid address")
	errInvalidParameter   = tableErr(40003, http.StatusBadRequest, "invalid parameter")
	errXMPPBadRequest     = tableErr(40004, http.StatusBadRequest, "the XMPP server refused the request")
	errUnauthorized       = tableErr(40100, http.StatusUnauthorized, "authentication required")
	errInvalidToken       = tokenErr(40101, http.StatusUnauthorized, "invalid token")
	errTokenExpired       = tokenErr(40102, http.StatusUnauthorized, "token expired")
	errTokenRevoked       = tokenErr(40103, http.StatusUnauthorized, "token revoked")
	errBadCredentials     = tableErr(40104, http.StatusUnauthorized, "wrong username or password")
	errForbidden          = tableErr(40300, http.StatusForbidden, "admin credentials required")
	errXMPPForbidden      = tableErr(40301, http.StatusForbidden, "the XMPP server does not allow this")
	errNotWorkgroupAgent  = tableErr(40320, http.StatusForbidden, "not a member of the workgroup")
	errNotFound           = tableErr(40400, http.StatusNotFound, "not found")
	errStreamNotFound     = tableErr(40401, http.StatusNotFound, "stream not found")
	errXMPPNotFound       = tableErr(40402, http.StatusNotFound, "the XMPP server knows no such item")
	errNotInRoom          = tableErr(40403, http.StatusNotFound, "not in that room: join it first")
	errNotSubscribed      = tableErr(40404, http.StatusNotFound, "no such pubsub subscription of this stream")
	errNoSuchAccount      = tableErr(40405, http.StatusNotFound, "the XMPP server has no such account")
	errWorkgroupNotFound  = tableErr(40420, http.StatusNotFound, "no such workgroup")
	errTicketNotFound     = tableErr(40421, http.StatusNotFound, "no such ticket")
	errOfferNotFound      = tableErr(40422, http.StatusNotFound, "no such offer")
	errAgentNotOnline     = tableErr(40423, http.StatusNotFound, "not online in that workgroup")
	errMethodNotAllowed   = tableErr(40500, http.StatusMethodNotAllowed, "method not allowed")
	errNickConflict       = tableErr(40900, http.StatusConflict, "nickname already in use in the room")
	errWorkgroupExists    = tableErr(40920, http.StatusConflict, "workgroup already exists")
	errWorkgroupClosed    = tableErr(40921, http.StatusConflict, "workgroup is closed")
	errWorkgroupNoAgents  = tableErr(40922, http.StatusConflict, "workgroup has no members")
	errNotStarted         = tableErr(40923, http.StatusConflict, "the conversation has not started")
	errStreamLost         = tableErr(41000, http.StatusGone, "the stream was lost with the gateway node holding it; log in again")
	errTooLarge           = tableErr(41300, http.StatusRequestEntityTooLarge, "request too large")
	errUnsupportedMedia   = tableErr(41500, http.StatusUnsupportedMediaType, "unsupported content type")
	errUpgradeRequired    = tableErr(42600, http.StatusUpgradeRequired, "this route needs a WebSocket upgrade")
	errLoginRateLimited   = tableErr(42900, http.StatusTooManyRequests, "too many failed logins, retry later")
	errSendRateLimited    = tableErr(42901, http.StatusTooManyRequests, "sending too fast on this stream, retry later")
	errTooManyStreams     = tableErr(42902, http.StatusTooManyRequests, "too many streams for this user: log off one first")
	errTooManySubscribers = tableErr(42903, http.StatusTooManyRequests, "too many event subscribers on this stream")
	errTooManyTickets     = tableErr(42920, http.StatusTooManyRequests, "too many open tickets: leave one first")
	errInternal           = tableErr(50000, http.StatusInternalServerError, "internal error")
	errXMPPNotSupported   = tableErr(50100, http.StatusNotImplemented, "the XMPP server does not support this")
	errXMPPUnreachable    = tableErr(50200, http.StatusBadGateway, "XMPP server unreachable")
	errXMPPRefused        = tableErr(50201, http.StatusBadGateway, "the XMPP server answered with an error")
	errStreamReconnecting = retryErr(50300, http.StatusServiceUnavailable, "XMPP stream is reconnecting, retry shortly", 2)
	errShuttingDown       = tableErr(50301, http.StatusServiceUnavailable, "gateway is shutting down")
	errNotReady           = tableErr(50302, http.StatusServiceUnavailable, "XMPP server not reachable")
	errCapacity           = tableErr(50303, http.StatusServiceUnavailable, "gateway at stream capacity, retry later")
	errNotConfigured      = tableErr(50304, http.StatusServiceUnavailable, "feature not configured")
	errClusterNotReady    = retryErr(50305, http.StatusServiceUnavailable, "cluster store (Redis) not reachable or this node's lease lapsed", 2)
	errConnectionLost     = retryErr(50310, http.StatusServiceUnavailable, "XMPP connection lost before the answer came; the stream is reconnecting, retry shortly", 2)
	errXMPPTimeout        = tableErr(50400, http.StatusGatewayTimeout, "XMPP server did not answer in time")
)

// toAPIError maps any error to a table entry: the single place where domain
// errors become HTTP statuses.
func toAPIError(err error) *apiError {
	var ae *apiError
	var maxErr *http.MaxBytesError
	var iqErr *gateway.IQError
	switch {
	case errors.As(err, &ae):
		return ae
	case fastpathError(err) != nil:
		return fastpathError(err)
	case errors.As(err, &maxErr):
		return errTooLarge.wrap("body exceeds %d bytes", maxErr.Limit)
	case errors.Is(err, gateway.ErrStreamNotFound), errors.Is(err, gateway.ErrStreamClosed):
		return errStreamNotFound
	case errors.Is(err, gateway.ErrStreamLost):
		return errStreamLost
	case errors.Is(err, gateway.ErrNoSuchAccount):
		return errNoSuchAccount
	case errors.Is(err, gateway.ErrAuthFailed):
		return errBadCredentials
	case errors.Is(err, gateway.ErrInvalidAddress):
		return errInvalidAddress.saying(err.Error())
	case errors.Is(err, gateway.ErrInvalidInput):
		return errInvalidParameter.saying(err.Error())
	case errors.Is(err, gateway.ErrTooLarge):
		return errTooLarge.saying(err.Error())
	case errors.Is(err, gateway.ErrServerTimeout), errors.Is(err, context.DeadlineExceeded):
		return errXMPPTimeout
	case errors.Is(err, gateway.ErrServerUnreachable):
		return errXMPPUnreachable
	case errors.Is(err, gateway.ErrConnectionLost):
		return errConnectionLost
	case errors.Is(err, gateway.ErrStanzaSkipped):
		return errXMPPRefused.saying(err.Error())
	case errors.Is(err, gateway.ErrStreamReconnecting):
		return errStreamReconnecting
	case errors.Is(err, gateway.ErrClosed):
		return errShuttingDown
	case errors.Is(err, gateway.ErrTooManyStreams):
		return errTooManyStreams
	case errors.Is(err, gateway.ErrCapacity):
		return errCapacity
	case errors.Is(err, gateway.ErrRegistryUnavailable):
		return errClusterNotReady
	case errors.Is(err, gateway.ErrOnBehalfDisabled), errors.Is(err, gateway.ErrNotificationsDisabled):
		return errNotConfigured.saying(err.Error())
	case errors.Is(err, gateway.ErrNoDirectory):
		return errXMPPNotSupported.saying(err.Error())
	case errors.Is(err, gateway.ErrNickConflict):
		return errNickConflict
	case errors.Is(err, gateway.ErrNotInRoom):
		return errNotInRoom
	case errors.Is(err, gateway.ErrNotSubscribed):
		return errNotSubscribed
	case errors.As(err, &iqErr):
		return iqStatus(iqErr)
	case errors.Is(err, sse.ErrTopicNotFound):
		return errStreamNotFound
	case errors.Is(err, sse.ErrTooManySubscribers):
		return errTooManySubscribers
	}
	return errInternal
}

// writeError is the only writer of error responses. Server faults are
// logged with their cause; client faults at debug level.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	level := slog.LevelDebug
	if ae.status >= 500 {
		level = slog.LevelError
	}
	s.log.LogAttrs(r.Context(), level, "request failed", slog.Int("code", ae.code),
		slog.String("error", err.Error()), slog.String("request_id", middleware.GetReqID(r.Context())))
	if ae.status == http.StatusUnauthorized {
		// RFC 6750 §3: tell the client how to authenticate and why it failed.
		challenge := `Bearer realm="xmppgw"`
		if ae.challenge != "" {
			challenge += fmt.Sprintf(`, error=%q, error_description=%q`, ae.challenge, ae.message)
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	if _, forwarded := forwardedClient(r); forwarded && ae.code == errStreamNotFound.code {
		// The stream is not on this node: the forwarding node may retry
		// at its new owner (and strips the header).
		w.Header().Set(clusterAbsentHeader, "1")
	}
	writeJSON(w, ae.status, ErrorResponse{Code: ae.code, HTTP: ae.status, Error: ae.message,
		RequestID: middleware.GetReqID(r.Context())})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// iqStatus maps an XMPP error answer (RFC 6120 §8.3.3) to an HTTP status,
// keeping the condition in the message.
func iqStatus(e *gateway.IQError) *apiError {
	base := errXMPPRefused
	switch e.Condition {
	case "item-not-found", "recipient-unavailable", "remote-server-not-found":
		base = errXMPPNotFound
	case "forbidden", "not-authorized", "not-allowed", "registration-required", "subscription-required":
		base = errXMPPForbidden
	case "bad-request", "jid-malformed", "not-acceptable", "policy-violation":
		base = errXMPPBadRequest
	case "feature-not-implemented", "service-unavailable":
		base = errXMPPNotSupported
	}
	return base.wrap("%s", e.Condition)
}
