package api

import (
	"context"
	"net/http"

	"github.com/xmppgw/xmppgw/gateway"
)

// userStream is what the user routes (search, private properties,
// bookmarks) need of a stream.
type userStream interface {
	SearchUsers(ctx context.Context, term string) ([]map[string]string, error)
	Properties(ctx context.Context) (map[string]string, error)
	SetProperty(ctx context.Context, name string, value *string) error
	Bookmarks(ctx context.Context) ([]gateway.Bookmark, error)
	SetBookmarks(ctx context.Context, marks []gateway.Bookmark) error
}

// asUsers narrows a Stream for the user routes.
func asUsers(st Stream) userStream { return st }

// searchUsers godoc
//
//	@Summary		Search the user directory
//	@Description	XEP-0055 jabber:iq:search on the server or the directory component it advertises (disco). The gateway first fetches the directory's search form and submits the term in the field it offers (nick, else user, fn, first, last, email; as an XEP-0004 data form when the directory sends one, as ejabberd's mod_vcard does). Each result carries the directory's fields by name, jid always. 501 when the XMPP server has no directory: Prosody has none in core (the community module mod_vjud adds one); ejabberd offers one with mod_vcard (search: true), which finds accounts by their vCard.
//	@Tags			users
//	@Produce		json
//	@Param			search	query		string	true	"text to search for"
//	@Success		200		{array}		object
//	@Failure		400		{object}	ErrorResponse
//	@Failure		401		{object}	ErrorResponse
//	@Failure		501		{object}	ErrorResponse	"no user directory"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/users [get]
func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request, _ *principal, st userStream) error {
	found, err := st.SearchUsers(r.Context(), r.URL.Query().Get("search"))
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, found)
}

// listProperties godoc
//
//	@Summary		Your profile properties
//	@Description	Name/value properties kept server-side in the account's private XML storage (XEP-0049): nobody else can read them.
//	@Tags			users
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Success		200			{object}	map[string]string
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/users/properties [get]
func (s *Server) listProperties(w http.ResponseWriter, r *http.Request, _ *principal, st userStream) error {
	props, err := st.Properties(r.Context())
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, props)
}

// setProperty godoc
//
//	@Summary		Set a profile property
//	@Description	The body (text/plain) is the value. Names: 1-64 characters of A-Z a-z 0-9 _ . -.
//	@Tags			users
//	@Accept			plain
//	@Param			streamid	path	string	true	"stream id"
//	@Param			property	path	string	true	"property name"
//	@Param			body		body	string	true	"value"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/users/{property} [post]
func (s *Server) setProperty(w http.ResponseWriter, r *http.Request, _ *principal, st userStream) error {
	name, err := pathParam(r, "property")
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	value, err := readText(body)
	if err != nil {
		return err
	}
	if err := st.SetProperty(r.Context(), name, &value); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteProperty godoc
//
//	@Summary	Delete a profile property
//	@Tags		users
//	@Param		streamid	path	string	true	"stream id"
//	@Param		property	path	string	true	"property name"
//	@Success	204
//	@Failure	400	{object}	ErrorResponse
//	@Failure	401	{object}	ErrorResponse
//	@Failure	404	{object}	ErrorResponse
//	@Failure	410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/users/{property} [delete]
func (s *Server) deleteProperty(w http.ResponseWriter, r *http.Request, _ *principal, st userStream) error {
	name, err := pathParam(r, "property")
	if err != nil {
		return err
	}
	if err := st.SetProperty(r.Context(), name, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listBookmarks godoc
//
//	@Summary	Your room bookmarks
//	@Tags		rooms
//	@Produce	json
//	@Param		streamid	path		string	true	"stream id"
//	@Success	200			{array}		gateway.Bookmark
//	@Failure	401			{object}	ErrorResponse
//	@Failure	404			{object}	ErrorResponse
//	@Failure	410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/bookmarks [get]
func (s *Server) listBookmarks(w http.ResponseWriter, r *http.Request, _ *principal, st userStream) error {
	marks, err := st.Bookmarks(r.Context())
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, marks)
}

// putBookmarks godoc
//
//	@Summary		Replace your room bookmarks
//	@Description	XEP-0048 bookmarks in private storage (servers with XEP-0402 bridge them). Rooms marked autojoin are joined at login when XMPPGW_AUTOJOIN is on.
//	@Tags			rooms
//	@Accept			json
//	@Param			streamid	path	string				true	"stream id"
//	@Param			body		body	[]gateway.Bookmark	true	"all bookmarks"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/bookmarks [put]
func (s *Server) putBookmarks(w http.ResponseWriter, r *http.Request, _ *principal, st userStream) error {
	var marks []gateway.Bookmark
	if err := s.readJSON(w, r, &marks); err != nil {
		return err
	}
	if err := st.SetBookmarks(r.Context(), marks); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
