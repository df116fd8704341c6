package api

import (
	"net/http"
)

// refreshToken godoc
//
//	@Summary		Refresh a stream token
//	@Description	Issues a new token for the stream (same user, new expiry). The old token stays valid until it expires or is revoked; an EventSource opened with it ends at its expiry, so reopen it with the new token (and Last-Event-ID as ?last_event_id=).
//	@Tags			session
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Success		200			{object}	LoginResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/token [post]
func (s *Server) refreshToken(w http.ResponseWriter, r *http.Request, p *principal, st streamIdentity) error {
	token, exp, err := s.tokens.issue(st.User(), st.ID())
	if err != nil {
		return err
	}
	if _, err := r.Cookie(tokenCookie); err == nil {
		s.setTokenCookie(w, r, token, exp)
	}
	if p.admin {
		s.auditLog(r, p, "token.refresh", st.User().String())
	}
	return writeOK(w, http.StatusOK, LoginResponse{StreamID: st.ID(), JID: st.JID(), Token: token, ExpiresAt: exp})
}

// revokeToken godoc
//
//	@Summary		Revoke the presented token
//	@Description	Invalidates the bearer token of this request at once: every event stream it opened is closed, and later use gets 401 (RFC 6750 invalid_token). The stream itself stays open for other tokens.
//	@Tags			session
//	@Success		204
//	@Failure		400	{object}	ErrorResponse	"not a bearer token"
//	@Failure		401	{object}	ErrorResponse
//	@Failure		503	{object}	ErrorResponse	"cluster mode: the other nodes could not be told (50305); nothing was revoked, retry"
//	@Security		BearerAuth
//	@Router			/restapi/v1/chat/token [delete]
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r, fromHeader)
	if err != nil {
		return err
	}
	if p.claims == nil {
		return errBadRequest.wrap("only a bearer token can be revoked")
	}
	if err := s.tokens.revoke(p.claims); err != nil {
		// Nothing was revoked: the same token can retry.
		return errClusterNotReady.wrap("the token was not revoked, the other nodes could not be told; retry: %v", err)
	}
	s.clearTokenCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
