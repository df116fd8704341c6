package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"

	"github.com/go-chi/chi/v5"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/fastpath"
	"github.com/xmppgw/xmppgw/gateway"
)

// agentStream is what the agent routes of fastpath (assists, offers)
// need of a stream.
type agentStream interface {
	streamIdentity
	LeaveRoom(ctx context.Context, room jid.JID) error
	OpenConversationRoom(ctx context.Context, room, user jid.JID, workgroup, question string) error
}

// asAgent narrows a Stream for the agent routes.
func asAgent(st Stream) agentStream { return st }

// Fastpath: workgroup expert queues run by the gateway (package fastpath),
// conversations in members-only MUC rooms on conference.<domain>.

// fastpathError maps package fastpath's errors; nil for other errors.
func fastpathError(err error) *apiError {
	switch {
	case errors.Is(err, fastpath.ErrInvalid):
		return errInvalidParameter.saying(err.Error())
	case errors.Is(err, fastpath.ErrWorkgroupNotFound):
		return errWorkgroupNotFound
	case errors.Is(err, fastpath.ErrTicketNotFound):
		return errTicketNotFound
	case errors.Is(err, fastpath.ErrOfferNotFound):
		return errOfferNotFound
	case errors.Is(err, fastpath.ErrNotOnline):
		return errAgentNotOnline
	case errors.Is(err, fastpath.ErrNotMember):
		return errNotWorkgroupAgent
	case errors.Is(err, fastpath.ErrWorkgroupExists):
		return errWorkgroupExists
	case errors.Is(err, fastpath.ErrWorkgroupClosed):
		return errWorkgroupClosed
	case errors.Is(err, fastpath.ErrNoMembers):
		return errWorkgroupNoAgents
	case errors.Is(err, fastpath.ErrTooManyTickets):
		return errTooManyTickets
	}
	return nil
}

// fastpathChatRoutes adds the agent side under /restapi/v1/chat, in the
// summary and the {streamid} forms. cmd binds the service to the streams
// (fastpath.StreamHooks).
func (s *Server) fastpathChatRoutes(r chi.Router) {
	for _, prefix := range []string{"", "/{streamid}"} {
		r.Get(prefix+"/assists", s.streamRoute(on(asAgent, s.listAssists)))
		r.Get(prefix+"/assists/queues", s.streamRoute(on(asAgent, s.assistQueues)))
		r.Post(prefix+"/assists/{workgroup}", s.streamRoute(on(asAgent, s.assistOnline)))
		r.Delete(prefix+"/assists/{workgroup}", s.streamRoute(on(asAgent, s.assistOffline)))
		r.Put(prefix+"/assists/{workgroup}/{offerId}", s.streamRoute(on(asAgent, s.acceptAssist)))
		r.Delete(prefix+"/assists/{workgroup}/{offerId}", s.streamRoute(on(asAgent, s.rejectAssist)))
		r.Post(prefix+"/offer/{offerId}", s.streamRoute(on(asAgent, s.acceptOffer)))
		r.Delete(prefix+"/offer/{offerId}", s.streamRoute(on(asAgent, s.rejectOffer)))
	}
}

// askRoutes adds the user side, /restapi/v1/ask.
func (s *Server) askRoutes(r chi.Router) {
	r.Post("/restapi/v1/ask", s.principalRoute(s.ask))
	r.Get("/restapi/v1/ask/{ticket}", s.principalRoute(s.getTicket))
	r.Delete("/restapi/v1/ask/{ticket}", s.principalRoute(s.leaveTicket))
	r.Get("/restapi/v1/ask/{ticket}/transcript", s.principalRoute(s.ticketTranscript))
}

// fastpathAdminRoutes adds workgroup administration under /restapi/v1/admin.
func (s *Server) fastpathAdminRoutes(r chi.Router) {
	r.Get("/workgroups", s.adminRoute(s.listWorkgroups))
	r.Post("/workgroups", s.adminRoute(s.createWorkgroup))
	r.Get("/workgroups/{workgroup}", s.adminRoute(s.getWorkgroup))
	r.Put("/workgroups/{workgroup}", s.adminRoute(s.updateWorkgroup))
	r.Delete("/workgroups/{workgroup}", s.adminRoute(s.deleteWorkgroup))
}

