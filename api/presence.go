package api

import (
	"context"
	"net/http"
	"strconv"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// presenceStream is what the presence route needs of a stream.
type presenceStream interface {
	streamIdentity
	SetPresence(ctx context.Context, p gateway.OutgoingPresence) error
}

// asPresence narrows a Stream for the presence route.
func asPresence(st Stream) presenceStream { return st }

// PresenceRequest is the JSON form of a presence change; the same fields
// work as query parameters.
type PresenceRequest struct {
	// Show is available, away, chat, dnd, xa or offline (offline sends unavailable).
	Show   string `json:"show,omitempty" example:"away"`
	Status string `json:"status,omitempty" example:"in a meeting"`
	// Priority defaults to 0; a negative priority stops messages being routed to this stream.
	Priority *int `json:"priority,omitempty" example:"0"`
	// To makes the presence directed (or a subscription request) instead of broadcast.
	To string `json:"to,omitempty" example:"bob@localhost"`
	// Type is available (default), unavailable, subscribe, subscribed, unsubscribe or unsubscribed.
	Type string `json:"type,omitempty" example:"subscribe"`
}

// setPresence godoc
//
//	@Summary		Set presence
//	@Description	Broadcasts presence to subscribed contacts, or sends directed/subscription presence when "to" is given. Parameters come as query parameters or as a JSON body.
//	@Tags			presence
//	@Accept			json
//	@Produce		json
//	@Param			streamid	path	string			true	"stream id"
//	@Param			show		query	string			false	"available, away, chat, dnd, xa or offline"
//	@Param			status		query	string			false	"status text"
//	@Param			priority	query	int				false	"-128..127, default 0"
//	@Param			to			query	string			false	"JID for directed or subscription presence"
//	@Param			type		query	string			false	"available, unavailable, subscribe, subscribed, unsubscribe, unsubscribed"
//	@Param			body		body	PresenceRequest	false	"the same fields as JSON"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		429	{object}	ErrorResponse	"stream send rate exceeded (Retry-After)"
//	@Failure		503	{object}	ErrorResponse	"stream reconnecting"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/presence [post]
func (s *Server) setPresence(w http.ResponseWriter, r *http.Request, _ *principal, st presenceStream) error {
	if err := s.sendAllowed(st); err != nil {
		return err
	}
	req, err := s.presenceRequest(w, r)
	if err != nil {
		return err
	}
	p, err := req.toPresence()
	if err != nil {
		return err
	}
	if err := st.SetPresence(r.Context(), p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) presenceRequest(w http.ResponseWriter, r *http.Request) (PresenceRequest, error) {
	var req PresenceRequest
	body, err := s.readBody(w, r)
	if err != nil {
		return req, err
	}
	if len(body) > 0 {
		isJSON, err := bodyKind(r)
		if err != nil {
			return req, err
		}
		if !isJSON {
			return req, errUnsupportedMedia.wrap("presence takes query parameters or a JSON body")
		}
		return req, decodeJSON(body, &req)
	}
	q := r.URL.Query()
	req.Show, req.Status, req.To, req.Type = q.Get("show"), q.Get("status"), q.Get("to"), q.Get("type")
	if v := q.Get("priority"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return req, errInvalidParameter.wrap("priority must be an integer")
		}
		req.Priority = &n
	}
	return req, nil
}

// toPresence maps the API vocabulary (which has "available" and "offline"
// as shows, like the ancestor) onto RFC 6121 presence.
func (req PresenceRequest) toPresence() (gateway.OutgoingPresence, error) {
	p := gateway.OutgoingPresence{Status: req.Status, Type: req.Type}
	if p.Type == "available" {
		p.Type = ""
	}
	switch req.Show {
	case "", "available":
	case "offline":
		if p.Type != "" && p.Type != "unavailable" {
			return p, errInvalidParameter.wrap("show=offline contradicts type=%s", req.Type)
		}
		p.Type = "unavailable"
	default:
		p.Show = req.Show
	}
	if req.Priority != nil {
		p.Priority = *req.Priority
	}
	if req.To != "" {
		to, err := gateway.ParseAddress(req.To)
		if err != nil {
			return p, err
		}
		p.To = to
	}
	if p.To.Equal(jid.JID{}) && p.Type != "" && p.Type != "unavailable" {
		return p, errInvalidParameter.wrap("type=%s needs to", p.Type)
	}
	return p, nil
}
