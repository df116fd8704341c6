package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"mellium.im/xmpp/jid"
)

// sendChatState godoc
//
//	@Summary		Send a chat state (typing indicator)
//	@Description	XEP-0085: composing, paused, active, inactive or gone. The receiver gets a "chatstate" event.
//	@Tags			messages
//	@Param			streamid	path	string	true	"stream id"
//	@Param			state		path	string	true	"composing, paused, active, inactive or gone"
//	@Param			jid			path	string	true	"recipient JID"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/chatstate/{state}/{jid} [post]
func (s *Server) sendChatState(w http.ResponseWriter, r *http.Request, _ *principal, st messageStream) error {
	if err := s.sendAllowed(st); err != nil {
		return err
	}
	to, err := jidParam(r)
	if err != nil {
		return err
	}
	if err := st.SendChatState(r.Context(), to, chi.URLParam(r, "state")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// MarkerRequest optionally carries the extraParams of a marker (the
// ConnectyCube dialog_id).
type MarkerRequest struct {
	ExtraParams map[string]any `json:"extraParams,omitempty" swaggertype:"object"`
}

// sendMarker godoc
//
//	@Summary		Mark a message received or displayed
//	@Description	XEP-0333 chat marker for message {id} (the id from the message event). The sender gets a "marker" event.
//	@Tags			messages
//	@Accept			json
//	@Produce		json
//	@Param			streamid	path		string			true	"stream id"
//	@Param			jid			path		string			true	"the message's sender"
//	@Param			id			path		string			true	"id of the marked message"
//	@Param			marker		path		string			true	"received or displayed"
//	@Param			body		body		MarkerRequest	false	"extraParams such as dialog_id"
//	@Success		202			{object}	MessageResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/messages/{jid}/{id}/{marker} [post]
func (s *Server) sendMarker(w http.ResponseWriter, r *http.Request, _ *principal, st messageStream) error {
	if err := s.sendAllowed(st); err != nil {
		return err
	}
	to, extra, err := s.targetAndExtra(w, r)
	if err != nil {
		return err
	}
	id, err := st.SendMarker(r.Context(), to, chi.URLParam(r, "marker"), chi.URLParam(r, "id"), extra)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusAccepted, MessageResponse{ID: id})
}

// deleteMessage godoc
//
//	@Summary		Delete (retract) a sent message
//	@Description	Sends both the ConnectyCube <remove/> and the XEP-0424 <retract/> for message {id}. The receiver gets a "delete" event.
//	@Tags			messages
//	@Accept			json
//	@Produce		json
//	@Param			streamid	path		string			true	"stream id"
//	@Param			jid			path		string			true	"the message's recipient"
//	@Param			id			path		string			true	"id of the message to delete"
//	@Param			body		body		MarkerRequest	false	"extraParams such as dialog_id"
//	@Success		202			{object}	MessageResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/messages/{jid}/{id} [delete]
func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request, _ *principal, st messageStream) error {
	if err := s.sendAllowed(st); err != nil {
		return err
	}
	to, extra, err := s.targetAndExtra(w, r)
	if err != nil {
		return err
	}
	id, err := st.SendDelete(r.Context(), to, chi.URLParam(r, "id"), extra)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusAccepted, MessageResponse{ID: id})
}

// editMessage godoc
//
//	@Summary		Edit (correct) a sent message
//	@Description	XEP-0308 last message correction of message {id}; the body is the new message (same JSON as sending). The receiver gets an "edit" event with replace_id.
//	@Tags			messages
//	@Accept			json,plain
//	@Produce		json
//	@Param			streamid	path		string			true	"stream id"
//	@Param			jid			path		string			true	"the message's recipient"
//	@Param			id			path		string			true	"id of the message to correct"
//	@Param			body		body		MessageRequest	true	"the corrected message"
//	@Success		202			{object}	MessageResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/messages/{jid}/{id} [put]
func (s *Server) editMessage(w http.ResponseWriter, r *http.Request, _ *principal, st messageStream) error {
	return s.sendMessageWith(w, r, st, chi.URLParam(r, "id"))
}

// targetAndExtra reads the {jid} path segment and an optional JSON body of
// extraParams.
func (s *Server) targetAndExtra(w http.ResponseWriter, r *http.Request) (to jid.JID, extra map[string]string, err error) {
	if to, err = jidParam(r); err != nil {
		return to, nil, err
	}
	body, err := s.readBody(w, r)
	if err != nil || len(body) == 0 {
		return to, nil, err
	}
	if isJSON, err := bodyKind(r); err != nil || !isJSON {
		return to, nil, errUnsupportedMedia.wrap("send application/json")
	}
	var req MarkerRequest
	if err := decodeJSON(body, &req); err != nil {
		return to, nil, err
	}
	extra, err = stringMap("extraParams", req.ExtraParams)
	return to, extra, err
}