// principalRoute admits any authenticated caller; HTTP Basic users must
// match one of their live streams (the only password knowledge the
// gateway has).
func (s *Server) principalRoute(h principalHandlerFunc) http.HandlerFunc {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticate(r, fromHeader)
		if err != nil {
			return err
		}
		if err := s.verifyBasicUser(r, p); err != nil {
			return err
		}
		return h(w, r, p)
	})
}

// --- agents ---

// AssistList is the workgroups an agent is online in (the ancestor's shape).
type AssistList struct {
	Workgroup []string `json:"workgroup"`
}

// listAssists godoc
//
//	@Summary	Workgroups I am online in as an agent
//	@Tags		fastpath
//	@Produce	json
//	@Param		streamid	path		string	true	"stream id"
//	@Success	200			{object}	AssistList
//	@Failure	401			{object}	ErrorResponse
//	@Failure	404			{object}	ErrorResponse
//	@Failure	410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure	503			{object}	ErrorResponse	"fastpath not enabled"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/assists [get]
func (s *Server) listAssists(w http.ResponseWriter, r *http.Request, _ *principal, st agentStream) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpAgentWorkgroups, User: st.User().String()})
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, AssistList{Workgroup: nonNil(res.Names)})
}

// QueueList is the queues of an agent's workgroups.
type QueueList struct {
	Queue []fastpath.QueueInfo `json:"queue"`
}

// assistQueues godoc
//
//	@Summary		The queues of my workgroups
//	@Description	For each workgroup I am online in: status (open: an agent can take a request; active: open but every agent is busy; closed), the waiting users with position and estimated wait (seconds), average wait, oldest entry, my current and maximum chats.
//	@Tags			fastpath
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Success		200			{object}	QueueList
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		503			{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/assists/queues [get]
func (s *Server) assistQueues(w http.ResponseWriter, r *http.Request, _ *principal, st agentStream) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpQueues, User: st.User().String()})
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, QueueList{Queue: nonNil(res.Queues)})
}

