package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// vcardStream is what the vCard routes need of a stream.
type vcardStream interface {
	VCard(ctx context.Context, of jid.JID) (gateway.VCard, error)
	SetVCard(ctx context.Context, v gateway.VCard) error
}

// asVCard narrows a Stream for the vCard routes.
func asVCard(st Stream) vcardStream { return st }

// getVCard godoc
//
//	@Summary		Get a vCard
//	@Description	vcard-temp (XEP-0054) as JSON: the user's own, or {jid}'s. A DESC holding JSON is also returned parsed as desc_json.
//	@Tags			profile
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Param			jid			path		string	true	"whose vCard"
//	@Success		200			{object}	gateway.VCard
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		502			{object}	ErrorResponse
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/vcard/{jid} [get]
func (s *Server) getVCard(w http.ResponseWriter, r *http.Request, _ *principal, st vcardStream) error {
	var of jid.JID
	if chi.URLParam(r, "jid") != "" {
		var err error
		if of, err = jidParam(r); err != nil {
			return err
		}
	}
	v, err := st.VCard(r.Context(), of)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, v)
}

// getOwnVCard godoc
//
//	@Summary		Get your own vCard
//	@Description	vcard-temp (XEP-0054) as JSON. A DESC holding JSON is also returned parsed as desc_json.
//	@Tags			profile
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Success		200			{object}	gateway.VCard
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		502			{object}	ErrorResponse
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/vcard [get]
func (s *Server) getOwnVCard(w http.ResponseWriter, r *http.Request, p *principal, st vcardStream) error {
	return s.getVCard(w, r, p, st)
}

// putVCard godoc
//
//	@Summary	Publish your vCard
//	@Tags		profile
//	@Accept		json
//	@Param		streamid	path	string			true	"stream id"
//	@Param		body		body	gateway.VCard	true	"the vCard"
//	@Success	204
//	@Failure	400	{object}	ErrorResponse
//	@Failure	401	{object}	ErrorResponse
//	@Failure	404	{object}	ErrorResponse
//	@Failure	410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/vcard [put]
func (s *Server) putVCard(w http.ResponseWriter, r *http.Request, _ *principal, st vcardStream) error {
	var v gateway.VCard
	if err := s.readJSON(w, r, &v); err != nil {
		return err
	}
	if err := st.SetVCard(r.Context(), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
