package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// roomStream is what the room (MUC) routes need of a stream.
type roomStream interface {
	streamIdentity
	historyStream
	DiscoItems(ctx context.Context, of jid.JID) ([]gateway.DiscoItem, error)
	DiscoInfo(ctx context.Context, of jid.JID) (gateway.RoomInfo, error)
	JoinedRooms() []gateway.JoinedRoom
	JoinRoom(ctx context.Context, room jid.JID, opts gateway.JoinOptions) error
	LeaveRoom(ctx context.Context, room jid.JID) error
	SendRoomMessage(ctx context.Context, m gateway.OutgoingMessage) (string, error)
	Invite(ctx context.Context, room, who jid.JID, reason string, direct bool) error
	SetSubject(ctx context.Context, room jid.JID, subject string) error
	Occupants(room jid.JID) ([]gateway.Occupant, error)
	ConfigureRoom(ctx context.Context, room jid.JID, cfg gateway.RoomConfig) error
	RoomConfiguration(ctx context.Context, room jid.JID) (map[string]any, error)
	DestroyRoom(ctx context.Context, room jid.JID, reason string) error
	SetAffiliation(ctx context.Context, room, who jid.JID, affiliation, reason string) error
	SetRole(ctx context.Context, room jid.JID, nick, role, reason string) error
}

// asRooms narrows a Stream for the room routes.
func asRooms(st Stream) roomStream { return st }

// roomJID reads the {room} path segment and ?service= (see parseRoom).
func (s *Server) roomJID(r *http.Request) (jid.JID, error) {
	room, err := pathParam(r, "room")
	if err != nil {
		return jid.JID{}, err
	}
	return s.parseRoom(room, r.URL.Query().Get("service"))
}

// parseRoom resolves a room: a full room JID, or a room name on service (a
// service JID, or a subdomain such as "conference"), by default
// conference.<domain>. Every part goes through the JID library; nothing is
// glued into a JID as a string.
func (s *Server) parseRoom(room, service string) (jid.JID, error) {
	if room == "" {
		return jid.JID{}, errInvalidParameter.wrap("room is required")
	}
	if strings.Contains(room, "@") {
		j, err := gateway.ParseAddress(room)
		if err != nil {
			return jid.JID{}, err
		}
		return j.Bare(), nil
	}
	svc, err := s.parseService(service)
	if err != nil {
		return jid.JID{}, err
	}
	j, err := svc.WithLocal(room)
	if err != nil {
		return jid.JID{}, errInvalidAddress.wrap("room name %q: %v", room, err)
	}
	return j, nil
}

// mucService is ?service= as a domain JID (see parseService).
func (s *Server) mucService(r *http.Request) (jid.JID, error) {
	return s.parseService(r.URL.Query().Get("service"))
}

// parseService is a MUC service as a domain JID (default conference.<domain>).
func (s *Server) parseService(service string) (jid.JID, error) {
	switch {
	case service == "":
		service = "conference." + s.streams.Domain()
	case !strings.Contains(service, "."):
		service += "." + s.streams.Domain() // the ancestor's "conference" form
	}
	j, err := gateway.ParseAddress(service)
	if err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
		return jid.JID{}, errInvalidAddress.wrap("service must be a domain such as conference.%s", s.streams.Domain())
	}
	return j, nil
}

// listPublicRooms godoc
//
//	@Summary		List the rooms of a MUC service
//	@Description	disco#items of the service (default conference.<domain>), asked through the token's stream.
//	@Tags			rooms
//	@Produce		json
//	@Param			service	query		string	false	"MUC service JID or subdomain"
//	@Success		200		{array}		gateway.DiscoItem
//	@Failure		400		{object}	ErrorResponse
//	@Failure		401		{object}	ErrorResponse
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/rooms [get]
func (s *Server) listPublicRooms(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	service, err := s.mucService(r)
	if err != nil {
		return err
	}
	items, err := st.DiscoItems(r.Context(), service)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, items)
}

// roomInfo godoc
//
//	@Summary		Room information
//	@Description	disco#info of the room: name, identities, features (muc_membersonly, muc_persistent, muc_passwordprotected, ...) and muc#roominfo fields.
//	@Tags			rooms
//	@Produce		json
//	@Param			room	path		string	true	"room name or room JID"
//	@Param			service	query		string	false	"MUC service JID or subdomain"
//	@Success		200		{object}	gateway.RoomInfo
//	@Failure		400		{object}	ErrorResponse
//	@Failure		401		{object}	ErrorResponse
//	@Failure		404		{object}	ErrorResponse
//	@Failure		410		{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/rooms/{room} [get]
func (s *Server) roomInfo(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	info, err := st.DiscoInfo(r.Context(), room)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, info)
}