// assistOnline godoc
//
//	@Summary		Go online as an agent of a workgroup
//	@Description	Offers (offerReceived events) and queue updates (notify-queue) then arrive on this stream. Offers are made only while the stream's presence is not dnd, xa or offline. An agent may be online in several workgroups.
//	@Tags			fastpath
//	@Param			streamid	path	string	true	"stream id"
//	@Param			workgroup	path	string	true	"workgroup name"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse	"not a member"
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		503	{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/assists/{workgroup} [post]
func (s *Server) assistOnline(w http.ResponseWriter, r *http.Request, _ *principal, st agentStream) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	if _, err := fp.do(r.Context(), fastpathCall{Op: fpAgentOnline, User: st.User().String(), Stream: st.ID(), Workgroup: chi.URLParam(r, "workgroup")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// assistOffline godoc
//
//	@Summary		Go offline as an agent of a workgroup
//	@Description	Pending offers there are revoked and routed to other agents.
//	@Tags			fastpath
//	@Param			streamid	path	string	true	"stream id"
//	@Param			workgroup	path	string	true	"workgroup name"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse	"not online there"
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		503	{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/assists/{workgroup} [delete]
func (s *Server) assistOffline(w http.ResponseWriter, r *http.Request, _ *principal, st agentStream) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	if _, err := fp.do(r.Context(), fastpathCall{Op: fpAgentOffline, User: st.User().String(), Workgroup: chi.URLParam(r, "workgroup")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// AcceptResponse is an accepted offer's conversation.
type AcceptResponse struct {
	Ticket string `json:"ticket"`
	Room   string `json:"room" example:"wg-3f2a…@conference.localhost"`
}

// acceptAssist godoc
//
//	@Summary		Accept an offer
//	@Description	Creates a members-only room with an unguessable name on conference.<domain>, joins it with this stream (as owner), makes the user a member and invites them. This stream gets invitationReceived, the user an "offer" event with mucRoom; both then chat with the rooms API. The summary form PUT /chat/assists/{workgroup}/{offerId} is the README's.
//	@Tags			fastpath
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Param			workgroup	path		string	true	"workgroup name"
//	@Param			offerId		path		string	true	"the id of the offerReceived event"
//	@Success		200			{object}	AcceptResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse	"no such offer (or not yours, or revoked)"
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		503			{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/assists/{workgroup}/{offerId} [put]
func (s *Server) acceptAssist(w http.ResponseWriter, r *http.Request, _ *principal, st agentStream) error {
	return s.accept(w, r, st, chi.URLParam(r, "workgroup"))
}

// acceptOffer godoc
//
//	@Summary		Accept an offer (the ancestor's form)
//	@Description	Same as PUT /chat/{streamid}/assists/{workgroup}/{offerId}.
//	@Tags			fastpath
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Param			offerId		path		string	true	"the id of the offerReceived event"
//	@Success		200			{object}	AcceptResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse	"no such offer (or not yours, or revoked)"
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		503			{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/offer/{offerId} [post]
func (s *Server) acceptOffer(w http.ResponseWriter, r *http.Request, _ *principal, st agentStream) error {
	return s.accept(w, r, st, "")
}

func (s *Server) accept(w http.ResponseWriter, r *http.Request, st agentStream, workgroup string) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpAccept, User: st.User().String(), Offer: chi.URLParam(r, "offerId"), Workgroup: workgroup})
	if err != nil {
		return err
	}
	t := res.info()
	room, err := s.workgroupRoom(r.Context(), st, t)
	if err != nil {
		_, _ = fp.do(r.Context(), fastpathCall{Op: fpAcceptFailed, Ticket: t.Ticket, Reason: "the room could not be created"})
		return err
	}
	if _, err := fp.do(r.Context(), fastpathCall{Op: fpRoomReady, Ticket: t.Ticket, Room: room.String(), Agent: st.JID()}); err != nil {
		return err // the user left meanwhile
	}
	return writeOK(w, http.StatusOK, AcceptResponse{Ticket: t.Ticket, Room: room.String()})
}

// workgroupRoom names the conversation's room on the default MUC service
// and has the agent's stream open it (gateway.Stream.OpenConversationRoom).
func (s *Server) workgroupRoom(ctx context.Context, st agentStream, t fastpath.TicketInfo) (jid.JID, error) {
	user, err := jid.Parse(t.User)
	if err != nil {
		return jid.JID{}, err
	}
	service, err := s.parseService("") // the default MUC service
	if err != nil {
		return jid.JID{}, err
	}
	room, err := service.WithLocal(t.RoomName)
	if err != nil {
		return jid.JID{}, errInvalidAddress.wrap("room: %v", err)
	}
	if err := st.OpenConversationRoom(ctx, room, user, t.Workgroup, t.Question); err != nil {
		return jid.JID{}, err
	}
	return room, nil
}

// rejectAssist godoc
//
//	@Summary		Reject an offer
//	@Description	The request is offered to the next available agent; this agent is skipped for it for a minute.
//	@Tags			fastpath
//	@Param			streamid	path	string	true	"stream id"
//	@Param			workgroup	path	string	true	"workgroup name"
//	@Param			offerId		path	string	true	"the id of the offerReceived event"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse	"no such offer"
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		503	{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/assists/{workgroup}/{offerId} [delete]
func (s *Server) rejectAssist(w http.ResponseWriter, r *http.Request, _ *principal, st agentStream) error {
	return s.reject(w, r, st, chi.URLParam(r, "workgroup"))
}

// rejectOffer godoc
//
//	@Summary	Reject an offer (the ancestor's form)
//	@Tags		fastpath
//	@Param		streamid	path	string	true	"stream id"
//	@Param		offerId		path	string	true	"the id of the offerReceived event"
//	@Success	204
//	@Failure	401	{object}	ErrorResponse
//	@Failure	404	{object}	ErrorResponse	"no such offer"
//	@Failure	410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure	503	{object}	ErrorResponse	"fastpath not enabled"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/offer/{offerId} [delete]
func (s *Server) rejectOffer(w http.ResponseWriter, r *http.Request, _ *principal, st agentStream) error {
	return s.reject(w, r, st, "")
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, st agentStream, workgroup string) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	if _, err := fp.do(r.Context(), fastpathCall{Op: fpReject, User: st.User().String(), Offer: chi.URLParam(r, "offerId"), Workgroup: workgroup}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- users ---

// AskRequest asks a workgroup for an expert. Other string fields are kept
// as metadata and shown to the agents in the offer.
type AskRequest struct {
	Workgroup    string `json:"workgroup" example:"diabetes"`
	Question     string `json:"question" example:"What is the meaning of life"`
	EmailAddress string `json:"emailAddress" example:"visitor@hospital.com"`
	UserID       string `json:"userID,omitempty" example:"visitor"`
	Nickname     string `json:"nickname,omitempty"`
}

var metadataKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)

// ask godoc
//
//	@Summary		Ask a workgroup for an expert
//	@Description	Queues the request and answers at once with a ticket (never waits for an agent). Events go to the caller's stream (the token's; admins add ?streamid=): update-queue {position, remaining_time} while waiting, then "offer" {mucRoom} when an agent accepted, or depart-queue {reason}. Extra string fields (product, company, ...) become offer metadata. 409 when the workgroup is closed or has no members.
//	@Tags			fastpath
//	@Accept			json
//	@Produce		json
//	@Param			body		body		AskRequest	true	"the request"
//	@Param			streamid	query		string		false	"the stream for events (admins only; users get their token's)"
//	@Success		202			{object}	fastpath.TicketInfo
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse	"no such workgroup"
//	@Failure		409			{object}	ErrorResponse	"closed or without members"
//	@Failure		503			{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/ask [post]
func (s *Server) ask(w http.ResponseWriter, r *http.Request, p *principal) error {
	if s.forward(w, r, p, callerStreamID(p, r.URL.Query().Get("streamid"))) {
		return nil // the asker's stream is on another node, which asks
	}
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	st, err := s.resolveStream(p, r.URL.Query().Get("streamid"))
	if err != nil {
		return err
	}
	var raw map[string]any
	if err := s.readJSON(w, r, &raw); err != nil {
		return err
	}
	req := fastpath.AskRequest{User: st.User().String(), Stream: st.ID(), Metadata: map[string]string{}}
	fields := map[string]*string{"workgroup": &req.Workgroup, "question": &req.Question, "emailAddress": &req.Email,
		"userID": &req.UserID, "nickname": &req.Nickname}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := raw[k].(string)
		if !ok {
			return errInvalidParameter.wrap("%s must be a string", k)
		}
		if len(v) > 4096 {
			return errInvalidParameter.wrap("%s is too long", k)
		}
		// These travel in room names, invitations and offers: refuse what
		// XML cannot carry now, not at every accept.
		if err := gateway.CheckText(k, v); err != nil {
			return err
		}
		if dst, ok := fields[k]; ok {
			*dst = v
			continue
		}
		if !metadataKey.MatchString(k) || len(req.Metadata) >= 32 {
			return errInvalidParameter.wrap("metadata key %q: letters, digits, _ . -, at most 32 keys", k)
		}
		req.Metadata[k] = v
	}
	if req.Workgroup == "" || req.Question == "" || req.Email == "" {
		return errInvalidParameter.wrap("workgroup, question and emailAddress are required")
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpAsk, Ask: &req})
	t := res.info()
	if err != nil {
		return err
	}
	if p.admin {
		s.auditLog(r, p, "fastpath.ask", st.User().String())
	}
	return writeOK(w, http.StatusAccepted, t)
}

func (s *Server) ownedTicket(r *http.Request, p *principal) (fastpath.TicketInfo, error) {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return fastpath.TicketInfo{}, err
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpTicket, Ticket: chi.URLParam(r, "ticket"), User: p.user.String(), Admin: p.admin})
	return res.info(), err
}

// getTicket godoc
//
//	@Summary		A request's status
//	@Description	state (queued, accepting, chatting, ended), position and estimated wait while queued, room and agent once accepted. Only the ticket's owner (or an admin) sees it; for anyone else it does not exist.
//	@Tags			fastpath
//	@Produce		json
//	@Param			ticket	path		string	true	"ticket"
//	@Success		200		{object}	fastpath.TicketInfo
//	@Failure		401		{object}	ErrorResponse
//	@Failure		404		{object}	ErrorResponse
//	@Failure		503		{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/ask/{ticket} [get]
func (s *Server) getTicket(w http.ResponseWriter, r *http.Request, p *principal) error {
	t, err := s.ownedTicket(r, p)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, t)
}

// leaveTicket godoc
//
//	@Summary		Leave the queue or the conversation
//	@Description	While queued: out of the queue (a pending offer is revoked). Once accepted: the user's stream leaves the room and the agent's capacity is freed. Ending an ended ticket is a no-op.
//	@Tags			fastpath
//	@Param			ticket	path	string	true	"ticket"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		503	{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/ask/{ticket} [delete]
func (s *Server) leaveTicket(w http.ResponseWriter, r *http.Request, p *principal) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpLeave, Ticket: chi.URLParam(r, "ticket"), User: p.user.String(), Admin: p.admin})
	before := res.info()
	if err != nil {
		return err
	}
	if p.admin {
		s.auditLog(r, p, "fastpath.leave", before.User)
	}
	if before.Room != "" && before.State != fastpath.StateEnded {
		if st, err := s.streams.Stream(before.Stream); err == nil {
			if room, err := jid.Parse(before.Room); err == nil {
				_ = st.LeaveRoom(r.Context(), room) // not joined is fine
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ticketTranscript godoc
//
//	@Summary		A conversation's transcript
//	@Description	The room's archive (MUC MAM), read through the caller's stream (the token's; admins add ?streamid= of a stream that may read the room); same paging and shape as /messages. 409 before an agent accepted.
//	@Tags			fastpath
//	@Produce		json
//	@Param			ticket		path		string	true	"ticket"
//	@Param			streamid	query		string	false	"stream to read with (admins)"
//	@Param			after		query		string	false	"cursor"
//	@Param			before		query		string	false	"cursor (empty: the newest page)"
//	@Param			limit		query		int		false	"page size, default 50, at most 500"
//	@Success		200			{object}	gateway.HistoryPage
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		409			{object}	ErrorResponse	"not started"
//	@Failure		503			{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/ask/{ticket}/transcript [get]
func (s *Server) ticketTranscript(w http.ResponseWriter, r *http.Request, p *principal) error {
	if s.forward(w, r, p, callerStreamID(p, r.URL.Query().Get("streamid"))) {
		return nil // read through the caller's stream, on its node
	}
	t, err := s.ownedTicket(r, p)
	if err != nil {
		return err
	}
	if t.Room == "" {
		return errNotStarted
	}
	room, err := jid.Parse(t.Room)
	if err != nil {
		return fmt.Errorf("ticket room: %w", err)
	}
	st, err := s.resolveStream(p, r.URL.Query().Get("streamid"))
	if err != nil {
		return err
	}
	return s.history(w, r, st, room)
}

// --- administration ---

// WorkgroupList is every workgroup.
type WorkgroupList struct {
	Workgroups []fastpath.Workgroup `json:"workgroups"`
}

// listWorkgroups godoc
//
//	@Summary	List workgroups
//	@Tags		admin
//	@Produce	json
//	@Success	200	{object}	WorkgroupList
//	@Failure	401	{object}	ErrorResponse
//	@Failure	403	{object}	ErrorResponse
//	@Failure	503	{object}	ErrorResponse	"fastpath not enabled"
//	@Security	BasicAuth
//	@Security	BearerAuth
//	@Router		/restapi/v1/admin/workgroups [get]
func (s *Server) listWorkgroups(w http.ResponseWriter, r *http.Request, _ *principal) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpWorkgroups})
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, WorkgroupList{Workgroups: nonNil(res.Groups)})
}

