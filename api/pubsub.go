package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// pubsubStream is what the pubsub routes need of a stream.
type pubsubStream interface {
	streamIdentity
	PubSubSubscriptions(ctx context.Context, service jid.JID, node string) ([]gateway.PubSubSubscription, error)
	Subscribe(ctx context.Context, service jid.JID, node string, opts gateway.SubscribeOptions) (gateway.PubSubSubscription, error)
	Unsubscribe(ctx context.Context, service jid.JID, node, subid string) error
	Publish(ctx context.Context, service jid.JID, node, id string, p gateway.ItemPayload, opts gateway.PublishOptions) (string, error)
	Items(ctx context.Context, service jid.JID, node string, max int, ids ...string) ([]gateway.PubSubItem, error)
	RetractItem(ctx context.Context, service jid.JID, node, id string) error
}

// asPubSub narrows a Stream for the pubsub routes.
func asPubSub(st Stream) pubsubStream { return st }

// pubsubTarget reads the {service} and {node} path segments: the service
// is parsed as a JID (a pubsub domain such as pubsub.example.com, or a
// bare JID for PEP), never glued; the gateway validates the node name.
func pubsubTarget(r *http.Request) (jid.JID, string, error) {
	raw, err := pathParam(r, "service")
	if err != nil {
		return jid.JID{}, "", err
	}
	service, err := gateway.ParseAddress(raw)
	if err != nil {
		return jid.JID{}, "", err
	}
	if service.Resourcepart() != "" {
		return jid.JID{}, "", errInvalidAddress.wrap("pubsub service must be a domain or a bare JID, not a full JID")
	}
	node, err := pathParam(r, "node")
	if err != nil {
		return jid.JID{}, "", err
	}
	return service, node, nil
}

// listPubSubSubscriptions godoc
//
//	@Summary		This stream's subscriptions to a node
//	@Description	XEP-0060 §5.6, filtered to the stream's own full JID (the user's other resources are not listed). {service} is a pubsub service (pubsub.<domain>) or, for PEP, a bare JID; {node} is percent-encoded (%2F for "/").
//	@Tags			pubsub
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Param			service		path		string	true	"pubsub service JID (or a bare JID for PEP)"
//	@Param			node		path		string	true	"node name"
//	@Success		200			{array}		gateway.PubSubSubscription
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		403			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/pubsub/{service}/{node}/subscriptions [get]
func (s *Server) listPubSubSubscriptions(w http.ResponseWriter, r *http.Request, _ *principal, st pubsubStream) error {
	service, node, err := pubsubTarget(r)
	if err != nil {
		return err
	}
	subs, err := st.PubSubSubscriptions(r.Context(), service, node)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, subs)
}

// SubscribeRequest are the options of a pubsub subscription.
type SubscribeRequest struct {
	// Depth is pubsub#subscription_depth: 1 or all (all descendants of a collection node).
	Depth string `json:"depth,omitempty" example:"all"`
	// Expire is pubsub#expire: an RFC 3339 time, "presence", or a duration
	// (at least 1m) that the gateway renews while the stream lives.
	Expire string `json:"expire,omitempty" example:"1h"`
	// Type is pubsub#subscription_type: items or nodes.
	Type string `json:"type,omitempty" example:"items"`
	// UnsubscribeOnLogoff removes the subscription when the stream logs off.
	UnsubscribeOnLogoff bool `json:"unsubscribe_on_logoff,omitempty"`
}