// listJoinedRooms godoc
//
//	@Summary	Rooms this stream is in
//	@Tags		rooms
//	@Produce	json
//	@Param		streamid	path		string	true	"stream id"
//	@Success	200			{array}		gateway.JoinedRoom
//	@Failure	401			{object}	ErrorResponse
//	@Failure	404			{object}	ErrorResponse
//	@Failure	410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/rooms [get]
func (s *Server) listJoinedRooms(w http.ResponseWriter, _ *http.Request, _ *principal, st roomStream) error {
	return writeOK(w, http.StatusOK, st.JoinedRooms())
}

// JoinRequest are the options of joining a room.
type JoinRequest struct {
	Nick     string `json:"nick,omitempty" example:"alice"`
	Password string `json:"password,omitempty"`
	History  *struct {
		MaxStanzas *int      `json:"maxstanzas,omitempty"`
		Since      time.Time `json:"since,omitempty"`
	} `json:"history,omitempty"`
}

// joinRoom godoc
//
//	@Summary		Join a room
//	@Description	Enters the room and waits for its answer. 409 when the nickname is taken (a room_error event follows too), 403/401-like XMPP refusals map to 403.
//	@Tags			rooms
//	@Accept			json
//	@Param			streamid	path	string		true	"stream id"
//	@Param			room		path	string		true	"room name or room JID"
//	@Param			service		query	string		false	"MUC service JID or subdomain"
//	@Param			body		body	JoinRequest	false	"nick (default: your username), password, history"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		409	{object}	ErrorResponse	"nickname in use"
//	@Failure		429	{object}	ErrorResponse	"stream send rate exceeded (Retry-After)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/rooms/{room} [put]
func (s *Server) joinRoom(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	if err := s.sendAllowed(st); err != nil {
		return err
	}
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	var req JoinRequest
	if err := s.optionalJSON(w, r, &req); err != nil {
		return err
	}
	opts := gateway.JoinOptions{Nick: req.Nick, Password: req.Password, MaxStanzas: -1}
	if req.History != nil {
		if req.History.MaxStanzas != nil {
			opts.MaxStanzas = *req.History.MaxStanzas
		}
		opts.Since = req.History.Since
	}
	if err := st.JoinRoom(r.Context(), room, opts); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// leaveRoom godoc
//
//	@Summary	Leave a room
//	@Tags		rooms
//	@Param		streamid	path	string	true	"stream id"
//	@Param		room		path	string	true	"room name or room JID"
//	@Param		service		query	string	false	"MUC service JID or subdomain"
//	@Success	204
//	@Failure	401	{object}	ErrorResponse
//	@Failure	404	{object}	ErrorResponse	"not in the room"
//	@Failure	410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure	429	{object}	ErrorResponse	"stream send rate exceeded (Retry-After)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/rooms/{room} [delete]
func (s *Server) leaveRoom(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	if err := s.sendAllowed(st); err != nil {
		return err
	}
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	if err := st.LeaveRoom(r.Context(), room); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// postRoomMessage godoc
//
//	@Summary		Post to a room
//	@Description	Same body as 1:1 messages (text/plain or JSON with extraParams, attachments, data). Join first.
//	@Tags			rooms
//	@Accept			json,plain
//	@Produce		json
//	@Param			streamid	path		string			true	"stream id"
//	@Param			room		path		string			true	"room name or room JID"
//	@Param			service		query		string			false	"MUC service JID or subdomain"
//	@Param			body		body		MessageRequest	true	"message"
//	@Success		202			{object}	MessageResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse	"not in the room"
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/rooms/{room} [post]
func (s *Server) postRoomMessage(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	m, err := s.outgoingMessage(w, r, st, room)
	if err != nil {
		return err
	}
	id, err := st.SendRoomMessage(r.Context(), m)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusAccepted, MessageResponse{ID: id})
}

// ReasonRequest carries an optional reason.
type ReasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

// inviteToRoom godoc
//
//	@Summary		Invite someone to a room
//	@Description	Mediated through the room (XEP-0045), or direct with ?direct=true (XEP-0249). The invitee gets an "invitation" event.
//	@Tags			rooms
//	@Accept			json
//	@Param			streamid	path	string			true	"stream id"
//	@Param			room		path	string			true	"room name or room JID"
//	@Param			jid			path	string			true	"invitee"
//	@Param			service		query	string			false	"MUC service JID or subdomain"
//	@Param			direct		query	bool			false	"direct invitation (XEP-0249)"
//	@Param			body		body	ReasonRequest	false	"reason"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/rooms/{room}/{jid} [post]
func (s *Server) inviteToRoom(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	who, err := jidParam(r)
	if err != nil {
		return err
	}
	var req ReasonRequest
	if err := s.optionalJSON(w, r, &req); err != nil {
		return err
	}
	if err := st.Invite(r.Context(), room, who, req.Reason, r.URL.Query().Get("direct") == "true"); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// SubjectRequest is a room subject.
type SubjectRequest struct {
	Subject string `json:"subject" example:"Release planning"`
}

// setRoomSubject godoc
//
//	@Summary		Change a room's subject
//	@Description	Answers once the room has broadcast the new subject, or with the room's refusal
//	@Description	(403 forbidden when only moderators may change it; 404 when the stream is not in the room).
//	@Tags			rooms
//	@Accept			json
//	@Param			streamid	path	string			true	"stream id"
//	@Param			room		path	string			true	"room name or room JID"
//	@Param			service		query	string			false	"MUC service JID or subdomain"
//	@Param			body		body	SubjectRequest	true	"subject"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		504	{object}	ErrorResponse
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/rooms/{room}/subject [put]
func (s *Server) setRoomSubject(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	var req SubjectRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if err := st.SetSubject(r.Context(), room, req.Subject); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listOccupants godoc
//
//	@Summary	Occupants of a joined room
//	@Tags		rooms
//	@Produce	json
//	@Param		streamid	path		string	true	"stream id"
//	@Param		room		path		string	true	"room name or room JID"
//	@Param		service		query		string	false	"MUC service JID or subdomain"
//	@Success	200			{array}		gateway.Occupant
//	@Failure	401			{object}	ErrorResponse
//	@Failure	404			{object}	ErrorResponse	"not in the room"
//	@Failure	410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/rooms/{room}/occupants [get]
func (s *Server) listOccupants(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	occ, err := st.Occupants(room)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, occ)
}

// CreateRoomRequest creates and configures a room.
type CreateRoomRequest struct {
	Room    string `json:"room" example:"planning"`
	Service string `json:"service,omitempty"`
	Nick    string `json:"nick,omitempty"`
	// Config: name, description, persistent, public, members_only, moderated,
	// password, max_users, whois, ... or any muc#roomconfig field var.
	Config gateway.RoomConfig `json:"config,omitempty" swaggertype:"object"`
}

// CreateRoomResponse names the created room.
type CreateRoomResponse struct {
	Room string `json:"room" example:"planning@conference.localhost"`
}

// createRoom godoc
//
//	@Summary		Create and configure a room
//	@Description	Joins the (new) room as owner and submits the muc#owner configuration form.
//	@Tags			rooms
//	@Accept			json
//	@Produce		json
//	@Param			streamid	path		string				true	"stream id"
//	@Param			body		body		CreateRoomRequest	true	"room and configuration"
//	@Success		201			{object}	CreateRoomResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		403			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Failure		409			{object}	ErrorResponse
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/rooms [post]
func (s *Server) createRoom(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	var req CreateRoomRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	q := r.URL.Query()
	if req.Service != "" {
		q.Set("service", req.Service)
		r.URL.RawQuery = q.Encode()
	}
	service, err := s.mucService(r)
	if err != nil {
		return err
	}
	room, err := service.WithLocal(req.Room)
	if err != nil || req.Room == "" {
		return errInvalidAddress.wrap("room must be a valid room name")
	}
	if err := st.JoinRoom(r.Context(), room, gateway.JoinOptions{Nick: req.Nick, MaxStanzas: 0}); err != nil {
		return err
	}
	if len(req.Config) > 0 {
		if err := st.ConfigureRoom(r.Context(), room, req.Config); err != nil {
			return err
		}
	}
	return writeOK(w, http.StatusCreated, CreateRoomResponse{Room: room.String()})
}

// getRoomConfig godoc
//
//	@Summary	Read a room's configuration (owner)
//	@Tags		rooms
//	@Produce	json
//	@Param		streamid	path		string	true	"stream id"
//	@Param		room		path		string	true	"room name or room JID"
//	@Param		service		query		string	false	"MUC service JID or subdomain"
//	@Success	200			{object}	object
//	@Failure	401			{object}	ErrorResponse
//	@Failure	403			{object}	ErrorResponse
//	@Failure	404			{object}	ErrorResponse
//	@Failure	410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/rooms/{room}/config [get]
func (s *Server) getRoomConfig(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	cfg, err := st.RoomConfiguration(r.Context(), room)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, cfg)
}

// putRoomConfig godoc
//
//	@Summary	Change a room's configuration (owner)
//	@Tags		rooms
//	@Accept		json
//	@Param		streamid	path	string	true	"stream id"
//	@Param		room		path	string	true	"room name or room JID"
//	@Param		service		query	string	false	"MUC service JID or subdomain"
//	@Param		body		body	object	true	"fields to change"
//	@Success	204
//	@Failure	400	{object}	ErrorResponse
//	@Failure	401	{object}	ErrorResponse
//	@Failure	403	{object}	ErrorResponse
//	@Failure	404	{object}	ErrorResponse
//	@Failure	410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/rooms/{room}/config [put]
func (s *Server) putRoomConfig(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	var cfg gateway.RoomConfig
	if err := s.readJSON(w, r, &cfg); err != nil {
		return err
	}
	if err := st.ConfigureRoom(r.Context(), room, cfg); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// destroyRoom godoc
//
//	@Summary	Destroy a room (owner)
//	@Tags		rooms
//	@Accept		json
//	@Param		streamid	path	string			true	"stream id"
//	@Param		room		path	string			true	"room name or room JID"
//	@Param		service		query	string			false	"MUC service JID or subdomain"
//	@Param		body		body	ReasonRequest	false	"reason"
//	@Success	204
//	@Failure	401	{object}	ErrorResponse
//	@Failure	403	{object}	ErrorResponse
//	@Failure	404	{object}	ErrorResponse
//	@Failure	410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/rooms/{room}/destroy [post]
func (s *Server) destroyRoom(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	var req ReasonRequest
	if err := s.optionalJSON(w, r, &req); err != nil {
		return err
	}
	if err := st.DestroyRoom(r.Context(), room, req.Reason); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// AffiliationRequest sets an affiliation.
type AffiliationRequest struct {
	// Affiliation is owner, admin, member, outcast (banned) or none.
	Affiliation string `json:"affiliation" example:"member"`
	Reason      string `json:"reason,omitempty"`
}

// setAffiliation godoc
//
//	@Summary		Set a user's affiliation (owner/admin)
//	@Description	owner, admin, member, outcast (= ban) or none.
//	@Tags			rooms
//	@Accept			json
//	@Param			streamid	path	string				true	"stream id"
//	@Param			room		path	string				true	"room name or room JID"
//	@Param			jid			path	string				true	"the user's real JID"
//	@Param			service		query	string				false	"MUC service JID or subdomain"
//	@Param			body		body	AffiliationRequest	true	"affiliation"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/rooms/{room}/affiliations/{jid} [put]
func (s *Server) setAffiliation(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	who, err := jidParam(r)
	if err != nil {
		return err
	}
	var req AffiliationRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if err := st.SetAffiliation(r.Context(), room, who, req.Affiliation, req.Reason); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// RoleRequest sets a role.
type RoleRequest struct {
	// Role is moderator, participant (voice), visitor or none (= kick).
	Role   string `json:"role" example:"none"`
	Reason string `json:"reason,omitempty"`
}

// setRole godoc
//
//	@Summary		Set an occupant's role (moderator)
//	@Description	moderator, participant (= grant voice), visitor (= revoke voice) or none (= kick).
//	@Tags			rooms
//	@Accept			json
//	@Param			streamid	path	string		true	"stream id"
//	@Param			room		path	string		true	"room name or room JID"
//	@Param			nick		path	string		true	"the occupant's nickname"
//	@Param			service		query	string		false	"MUC service JID or subdomain"
//	@Param			body		body	RoleRequest	true	"role"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/rooms/{room}/roles/{nick} [put]
func (s *Server) setRole(w http.ResponseWriter, r *http.Request, _ *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	nick, err := pathParam(r, "nick")
	if err != nil {
		return err
	}
	var req RoleRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if err := st.SetRole(r.Context(), room, nick, req.Role, req.Reason); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// roomHistory godoc
//
//	@Summary		A room's message history
//	@Description	The room's archive (MUC MAM); same paging and shape as /messages.
//	@Tags			history
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Param			room		path		string	true	"room name or room JID"
//	@Param			service		query		string	false	"MUC service JID or subdomain"
//	@Param			start		query		string	false	"RFC 3339 lower bound"
//	@Param			end			query		string	false	"RFC 3339 upper bound"
//	@Param			after		query		string	false	"cursor"
//	@Param			before		query		string	false	"cursor (empty: the newest page)"
//	@Param			limit		query		int		false	"page size, default 50, at most 500"
//	@Success		200			{object}	gateway.HistoryPage
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		403			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/rooms/{room}/messages [get]
func (s *Server) roomHistory(w http.ResponseWriter, r *http.Request, p *principal, st roomStream) error {
	room, err := s.roomJID(r)
	if err != nil {
		return err
	}
	return s.history(w, r, st, room)
}
