package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/xmppgw/xmppgw/gateway"
)

// LoginRequest is the JSON form of a login body.
type LoginRequest struct {
	// Username is needed only on POST /chat/login (no {username} in the path).
	Username string `json:"username,omitempty" example:"alice"`
	// Password may be left out by admins, who then log in on the user's behalf.
	Password string `json:"password,omitempty" example:"demo"`
	// Resource is an optional prefix of the XMPP resource (A-Z a-z 0-9 . _ -).
	Resource string `json:"resource,omitempty" example:"web"`
	// Cookie asks for the token also as an HttpOnly cookie the events route accepts.
	Cookie bool `json:"cookie,omitempty"`
}

// LoginResponse is returned by a successful login or token refresh.
type LoginResponse struct {
	StreamID  string    `json:"streamid" example:"q3Vb1m0M2w0sXz7uJc9kLrP4"`
	JID       string    `json:"jid" example:"alice@localhost/web.1a2b3c4d5e6f"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// login godoc
//
//	@Summary		Log in and open a stream
//	@Description	Logs into the XMPP server with the user's credentials (that login is the check) and opens a new stream with its own XMPP resource. The password comes as a text/plain body (the Openfire-Chat form), as JSON {"password","resource"}, or as HTTP Basic. POST /restapi/v1/chat/login takes the username from Basic or JSON instead of the path.
//	@Description	With admin credentials (Basic of XMPPGW_ADMIN_USER, or an admin token) and no password, the gateway logs in on the user's behalf with a short-lived XMPP token; the response's token is then the user's. ?cookie=true (or "cookie":true) also sets the token as an HttpOnly cookie for EventSource.
//	@Tags			session
//	@Accept			json,plain
//	@Produce		json
//	@Param			username	path		string			true	"XMPP username (localpart)"
//	@Param			cookie		query		bool			false	"also set the token as an HttpOnly cookie"
//	@Param			body		body		LoginRequest	false	"JSON credentials, or the password as text/plain"
//	@Success		200			{object}	LoginResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse	"wrong username or password"
//	@Failure		404			{object}	ErrorResponse	"on-behalf login: the XMPP server has no such account (40405)"
//	@Failure		413			{object}	ErrorResponse
//	@Failure		415			{object}	ErrorResponse
//	@Failure		429			{object}	ErrorResponse	"too many failed logins or streams"
//	@Failure		502			{object}	ErrorResponse	"XMPP server unreachable"
//	@Failure		503			{object}	ErrorResponse	"capacity, or on-behalf login not configured"
//	@Failure		504			{object}	ErrorResponse	"XMPP server timed out"
//	@Security		BasicAuth
//	@Security		BearerAuth
//	@Router			/restapi/v1/chat/{username}/login [post]
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	req, admin, err := s.loginRequest(w, r)
	if err != nil {
		return err
	}
	var st Stream
	if admin != nil && req.Password == "" {
		s.auditLog(r, admin, "login.on_behalf", req.Username)
		st, err = s.streams.LoginAs(r.Context(), req.Username, req.Resource)
	} else {
		st, err = s.passwordLogin(r, req)
	}
	if err != nil {
		return err
	}
	token, exp, err := s.tokens.issue(st.User(), st.ID())
	if err != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		_ = s.streams.Logoff(ctx, st.ID())
		return err
	}
	if req.Cookie || r.URL.Query().Get("cookie") == "true" {
		s.setTokenCookie(w, r, token, exp)
	}
	return writeOK(w, http.StatusOK, LoginResponse{StreamID: st.ID(), JID: st.JID(), Token: token, ExpiresAt: exp})
}

// passwordLogin is an ordinary login under the guessing limits (checkGuess):
// only failures spend from the buckets, so a user who types correctly is
// never refused, while guessing stops after a few tries.
func (s *Server) passwordLogin(r *http.Request, req LoginRequest) (Stream, error) {
	// Keyed by the PRECIS-normalised JID: "ＡＬＩＣＥ" and "alice" are one
	// account, so they share one bucket.
	userKey := strings.ToLower(req.Username)
	if j, err := gateway.UserJID(req.Username, s.streams.Domain()); err == nil {
		userKey = j.String()
	}
	k := s.guessKeys(r, userKey)
	if err := s.guessAllowed(r, k); err != nil {
		return nil, err
	}
	st, err := s.streams.Login(r.Context(), req.Username, req.Password, req.Resource)
	if errors.Is(err, gateway.ErrAuthFailed) {
		s.guessFailed(k)
	}
	return st, err
}

// loginRequest gathers username, password and resource from the path, the
// body and the Authorization header, rejecting contradictions. It returns
// the admin principal when admin credentials came with the request.
func (s *Server) loginRequest(w http.ResponseWriter, r *http.Request) (LoginRequest, *principal, error) {
	var req LoginRequest
	body, err := s.readBody(w, r)
	if err != nil {
		return req, nil, err
	}
	isJSON, err := bodyKind(r)
	if err != nil {
		return req, nil, err
	}
	switch {
	case isJSON && len(body) > 0:
		if err := decodeJSON(body, &req); err != nil {
			return req, nil, err
		}
	case len(body) > 0:
		if req.Password, err = readText(body); err != nil {
			return req, nil, err
		}
		if strings.TrimSpace(req.Password) == "{}" {
			req.Password = "" // the ancestor's "no password" body
		}
	}
	if pathUser := chi.URLParam(r, "username"); pathUser != "" {
		if req.Username != "" && req.Username != pathUser {
			return req, nil, errBadRequest.wrap("username in body differs from the path")
		}
		req.Username = pathUser
	}
	var admin *principal
	if r.Header.Get("Authorization") != "" {
		p, err := s.authenticate(r, fromHeader)
		switch {
		case err != nil:
			return req, nil, err
		case p.admin:
			admin = p
		case p.claims != nil:
			return req, nil, errUnauthorized.wrap("a user token cannot open streams: use the password or admin credentials")
		default: // the user's own Basic credentials
			if req.Username == "" {
				req.Username = p.user.Localpart()
			}
			if !sameUser(p.user.Localpart(), req.Username, s.streams.Domain()) {
				// Counted and worded like a wrong password, as the admin
				// name's failures are: no hint which names are special.
				return req, nil, s.checkGuess(r, p.user.String(), func() bool { return false })
			}
			if req.Password == "" {
				req.Password = p.password
			}
		}
	}
	if req.Username == "" {
		return req, nil, errBadRequest.wrap("username missing (path, JSON or HTTP Basic)")
	}
	if req.Password == "" && admin == nil {
		// Never hand out a session without proof: the ancestor gave any
		// caller the victim's existing stream here.
		return req, nil, errUnauthorized.wrap("password missing (only admins may log in on a user's behalf)")
	}
	return req, admin, nil
}

func sameUser(a, b, domain string) bool {
	ja, errA := gateway.UserJID(a, domain)
	jb, errB := gateway.UserJID(b, domain)
	return errA == nil && errB == nil && ja.Equal(jb)
}

// setTokenCookie stores the token for EventSource. HttpOnly keeps it from
// scripts; SameSite=Strict keeps other sites from riding on it; Secure
// whenever the request came over TLS (directly or via a trusted proxy).
func (s *Server) setTokenCookie(w http.ResponseWriter, r *http.Request, token string, exp time.Time) {
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: token, Path: "/restapi/v1/chat", Expires: exp,
		HttpOnly: true, Secure: s.overTLS(r), SameSite: http.SameSiteStrictMode})
}

func (s *Server) clearTokenCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: "", Path: "/restapi/v1/chat", MaxAge: -1,
		HttpOnly: true, Secure: s.overTLS(r), SameSite: http.SameSiteStrictMode})
}

func (s *Server) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && s.trustedProxy(ap.Addr().Unmap()) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// logoff godoc
//
//	@Summary		Log off a stream
//	@Description	Sends unavailable presence, closes the XMPP stream, ends its SSE connections and revokes every token issued for the stream.
//	@Tags			session
//	@Produce		json
//	@Param			streamid	path	string	true	"stream id"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/logoff [post]
func (s *Server) logoff(w http.ResponseWriter, r *http.Request, _ *principal, st streamIdentity) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	// Close first so event streams receive the final "offline" event, then
	// revoke: a revoked token ends its event streams without draining.
	err := s.streams.Logoff(ctx, st.ID())
	if err := s.tokens.revokeStream(st.ID()); err != nil {
		// The stream is gone on every node anyway; its tokens now only
		// reach a 404 elsewhere.
		s.log.Warn("stream tokens revoked on this node only", slog.String("error", err.Error()))
	}
	s.clearTokenCookie(w, r)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func writeOK(w http.ResponseWriter, status int, v any) error {
	writeJSON(w, status, v)
	return nil
}
