package api

import (
	"context"
	"encoding/json"
	"net/http"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// commandStream is what the command routes need of a stream.
type commandStream interface {
	streamIdentity
	SendCommand(ctx context.Context, to jid.JID, cmd gateway.Command) (string, error)
	SendRaw(ctx context.Context, st gateway.RawStanza) error
}

// asCommands narrows a Stream for the command routes.
func asCommands(st Stream) commandStream { return st }

// CommandRequest is an x:oob service command.
type CommandRequest struct {
	Type    string          `json:"type" example:"cmd_get_channels"`
	Action  string          `json:"action,omitempty" example:"cmd_get_channels"`
	Payload json.RawMessage `json:"payload,omitempty" swaggertype:"object"`
}

// sendCommand godoc
//
//	@Summary		Send an x:oob service command
//	@Description	Sends <x xmlns='jabber:x:oob'><type/><action/><payload>JSON</payload></x> (the "XMPP service" command protocol). Replies arrive as "command" events with the payload parsed leniently; in_reply_to names this id when the reply echoes it.
//	@Tags			messages
//	@Accept			json
//	@Produce		json
//	@Param			streamid	path		string			true	"stream id"
//	@Param			jid			path		string			true	"the service's JID"
//	@Param			body		body		CommandRequest	true	"command"
//	@Success		202			{object}	MessageResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/commands/{jid} [post]
func (s *Server) sendCommand(w http.ResponseWriter, r *http.Request, _ *principal, st commandStream) error {
	if err := s.sendAllowed(st); err != nil {
		return err
	}
	to, err := jidParam(r)
	if err != nil {
		return err
	}
	var req CommandRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	id, err := st.SendCommand(r.Context(), to, gateway.Command{Type: req.Type, Action: req.Action, Payload: req.Payload})
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusAccepted, MessageResponse{ID: id})
}

// sendRaw godoc
//
//	@Summary		Send one raw stanza
//	@Description	The escape hatch: one well-formed message, presence or iq (no from attribute, no DTD), validated and re-encoded before sending. Answers to raw IQs arrive as "xmpp" events.
//	@Tags			messages
//	@Accept			xml
//	@Param			streamid	path	string	true	"stream id"
//	@Param			body		body	string	true	"the stanza"
//	@Success		202
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/xmpp [post]
func (s *Server) sendRaw(w http.ResponseWriter, r *http.Request, _ *principal, st commandStream) error {
	if err := s.sendAllowed(st); err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	n, err := gateway.ParseRawStanza(body)
	if err != nil {
		return err
	}
	if err := st.SendRaw(r.Context(), n); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
