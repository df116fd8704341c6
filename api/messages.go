package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// messageStream is what the message routes (messages.go, chatstates.go)
// need of a stream.
type messageStream interface {
	streamIdentity
	SendMessage(ctx context.Context, m gateway.OutgoingMessage) (string, error)
	SendMarker(ctx context.Context, to jid.JID, marker, id string, extra map[string]string) (string, error)
	SendChatState(ctx context.Context, to jid.JID, state string) error
	SendDelete(ctx context.Context, to jid.JID, id string, extra map[string]string) (string, error)
}

// asMessages narrows a Stream for the message routes.
func asMessages(st Stream) messageStream { return st }

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
	// ExtraParams are ConnectyCube extraParams (save_to_history, date_sent,
	// dialog_id, silent, custom keys); values may be strings, numbers or booleans.
	ExtraParams map[string]any `json:"extraParams,omitempty" swaggertype:"object"`
	// Attachments: type, id, url, data, size, width, height, duration, content-type, name.
	Attachments []map[string]any `json:"attachments,omitempty"`
	// Markable asks the receiver for received/displayed markers (XEP-0333).
	Markable bool `json:"markable,omitempty"`
	// ChatState (active, composing, paused, inactive, gone) travels with the message.
	ChatState string `json:"chatstate,omitempty" example:"active"`
	// DestroyAfter asks the receiver to delete the message after that many seconds.
	DestroyAfter int `json:"destroy_after,omitempty"`
}

// outgoing turns the request into a gateway message for to.
func (req MessageRequest) outgoing(to jid.JID) (gateway.OutgoingMessage, error) {
	extra, err := stringMap("extraParams", req.ExtraParams)
	if err != nil {
		return gateway.OutgoingMessage{}, err
	}
	var attachments []map[string]string
	for i, a := range req.Attachments {
		m, err := stringMap(fmt.Sprintf("attachments[%d]", i), a)
		if err != nil {
			return gateway.OutgoingMessage{}, err
		}
		attachments = append(attachments, m)
	}
	return gateway.OutgoingMessage{To: to, Type: req.Type, ID: req.ID, Body: req.Body, Subject: req.Subject,
		Thread: req.Thread, Data: req.Data, ExtraParams: extra, Attachments: attachments, Markable: req.Markable,
		ChatState: req.ChatState, DestroyAfter: req.DestroyAfter}, nil
}

// stringMap accepts JSON strings, numbers and booleans as values (the
// ConnectyCube examples send date_sent as a number) and renders them as
// the XML text they become.
func stringMap(field string, in map[string]any) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		switch t := v.(type) {
		case string:
			out[k] = t
		case float64:
			out[k] = strconv.FormatFloat(t, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(t)
		default:
			return nil, errInvalidParameter.wrap("%s.%s must be a string, number or boolean", field, k)
		}
	}
	return out, nil
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
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		413			{object}	ErrorResponse
//	@Failure		415			{object}	ErrorResponse
//	@Failure		429			{object}	ErrorResponse	"sending too fast"
//	@Failure		503			{object}	ErrorResponse	"stream reconnecting"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/messages/{jid} [post]
func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request, _ *principal, st messageStream) error {
	return s.sendMessageWith(w, r, st, "")
}

// sendMessageWith sends a message, or with replaceID its correction.
func (s *Server) sendMessageWith(w http.ResponseWriter, r *http.Request, st messageStream, replaceID string) error {
	to, err := jidParam(r)
	if err != nil {
		return err
	}
	m, err := s.outgoingMessage(w, r, st, to)
	if err != nil {
		return err
	}
	m.ReplaceID = replaceID
	id, err := st.SendMessage(r.Context(), m)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusAccepted, MessageResponse{ID: id})
}

// sendAllowed spends one unit of the stream's send rate: every route and
// every WebSocket command that puts a stanza on the wire calls it, so no
// transport floods the XMPP server or allows what the other refuses.
func (s *Server) sendAllowed(st streamIdentity) error {
	if ok, wait := s.sends.Take(st.ID()); !ok {
		return tooMany(errSendRateLimited, wait)
	}
	return nil
}

// outgoingMessage applies the stream's send rate and reads the request
// body as a message to to.
func (s *Server) outgoingMessage(w http.ResponseWriter, r *http.Request, st streamIdentity, to jid.JID) (gateway.OutgoingMessage, error) {
	if err := s.sendAllowed(st); err != nil {
		return gateway.OutgoingMessage{}, err
	}
	req, err := s.messageRequest(w, r)
	if err != nil {
		return gateway.OutgoingMessage{}, err
	}
	return s.checkedMessage(req, to)
}

// checkedMessage applies the limits every transport shares (REST and the
// WebSocket commands both pass here, so neither can send what the other
// refuses) and maps the request onto the gateway's message for to.
func (s *Server) checkedMessage(req MessageRequest, to jid.JID) (gateway.OutgoingMessage, error) {
	if len(req.Body) > s.cfg.MaxMessageBytes {
		return gateway.OutgoingMessage{}, errTooLarge.wrap("message body exceeds %d bytes", s.cfg.MaxMessageBytes)
	}
	return req.outgoing(to)
}

// messageRequest reads a message body: JSON, or text/plain as the body.
func (s *Server) messageRequest(w http.ResponseWriter, r *http.Request) (MessageRequest, error) {
	var req MessageRequest
	body, err := s.readBody(w, r)
	if err != nil {
		return req, err
	}
	isJSON, err := bodyKind(r)
	if err != nil {
		return req, err
	}
	if isJSON {
		err = decodeJSON(body, &req)
	} else {
		req.Body, err = readText(body)
	}
	return req, err
}