// subscribePubSub godoc
//
//	@Summary		Subscribe this stream to a node
//	@Description	Subscribes the stream's full JID (resource included). Existing subscriptions are retrieved first: one owned by this full JID is reconfigured (renewed) instead of a new one being added ("reused": true). 200 when subscribed; 202 {state:"pending"} under the authorize access model, the owner's decision then arriving as a pubsub_subscription event {service,node,state:"subscribed|none",subid}. Item notifications arrive as pubsub events {service,node,items:[{id,payload,payload_json?}],retract?}.
//	@Tags			pubsub
//	@Accept			json
//	@Produce		json
//	@Param			streamid	path		string				true	"stream id"
//	@Param			service		path		string				true	"pubsub service JID (or a bare JID for PEP)"
//	@Param			node		path		string				true	"node name"
//	@Param			body		body		SubscribeRequest	false	"subscription options"
//	@Success		200			{object}	gateway.PubSubSubscription
//	@Success		202			{object}	gateway.PubSubSubscription	"pending the node owner's approval"
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		403			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/pubsub/{service}/{node}/subscriptions [post]
func (s *Server) subscribePubSub(w http.ResponseWriter, r *http.Request, _ *principal, st pubsubStream) error {
	service, node, err := pubsubTarget(r)
	if err != nil {
		return err
	}
	var req SubscribeRequest
	if err := s.optionalJSON(w, r, &req); err != nil {
		return err
	}
	sub, err := st.Subscribe(r.Context(), service, node, gateway.SubscribeOptions{Depth: req.Depth, Expire: req.Expire,
		Type: req.Type, UnsubscribeOnLogoff: req.UnsubscribeOnLogoff})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if sub.State == gateway.SubscriptionPending {
		status = http.StatusAccepted
	}
	return writeOK(w, status, sub)
}