// createWorkgroup godoc
//
//	@Summary		Create a workgroup
//	@Description	name (a-z 0-9 . _ -), description, members (agent bare JIDs, in routing order), max_chats per agent (default 2), offer_timeout seconds (default 30), routing "round-robin", open (default true: asks are accepted unless "open": false is given).
//	@Tags			admin
//	@Accept			json
//	@Produce		json
//	@Param			body	body		fastpath.Workgroup	true	"workgroup"
//	@Success		201		{object}	fastpath.Workgroup
//	@Failure		400		{object}	ErrorResponse
//	@Failure		401		{object}	ErrorResponse
//	@Failure		403		{object}	ErrorResponse
//	@Failure		409		{object}	ErrorResponse	"exists"
//	@Failure		503		{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BasicAuth
//	@Security		BearerAuth
//	@Router			/restapi/v1/admin/workgroups [post]
func (s *Server) createWorkgroup(w http.ResponseWriter, r *http.Request, p *principal) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	var wg fastpath.Workgroup
	if err := s.readJSON(w, r, &wg); err != nil {
		return err
	}
	if err := s.checkMembers(wg.Members); err != nil {
		return err
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpCreateWorkgroup, Group: &wg})
	out := groupOf(res)
	if err != nil {
		return err
	}
	s.auditLog(r, p, "workgroups.create", out.Name)
	return writeOK(w, http.StatusCreated, out)
}

