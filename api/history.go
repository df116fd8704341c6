package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// historyStream is what the history (MAM) routes need of a stream.
type historyStream interface {
	History(ctx context.Context, q gateway.HistoryQuery) (gateway.HistoryPage, error)
}

// asHistory narrows a Stream for the history route.
func asHistory(st Stream) historyStream { return st }

// getHistory godoc
//
//	@Summary		Message history
//	@Description	XEP-0313 archive with XEP-0059 paging, oldest first within a page: {"messages":[...same shapes as events, with stanza_id...],"first","last","complete"}. Page forwards with after=<last>, backwards with before=<first>; before with an empty value asks for the newest page. Filters (with, start, end) apply per message. Archived messages the gateway will not read (nested deeper than 64 levels, larger than the read limit, names not namespace-well-formed) are left out of messages and listed in skipped: [{id, from, reason}].
//	@Tags			history
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Param			with		query		string	false	"only the conversation with this JID"
//	@Param			start		query		string	false	"RFC 3339 lower bound"
//	@Param			end			query		string	false	"RFC 3339 upper bound"
//	@Param			after		query		string	false	"cursor: the page after this archive id"
//	@Param			before		query		string	false	"cursor: the page before this archive id (empty: the newest page)"
//	@Param			limit		query		int		false	"page size, default 50, at most 500"
//	@Success		200			{object}	gateway.HistoryPage
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/messages [get]
func (s *Server) getHistory(w http.ResponseWriter, r *http.Request, _ *principal, st historyStream) error {
	return s.history(w, r, st, jid.JID{})
}

// history answers a history query on archive (zero: the user's own).
func (s *Server) history(w http.ResponseWriter, r *http.Request, st historyStream, archive jid.JID) error {
	q := r.URL.Query()
	hq := gateway.HistoryQuery{Archive: archive}
	var err error
	if v := q.Get("with"); v != "" {
		if hq.With, err = gateway.ParseAddress(v); err != nil {
			return err
		}
	}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"start", &hq.Start}, {"end", &hq.End}} {
		if v := q.Get(b.name); v != "" {
			if *b.dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return errInvalidParameter.wrap("%s must be an RFC 3339 time like 2026-01-02T15:04:05Z", b.name)
			}
		}
	}
	hq.After, hq.Before = q.Get("after"), q.Get("before")
	_, hq.Last = q["before"]
	if v := q.Get("limit"); v != "" {
		if hq.Limit, err = strconv.Atoi(v); err != nil {
			return errInvalidParameter.wrap("limit must be a whole number")
		}
		if hq.Limit < 1 || hq.Limit > gateway.MaxHistoryLimit {
			return errInvalidParameter.wrap("limit must be 1 to %d", gateway.MaxHistoryLimit)
		}
	}
	page, err := st.History(r.Context(), hq)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, page)
}