// unsubscribePubSub godoc
//
//	@Summary		Unsubscribe this stream from a node
//	@Description	Removes the subscription {subid} of the stream's full JID; "-" names this stream's one subscription to the node, with whatever subid the service gave it (ejabberd assigns one to every subscription, Prosody none). 404 when this stream has no such subscription; 400 for "-" when it has several (name one).
//	@Tags			pubsub
//	@Param			streamid	path	string	true	"stream id"
//	@Param			service		path	string	true	"pubsub service JID (or a bare JID for PEP)"
//	@Param			node		path	string	true	"node name"
//	@Param			subid		path	string	true	"subscription id, or - for this stream's subscription"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/pubsub/{service}/{node}/subscriptions/{subid} [delete]
func (s *Server) unsubscribePubSub(w http.ResponseWriter, r *http.Request, _ *principal, st pubsubStream) error {
	service, node, err := pubsubTarget(r)
	if err != nil {
		return err
	}
	subid, err := pathParam(r, "subid")
	if err != nil {
		return err
	}
	if err := st.Unsubscribe(r.Context(), service, node, subid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PublishRequest is one item to publish: an XML payload, or any JSON value
// (sent as an XEP-0335 <json xmlns="urn:xmpp:json:0"/> payload).
type PublishRequest struct {
	// ID is the item id; empty lets the service choose one.
	ID string `json:"id,omitempty" example:"current"`
	// Payload is one namespaced XML element.
	Payload string `json:"payload,omitempty" example:"<status xmlns='urn:example:status'>busy</status>"`
	// PayloadJSON is any JSON value, the alternative to payload.
	PayloadJSON json.RawMessage `json:"payload_json,omitempty" swaggertype:"object"`
	// AccessModel is sent as publish-options pubsub#access_model (open,
	// presence, roster, authorize, whitelist), e.g. open for a PEP node others subscribe to.
	AccessModel string `json:"access_model,omitempty" example:"open"`
}

// PublishResponse names the published item.
type PublishResponse struct {
	ID string `json:"id" example:"current"`
}

// publishItem godoc
//
//	@Summary		Publish an item
//	@Description	Publishes to a node of a pubsub service, or to your own PEP node when {service} is your bare JID. Subscribers get a pubsub event.
//	@Tags			pubsub
//	@Accept			json
//	@Produce		json
//	@Param			streamid	path		string			true	"stream id"
//	@Param			service		path		string			true	"pubsub service JID (or a bare JID for PEP)"
//	@Param			node		path		string			true	"node name"
//	@Param			body		body		PublishRequest	true	"item"
//	@Success		201			{object}	PublishResponse
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		403			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/pubsub/{service}/{node}/items [post]
func (s *Server) publishItem(w http.ResponseWriter, r *http.Request, _ *principal, st pubsubStream) error {
	service, node, err := pubsubTarget(r)
	if err != nil {
		return err
	}
	if err := s.sendAllowed(st); err != nil {
		return err
	}
	var req PublishRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	id, err := st.Publish(r.Context(), service, node, req.ID, gateway.ItemPayload{XML: req.Payload, JSON: req.PayloadJSON}, gateway.PublishOptions{AccessModel: req.AccessModel})
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusCreated, PublishResponse{ID: id})
}

// listItems godoc
//
//	@Summary		A node's items
//	@Description	An item the gateway will not read (nested deeper than 64 levels, names not namespace-well-formed) comes without payload and with skipped: the reason; an answer larger than the read limit is a 502 (ask for fewer with max).
//	@Tags			pubsub
//	@Produce		json
//	@Param			streamid	path		string	true	"stream id"
//	@Param			service		path		string	true	"pubsub service JID (or a bare JID for PEP)"
//	@Param			node		path		string	true	"node name"
//	@Param			max			query		int		false	"newest items only, at most this many"
//	@Success		200			{array}		gateway.PubSubItem
//	@Failure		400			{object}	ErrorResponse
//	@Failure		401			{object}	ErrorResponse
//	@Failure		403			{object}	ErrorResponse
//	@Failure		404			{object}	ErrorResponse
//	@Failure		410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/pubsub/{service}/{node}/items [get]
func (s *Server) listItems(w http.ResponseWriter, r *http.Request, _ *principal, st pubsubStream) error {
	service, node, err := pubsubTarget(r)
	if err != nil {
		return err
	}
	maxItems := 0
	if v := r.URL.Query().Get("max"); v != "" {
		if maxItems, err = strconv.Atoi(v); err != nil || maxItems < 1 {
			return errInvalidParameter.wrap("max must be a positive integer")
		}
	}
	items, err := st.Items(r.Context(), service, node, maxItems)
	if err != nil {
		return err
	}
	return writeOK(w, http.StatusOK, items)
}

// getItem godoc
//
//	@Summary	One item of a node
//	@Tags		pubsub
//	@Produce	json
//	@Param		streamid	path		string	true	"stream id"
//	@Param		service		path		string	true	"pubsub service JID (or a bare JID for PEP)"
//	@Param		node		path		string	true	"node name"
//	@Param		id			path		string	true	"item id"
//	@Success	200			{object}	gateway.PubSubItem
//	@Failure	400			{object}	ErrorResponse
//	@Failure	401			{object}	ErrorResponse
//	@Failure	404			{object}	ErrorResponse
//	@Failure	410			{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security	BearerAuth
//	@Security	BasicAuth
//	@Router		/restapi/v1/chat/{streamid}/pubsub/{service}/{node}/items/{id} [get]
func (s *Server) getItem(w http.ResponseWriter, r *http.Request, _ *principal, st pubsubStream) error {
	service, node, err := pubsubTarget(r)
	if err != nil {
		return err
	}
	id, err := pathParam(r, "id")
	if err != nil {
		return err
	}
	items, err := st.Items(r.Context(), service, node, 0, id)
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.ID == id {
			return writeOK(w, http.StatusOK, it)
		}
	}
	return errXMPPNotFound.wrap("item %q", id)
}

// retractItem godoc
//
//	@Summary		Retract (delete) an item
//	@Description	Subscribers get a pubsub event with retract: [id].
//	@Tags			pubsub
//	@Param			streamid	path	string	true	"stream id"
//	@Param			service		path	string	true	"pubsub service JID (or a bare JID for PEP)"
//	@Param			node		path	string	true	"node name"
//	@Param			id			path	string	true	"item id"
//	@Success		204
//	@Failure		400	{object}	ErrorResponse
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		410	{object}	ErrorResponse	"stream lost with its cluster node: log in again (41000)"
//	@Security		BearerAuth
//	@Security		BasicAuth
//	@Router			/restapi/v1/chat/{streamid}/pubsub/{service}/{node}/items/{id} [delete]
func (s *Server) retractItem(w http.ResponseWriter, r *http.Request, _ *principal, st pubsubStream) error {
	service, node, err := pubsubTarget(r)
	if err != nil {
		return err
	}
	id, err := pathParam(r, "id")
	if err != nil {
		return err
	}
	if err := st.RetractItem(r.Context(), service, node, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
