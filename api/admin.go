package api

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/xmppgw/xmppgw/gateway"
)

// StreamInfo describes one open stream to an admin.
type StreamInfo struct {
	StreamID     string    `json:"streamid"`
	JID          string    `json:"jid" example:"alice@localhost/web.1a2b3c4d5e6f"`
	State        string    `json:"state" example:"online"`
	OnBehalf     bool      `json:"on_behalf"`
	Created      time.Time `json:"created"`
	LastActivity time.Time `json:"last_activity"`
	Subscribers  int       `json:"subscribers"`
	// Node is the cluster node holding the stream (cluster mode only).
	Node string `json:"node,omitempty" example:"gw-2-3f9a1c"`
}

// StreamList is the admin stream listing.
type StreamList struct {
	Streams []StreamInfo `json:"streams"`
}

// listStreams godoc
//
//	@Summary		List open streams
//	@Description	In cluster mode, every node's streams: those of other nodes have state "remote", their owner in node, and no activity or subscriber counts.
//	@Tags			admin
//	@Produce		json
//	@Success		200	{object}	StreamList
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		503	{object}	ErrorResponse	"cluster mode: the registry is not reachable (50305)"
//	@Security		BasicAuth
//	@Security		BearerAuth
//	@Router			/restapi/v1/admin/streams [get]
func (s *Server) listStreams(w http.ResponseWriter, r *http.Request, p *principal) error {
	s.auditLog(r, p, "streams.list", "")
	out := StreamList{Streams: []StreamInfo{}}
	local := map[string]bool{}
	for _, st := range s.streams.Streams() {
		local[st.ID()] = true
		out.Streams = append(out.Streams, StreamInfo{StreamID: st.ID(), JID: st.JID(), State: st.State(),
			OnBehalf: st.OnBehalf(), Created: st.Created().UTC(), LastActivity: st.LastActivity().UTC(),
			Subscribers: s.events.Subscribers(st.ID()), Node: s.cfg.NodeName})
	}
	if s.cfg.ClusterStreams != nil {
		all, err := s.cfg.ClusterStreams(r.Context())
		if err != nil {
			return errClusterNotReady.wrap("%v", err)
		}
		for _, rec := range all {
			if local[rec.ID] {
				continue
			}
			full := rec.JID
			if rec.Resource != "" {
				full += "/" + rec.Resource
			}
			out.Streams = append(out.Streams, StreamInfo{StreamID: rec.ID, JID: full, State: "remote",
				OnBehalf: rec.OnBehalf, Created: rec.Created.UTC(), Node: rec.Owner})
		}
	}
	return writeOK(w, http.StatusOK, out)
}

// killStream godoc
//
//	@Summary		Close a stream
//	@Description	Logs the stream off (unavailable presence, XMPP stream closed), ends its event streams and revokes its tokens.
//	@Tags			admin
//	@Param			streamid	path	string	true	"stream id"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Security		BasicAuth
//	@Security		BearerAuth
//	@Router			/restapi/v1/admin/streams/{streamid} [delete]
func (s *Server) killStream(w http.ResponseWriter, r *http.Request, p *principal) error {
	if s.forward(w, r, p, chi.URLParam(r, "streamid")) {
		return nil // the owner node closes it (and audits it)
	}
	st, err := s.streams.Stream(chi.URLParam(r, "streamid"))
	if err != nil {
		return err
	}
	s.auditLog(r, p, "streams.kill", st.User().String())
	return s.logoff(w, r, p, st)
}

// NotificationRequest is a system notification to one user.
type NotificationRequest struct {
	Body string `json:"body,omitempty" example:"Maintenance at 22:00"`
	// Params become extraParams children next to moduleIdentifier=SystemNotifications.
	Params map[string]string `json:"params,omitempty"`
}

// sendNotification godoc
//
//	@Summary		Send a system notification
//	@Description	Sends a headline from the service account (XMPPGW_NOTIFY_FROM) with extraParams.moduleIdentifier=SystemNotifications plus the given params (ConnectyCube convention). Receivers see a "headline" event with extra_params.
//	@Tags			admin
//	@Accept			json
//	@Produce		json
//	@Param			username	path		string				true	"recipient username"
//	@Param			body		body		NotificationRequest	true	"notification"
//	@Success		202			{object}	MessageResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		403			{object}	ErrorResponse
//	@Failure		503			{object}	ErrorResponse	"not configured"
//	@Security		BasicAuth
//	@Security		BearerAuth
//	@Router			/restapi/v1/admin/notifications/{username} [post]
func (s *Server) sendNotification(w http.ResponseWriter, r *http.Request, p *principal) error {
	to, err := gateway.UserJID(chi.URLParam(r, "username"), s.streams.Domain())
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if isJSON, err := bodyKind(r); err != nil || !isJSON {
		return errUnsupportedMedia.wrap("send application/json")
	}
	var req NotificationRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	s.auditLog(r, p, "notification.send", to.String())
	id, err := s.streams.Notify(r.Context(), to, req.Body, req.Params)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusAccepted, MessageResponse{ID: id})
}
