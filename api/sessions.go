package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/xmppgw/xmppgw/gateway"
)

// LoginRequest is the JSON form of a login body.
type LoginRequest struct {
	// Username is needed only on POST /chat/login (no {username} in the path).
	Username string `json:"username,omitempty" example:"alice"`
	Password string `json:"password" example:"demo"`
	// Resource is an optional prefix of the XMPP resource (A-Z a-z 0-9 . _ -).
	Resource string `json:"resource,omitempty" example:"web"`
}

// LoginResponse is returned by a successful login.
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
//	@Tags			session
//	@Accept			json,plain
//	@Produce		json
//	@Param			username	path		string			true	"XMPP username (localpart)"
//	@Param			body		body		LoginRequest	false	"JSON credentials, or the password as text/plain"
//	@Success		200			{object}	LoginResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse	"wrong username or password"
//	@Failure		413			{object}	ErrorResponse
//	@Failure		415			{object}	ErrorResponse
//	@Failure		502			{object}	ErrorResponse	"XMPP server unreachable"
//	@Failure		504			{object}	ErrorResponse	"XMPP server timed out"
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{username}/login [post]
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	req, err := s.loginRequest(w, r)
	if err != nil {
		return err
	}
	st, err := s.streams.Login(r.Context(), req.Username, req.Password, req.Resource)
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
	return writeOK(w, http.StatusOK, LoginResponse{StreamID: st.ID(), JID: st.JID(), Token: token, ExpiresAt: exp})
}

// loginRequest gathers username, password and resource from the path, the
// body and HTTP Basic, rejecting contradictions.
func (s *Server) loginRequest(w http.ResponseWriter, r *http.Request) (LoginRequest, error) {
	var req LoginRequest
	body, err := s.readBody(w, r)
	if err != nil {
		return req, err
	}
	isJSON, err := bodyKind(r)
	if err != nil {
		return req, err
	}
	switch {
	case isJSON && len(body) > 0:
		if err := decodeJSON(body, &req); err != nil {
			return req, err
		}
	case len(body) > 0:
		if req.Password, err = readText(body); err != nil {
			return req, err
		}
		if strings.TrimSpace(req.Password) == "{}" {
			req.Password = "" // the ancestor's "no password" body
		}
	}
	pathUser := chi.URLParam(r, "username")
	if pathUser != "" {
		if req.Username != "" && req.Username != pathUser {
			return req, errBadRequest.wrap("username in body differs from the path")
		}
		req.Username = pathUser
	}
	if basicUser, basicPass, ok := r.BasicAuth(); ok {
		if req.Username == "" {
			req.Username = basicUser
		}
		if !sameUser(basicUser, req.Username, s.streams.Domain()) {
			return req, errBadCredentials.wrap("Basic credentials are for another user")
		}
		if req.Password == "" {
			req.Password = basicPass
		}
	}
	if req.Username == "" {
		return req, errBadRequest.wrap("username missing (path, JSON or HTTP Basic)")
	}
	if req.Password == "" {
		return req, errUnauthorized.wrap("password missing")
	}
	return req, nil
}

func sameUser(a, b, domain string) bool {
	ja, errA := gateway.UserJID(a, domain)
	jb, errB := gateway.UserJID(b, domain)
	return errA == nil && errB == nil && ja.Equal(jb)
}

// logoff godoc
//
//	@Summary		Log off a stream
//	@Description	Sends unavailable presence, closes the XMPP stream, ends its SSE connections and revokes the token used.
//	@Tags			session
//	@Produce		json
//	@Param			streamid	path	string	true	"stream id"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/logoff [post]
func (s *Server) logoff(w http.ResponseWriter, r *http.Request, p *principal, st *gateway.Stream) error {
	if p.claims != nil {
		s.tokens.revoke(p.claims)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := s.streams.Logoff(ctx, st.ID()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func writeOK(w http.ResponseWriter, status int, v any) error {
	writeJSON(w, status, v)
	return nil
}
