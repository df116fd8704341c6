package api

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/xmppgw/xmppgw/gateway"
)

// MessageRequest is the JSON form of a message; a text/plain body is sent
// as a chat message with that body.
type MessageRequest struct {
	Body string `json:"body,omitempty" example:"Hello, Bob"`
	// Type is chat (default), normal or headline.
	Type string `json:"type,omitempty" example:"chat"`
	// ID is an optional client-chosen stanza id (A-Z a-z 0-9 . _ : -, up to 128).
	ID      string `json:"id,omitempty" example:"m-1"`
	Subject string `json:"subject,omitempty"`
	Thread  string `json:"thread,omitempty"`
	// Data is any JSON value, delivered to gateway clients as the event's "data".
	Data json.RawMessage `json:"data,omitempty" swaggertype:"object"`
}

// MessageResponse names the stanza that was sent.
type MessageResponse struct {
	ID string `json:"id" example:"6f1c2b9e0a7d4c3b2a1f0e9d"`
}

// sendMessage godoc
//
//	@Summary		Send a 1:1 message
//	@Description	Sends a message to a JID. A bounce arrives later on the event stream as an "error" event with this id.
//	@Tags			messages
//	@Accept			json,plain
//	@Produce		json
//	@Param			streamid	path		string			true	"stream id"
//	@Param			jid			path		string			true	"recipient JID"
//	@Param			body		body		MessageRequest	true	"JSON message, or the body as text/plain"
//	@Success		202			{object}	MessageResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		413			{object}	ErrorResponse
//	@Failure		415			{object}	ErrorResponse
//	@Failure		429			{object}	ErrorResponse	"sending too fast"
//	@Failure		503			{object}	ErrorResponse	"stream reconnecting"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/messages/{jid} [post]
func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request, _ *principal, st *gateway.Stream) error {
	to, err := gateway.ParseAddress(chi.URLParam(r, "jid"))
	if err != nil {
		return err
	}
	if ok, wait := s.sends.take(st.ID()); !ok {
		return tooMany(errSendRateLimited, wait)
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	isJSON, err := bodyKind(r)
	if err != nil {
		return err
	}
	var req MessageRequest
	if isJSON {
		if err := decodeJSON(body, &req); err != nil {
			return err
		}
	} else if req.Body, err = readText(body); err != nil {
		return err
	}
	if len(req.Body) > s.cfg.MaxMessageBytes {
		return errTooLarge.wrap("message body exceeds %d bytes", s.cfg.MaxMessageBytes)
	}
	id, err := st.SendMessage(r.Context(), gateway.OutgoingMessage{To: to, Type: req.Type, ID: req.ID,
		Body: req.Body, Subject: req.Subject, Thread: req.Thread, Data: req.Data})
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusAccepted, MessageResponse{ID: id})
}