// checkMembers requires bare JIDs, normalised as the gateway writes them.
func (s *Server) checkMembers(members []string) error {
	for i, m := range members {
		j, err := gateway.ParseAddress(m)
		if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
			return errInvalidAddress.wrap("members must be bare user JIDs like expert@%s", s.streams.Domain())
		}
		members[i] = j.String()
	}
	return nil
}

// getWorkgroup godoc
//
//	@Summary	A workgroup
//	@Tags		admin
//	@Produce	json
//	@Param		workgroup	path		string	true	"workgroup name"
//	@Success	200			{object}	fastpath.Workgroup
//	@Failure	401			{object}	ErrorResponse
//	@Failure	403			{object}	ErrorResponse
//	@Failure	404			{object}	ErrorResponse
//	@Failure	503			{object}	ErrorResponse	"fastpath not enabled"
//	@Security	BasicAuth
//	@Security	BearerAuth
//	@Router		/restapi/v1/admin/workgroups/{workgroup} [get]
func (s *Server) getWorkgroup(w http.ResponseWriter, r *http.Request, _ *principal) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpWorkgroup, Workgroup: chi.URLParam(r, "workgroup")})
	wg := groupOf(res)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, wg)
}

// updateWorkgroup godoc
//
//	@Summary		Replace a workgroup's configuration
//	@Description	Same body as creating (the name in the path wins). Closing it sends depart-queue to every queued user; removed members go offline in it.
//	@Tags			admin
//	@Accept			json
//	@Produce		json
//	@Param			workgroup	path		string				true	"workgroup name"
//	@Param			body		body		fastpath.Workgroup	true	"workgroup"
//	@Success		200			{object}	fastpath.Workgroup
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		403			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		503			{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BasicAuth
//	@Security		BearerAuth
//	@Router			/restapi/v1/admin/workgroups/{workgroup} [put]
func (s *Server) updateWorkgroup(w http.ResponseWriter, r *http.Request, p *principal) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	var wg fastpath.Workgroup
	if err := s.readJSON(w, r, &wg); err != nil {
		return err
	}
	if err := s.checkMembers(wg.Members); err != nil {
		return err
	}
	res, err := fp.do(r.Context(), fastpathCall{Op: fpUpdateWorkgroup, Workgroup: chi.URLParam(r, "workgroup"), Group: &wg})
	out := groupOf(res)
	if err != nil {
		return err
	}
	s.auditLog(r, p, "workgroups.update", out.Name)
	return writeOK(w, http.StatusOK, out)
}

// deleteWorkgroup godoc
//
//	@Summary		Delete a workgroup
//	@Description	Queued users get depart-queue; running conversations go on.
//	@Tags			admin
//	@Param			workgroup	path	string	true	"workgroup name"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		503	{object}	ErrorResponse	"fastpath not enabled"
//	@Security		BasicAuth
//	@Security		BearerAuth
//	@Router			/restapi/v1/admin/workgroups/{workgroup} [delete]
func (s *Server) deleteWorkgroup(w http.ResponseWriter, r *http.Request, p *principal) error {
	fp, err := s.fastpath(r.Context())
	if err != nil {
		return err
	}
	name := chi.URLParam(r, "workgroup")
	if _, err := fp.do(r.Context(), fastpathCall{Op: fpDeleteWorkgroup, Workgroup: name}); err != nil {
		return err
	}
	s.auditLog(r, p, "workgroups.delete", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
