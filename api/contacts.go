package api

import (
	"context"
	"net/http"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// rosterStream is what the contact (roster) routes need of a stream.
type rosterStream interface {
	Contacts(ctx context.Context) ([]gateway.Contact, error)
	SetContact(ctx context.Context, who jid.JID, name string, groups []string) error
	RemoveContact(ctx context.Context, who jid.JID) error
	SetPresence(ctx context.Context, p gateway.OutgoingPresence) error
}

// asRoster narrows a Stream for the contact routes.
func asRoster(st Stream) rosterStream { return st }

// ContactRequest names and groups a contact.
type ContactRequest struct {
	Name   string   `json:"name,omitempty" example:"Bob"`
	Groups []string `json:"groups,omitempty" example:"Friends"`
}

// listContacts godoc
//
//	@Summary		List contacts with live presence
//	@Description	The roster (RFC 6121) with each contact's subscription (none, to, from, both), pending ask, and current presence; offline contacts say so.
//	@Tags			contacts
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Success		200			{array}		gateway.Contact
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/contacts [get]
func (s *Server) listContacts(w http.ResponseWriter, r *http.Request, _ *principal, st rosterStream) error {
	contacts, err := st.Contacts(r.Context())
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, contacts)
}

// addContact godoc
//
//	@Summary		Add a contact and ask for their presence
//	@Description	Adds the roster item and sends a subscription request; the contact's answer arrives as a "subscription" event and roster pushes as "roster" events.
//	@Tags			contacts
//	@Accept			json
//	@Param			streamid	path	string			true	"stream id"
//	@Param			jid			path	string			true	"contact JID"
//	@Param			body		body	ContactRequest	false	"name and groups"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/contacts/{jid} [post]
func (s *Server) addContact(w http.ResponseWriter, r *http.Request, p *principal, st rosterStream) error {
	return s.writeContact(w, r, st, true)
}

// updateContact godoc
//
//	@Summary		Rename or regroup a contact
//	@Description	Changes name and groups; the subscription is left as it is.
//	@Tags			contacts
//	@Accept			json
//	@Param			streamid	path	string			true	"stream id"
//	@Param			jid			path	string			true	"contact JID"
//	@Param			body		body	ContactRequest	true	"name and groups"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/contacts/{jid} [put]
func (s *Server) updateContact(w http.ResponseWriter, r *http.Request, p *principal, st rosterStream) error {
	return s.writeContact(w, r, st, false)
}

func (s *Server) writeContact(w http.ResponseWriter, r *http.Request, st rosterStream, subscribe bool) error {
	who, err := jidParam(r)
	if err != nil {
		return err
	}
	var req ContactRequest
	if body, err := s.readBody(w, r); err != nil {
		return err
	} else if len(body) > 0 {
		if isJSON, err := bodyKind(r); err != nil || !isJSON {
			return errUnsupportedMedia.wrap("send application/json")
		}
		if err := decodeJSON(body, &req); err != nil {
			return err
		}
	}
	if err := st.SetContact(r.Context(), who, req.Name, req.Groups); err != nil {
		return err
	}
	if subscribe {
		if err := st.SetPresence(r.Context(), gateway.OutgoingPresence{To: who.Bare(), Type: "subscribe"}); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeContact godoc
//
//	@Summary		Remove a contact
//	@Description	Removes the roster item; the server cancels the subscriptions both ways.
//	@Tags			contacts
//	@Param			streamid	path	string	true	"stream id"
//	@Param			jid			path	string	true	"contact JID"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/contacts/{jid} [delete]
func (s *Server) removeContact(w http.ResponseWriter, r *http.Request, _ *principal, st rosterStream) error {
	who, err := jidParam(r)
	if err != nil {
		return err
	}
	if err := st.RemoveContact(r.Context(), who); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// approveContact godoc
//
//	@Summary	Approve a subscription request
//	@Tags		contacts
//	@Param		streamid	path	string	true	"stream id"
//	@Param		jid			path	string	true	"who asked"
//	@Success	204
//	@Failure	400	{object}	ErrorResponse
//	@Failure	401	{object}	ErrorResponse
//	@Failure	404	{object}	ErrorResponse
//	@Failure	410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/contacts/{jid}/approve [post]
func (s *Server) approveContact(w http.ResponseWriter, r *http.Request, _ *principal, st rosterStream) error {
	return s.answerSubscription(w, r, st, "subscribed")
}

// denyContact godoc
//
//	@Summary	Deny (or revoke) a subscription
//	@Tags		contacts
//	@Param		streamid	path	string	true	"stream id"
//	@Param		jid			path	string	true	"who asked"
//	@Success	204
//	@Failure	400	{object}	ErrorResponse
//	@Failure	401	{object}	ErrorResponse
//	@Failure	404	{object}	ErrorResponse
//	@Failure	410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/contacts/{jid}/deny [post]
func (s *Server) denyContact(w http.ResponseWriter, r *http.Request, _ *principal, st rosterStream) error {
	return s.answerSubscription(w, r, st, "unsubscribed")
}

func (s *Server) answerSubscription(w http.ResponseWriter, r *http.Request, st rosterStream, typ string) error {
	who, err := jidParam(r)
	if err != nil {
		return err
	}
	if err := st.SetPresence(r.Context(), gateway.OutgoingPresence{To: who.Bare(), Type: typ}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
