package gateway

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// PubSub namespaces (XEP-0060).
const (
	nsPubSub      = "http://jabber.org/protocol/pubsub"
	nsPubSubEvent = "http://jabber.org/protocol/pubsub#event"

	formSubscribeOptions = "http://jabber.org/protocol/pubsub#subscribe_options"
	formPublishOptions   = "http://jabber.org/protocol/pubsub#publish-options"
)

// PubSub event types.
const (
	EventPubSub             = "pubsub"
	EventPubSubSubscription = "pubsub_subscription"
)

// Subscription states (XEP-0060 §6.1.2).
const (
	SubscriptionSubscribed   = "subscribed"
	SubscriptionPending      = "pending"
	SubscriptionUnconfigured = "unconfigured"
	SubscriptionNone         = "none"
)

// ErrNotSubscribed means this stream has no such subscription on the node.
var ErrNotSubscribed = errors.New("no such subscription")

// Limits of client-chosen pubsub names.
const (
	maxNodeBytes   = 1024
	maxItemIDBytes = 256
	// minRenewableExpire keeps a relative expiry from turning the renewal
	// loop into a busy loop.
	minRenewableExpire = time.Minute
)

// pubsubRenewTick is how often expiring subscriptions are checked; a
// variable so tests can shorten it.
var pubsubRenewTick = 15 * time.Second

// SubscribeOptions are the subscription options a client may set; empty
// fields are not sent (the service's defaults apply).
type SubscribeOptions struct {
	// Depth is pubsub#subscription_depth: "1" or "all" (collection nodes).
	Depth string
	// Type is pubsub#subscription_type: "items" or "nodes".
	Type string
	// Expire is pubsub#expire: an RFC 3339 time, "presence", or a Go
	// duration ("1h"), which the stream renews automatically while it lives.
	Expire string
	// UnsubscribeOnLogoff removes the subscription when the stream logs off.
	UnsubscribeOnLogoff bool
}

// PubSubSubscription is one subscription of a node.
type PubSubSubscription struct {
	Service string `json:"service"`
	Node    string `json:"node"`
	JID     string `json:"jid"`
	SubID   string `json:"subid,omitempty"`
	// State is subscribed, pending (the node owner must approve),
	// unconfigured or none.
	State  string `json:"state"`
	Expiry string `json:"expiry,omitempty"`
	// Reused is true when an existing subscription of this stream's full
	// JID was reconfigured instead of a new one being created.
	Reused bool `json:"reused,omitempty"`
}

// PubSubItem is one item of a node: its payload as XML, and as JSON when
// the payload is an XEP-0335 <json/> element.
type PubSubItem struct {
	ID          string          `json:"id"`
	Publisher   string          `json:"publisher,omitempty"`
	Payload     string          `json:"payload,omitempty"`
	PayloadJSON json.RawMessage `json:"payload_json,omitempty" swaggertype:"object"`
	// Skipped says why the gateway did not read this item's payload
	// (nested too deeply, too large, names not namespace-well-formed);
	// set only on such items, which then carry no payload.
	Skipped string `json:"skipped,omitempty"`
}

// PubSubEvent is an item notification (XEP-0060 §7.1.2) or a retraction.
type PubSubEvent struct {
	Type    string       `json:"type"`
	Service string       `json:"service"`
	Node    string       `json:"node"`
	Items   []PubSubItem `json:"items"`
	Retract []string     `json:"retract,omitempty"`
	// SubID names the subscription the notification was sent for (SHIM header).
	SubID string `json:"subid,omitempty"`
}

// PubSubSubscriptionEvent reports a subscription state change, such as the
// owner's approval (subscribed) or refusal (none) of a pending request.
type PubSubSubscriptionEvent struct {
	Type    string `json:"type"`
	Service string `json:"service"`
	Node    string `json:"node"`
	JID     string `json:"jid,omitempty"`
	State   string `json:"state"`
	SubID   string `json:"subid,omitempty"`
	Expiry  string `json:"expiry,omitempty"`
}

// PublishOptions are optional publish-options (XEP-0060 §7.1.5), e.g.
// access_model=open for a PEP node others should subscribe to.
type PublishOptions struct {
	AccessModel string
}

// checkNode validates a node name: non-empty, bounded, XML-safe text.
func checkNode(node string) error {
	switch {
	case node == "":
		return fmt.Errorf("%w: node is empty", ErrInvalidInput)
	case len(node) > maxNodeBytes:
		return fmt.Errorf("%w: node is longer than %d bytes", ErrInvalidInput, maxNodeBytes)
	}
	if err := checkText("node", node); err != nil {
		return err
	}
	for _, r := range node {
		if r < 0x20 {
			return fmt.Errorf("%w: node contains a control character", ErrInvalidInput)
		}
	}
	return nil
}

func checkItemID(id string) error {
	if len(id) > maxItemIDBytes {
		return fmt.Errorf("%w: item id is longer than %d bytes", ErrInvalidInput, maxItemIDBytes)
	}
	if err := checkText("item id", id); err != nil {
		return err
	}
	if strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 }) {
		return fmt.Errorf("%w: item id contains a control character", ErrInvalidInput)
	}
	return nil
}

// checkService accepts a pubsub service (a domain) or a PEP service (a
// bare account JID); never a full JID.
func checkService(service jid.JID) error {
	if service.Domainpart() == "" || service.Resourcepart() != "" {
		return fmt.Errorf("%w: pubsub service must be a domain or a bare JID", ErrInvalidAddress)
	}
	return nil
}

// pubsubQuery wraps children in <pubsub xmlns=...>.
func pubsubQuery(space string, children ...xmlNode) xmlNode {
	p := elem(space, "pubsub")
	p.Children = children
	return p
}

// dataForm builds a submitted data form of FORM_TYPE formType with the
// given var/value pairs (empty values skipped).
func dataForm(formType string, fields ...string) xmlNode {
	x := elem(nsDataForms, "x", "type", "submit")
	add := func(name, value, typ string) {
		f := elem(nsDataForms, "field", "var", name)
		if typ != "" {
			f.Attrs = append(f.Attrs, xmlAttr("type", typ))
		}
		v := elem(nsDataForms, "value")
		v.Text = value
		f.Children = []xmlNode{v}
		x.Children = append(x.Children, f)
	}
	add("FORM_TYPE", formType, "hidden")
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] != "" {
			add(fields[i], fields[i+1], "")
		}
	}
	return x
}

// resolvedOptions are SubscribeOptions checked, with a relative expiry
// turned into the absolute time sent to the service.
type resolvedOptions struct {
	SubscribeOptions
	renewEvery time.Duration // > 0: a relative expiry to renew
}

func resolveOptions(o SubscribeOptions) (resolvedOptions, error) {
	r := resolvedOptions{SubscribeOptions: o}
	switch o.Depth {
	case "", "1", "all":
	default:
		return r, fmt.Errorf("%w: depth must be 1 or all", ErrInvalidInput)
	}
	switch o.Type {
	case "", "items", "nodes":
	default:
		return r, fmt.Errorf("%w: type must be items or nodes", ErrInvalidInput)
	}
	switch {
	case o.Expire == "", o.Expire == "presence":
	default:
		if _, err := time.Parse(time.RFC3339Nano, o.Expire); err == nil {
			break
		}
		d, err := time.ParseDuration(o.Expire)
		if err != nil || d < minRenewableExpire {
			return r, fmt.Errorf("%w: expire must be an RFC 3339 time, \"presence\", or a duration of at least %s", ErrInvalidInput, minRenewableExpire)
		}
		r.renewEvery = d
	}
	return r, nil
}

// form renders the options as a subscribe_options form, or nil when there
// is nothing to set.
func (o resolvedOptions) form(now time.Time) *xmlNode {
	expire := o.Expire
	if o.renewEvery > 0 {
		expire = now.Add(o.renewEvery).UTC().Format(time.RFC3339)
	}
	if o.Depth == "" && o.Type == "" && expire == "" {
		return nil
	}
	f := dataForm(formSubscribeOptions, "pubsub#subscription_type", o.Type,
		"pubsub#subscription_depth", o.Depth, "pubsub#expire", expire)
	return &f
}

// subscriptionOf reads a <subscription/> element.
func subscriptionOf(service jid.JID, node string, n *xmlNode) PubSubSubscription {
	sub := PubSubSubscription{Service: service.String(), Node: node, State: SubscriptionSubscribed}
	if n == nil {
		return sub
	}
	if v := n.attr("node"); v != "" {
		sub.Node = v
	}
	sub.JID, sub.SubID, sub.Expiry = n.attr("jid"), n.attr("subid"), n.attr("expiry")
	if v := n.attr("subscription"); v != "" {
		sub.State = v
	}
	return sub
}

// PubSubSubscriptions lists this stream's subscriptions to a node (only
// those of its own full JID: the user's other resources are not ours).
func (s *Stream) PubSubSubscriptions(ctx context.Context, service jid.JID, node string) ([]PubSubSubscription, error) {
	all, err := s.nodeSubscriptions(ctx, service, node)
	if err != nil {
		return nil, err
	}
	out := []PubSubSubscription{}
	for _, sub := range all {
		if s.isOwnFullJID(sub.JID) {
			out = append(out, sub)
		}
	}
	return out, nil
}

// nodeSubscriptions asks the service for the account's subscriptions to a
// node (XEP-0060 §5.6).
func (s *Stream) nodeSubscriptions(ctx context.Context, service jid.JID, node string) ([]PubSubSubscription, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	if err := checkNode(node); err != nil {
		return nil, err
	}
	res, err := s.request(ctx, "get", service.String(), pubsubQuery(nsPubSub, elem(nsPubSub, "subscriptions", "node", node)))
	if err != nil {
		return nil, err
	}
	var out []PubSubSubscription
	if p := res.child(nsPubSub, "pubsub"); p != nil {
		if subs := p.child(nsPubSub, "subscriptions"); subs != nil {
			for i := range subs.Children {
				if c := &subs.Children[i]; c.XMLName.Local == "subscription" {
					sub := subscriptionOf(service, node, c)
					if sub.Node == node {
						out = append(out, sub)
					}
				}
			}
		}
	}
	return out, nil
}

// isOwnFullJID reports whether s names this stream's full JID.
func (s *Stream) isOwnFullJID(v string) bool {
	j, err := jid.Parse(v)
	if err != nil {
		return false
	}
	own, err := jid.Parse(s.JID())
	return err == nil && j.Equal(own)
}

// Subscribe subscribes the stream's full JID to a node. Following the
// OnSIP guidance (a service may cap subscriptions per node and JID), it
// first retrieves the existing subscriptions and, when one belongs to this
// full JID, reconfigures it (a renewal) instead of adding another. Under
// the authorize access model the answer is State "pending"; the owner's
// decision later arrives as a pubsub_subscription event.
//
// A relative expiry (a duration) is renewed automatically: the
// subscription is reconfigured with a fresh pubsub#expire at three
// quarters of its lifetime, for as long as the stream lives.
func (s *Stream) Subscribe(ctx context.Context, service jid.JID, node string, opts SubscribeOptions) (PubSubSubscription, error) {
	sub, err := s.subscribe(ctx, service, node, opts)
	if err == nil {
		s.startPubSubRenewal()
	}
	return sub, err
}

func (s *Stream) subscribe(ctx context.Context, service jid.JID, node string, opts SubscribeOptions) (PubSubSubscription, error) {
	ro, err := resolveOptions(opts)
	if err != nil {
		return PubSubSubscription{}, err
	}
	existing, err := s.PubSubSubscriptions(ctx, service, node)
	var iqErr *IQError
	switch {
	case errors.As(err, &iqErr) && (iqErr.Condition == "feature-not-implemented" || iqErr.Condition == "service-unavailable"):
		existing = nil // no retrieval support: subscribe plainly
	case err != nil:
		return PubSubSubscription{}, err
	}
	for _, sub := range existing {
		switch sub.State {
		case SubscriptionSubscribed, SubscriptionUnconfigured:
			if err := s.configureSubscription(ctx, service, sub, ro); err != nil {
				return PubSubSubscription{}, err
			}
			sub.State, sub.Reused = SubscriptionSubscribed, true
			s.pubsub.track(service, sub, ro)
			return sub, nil
		case SubscriptionPending:
			sub.Reused = true
			s.pubsub.track(service, sub, ro)
			return sub, nil
		}
	}
	full := s.JID()
	q := pubsubQuery(nsPubSub, elem(nsPubSub, "subscribe", "node", node, "jid", full))
	if f := ro.form(time.Now()); f != nil {
		o := elem(nsPubSub, "options")
		o.Children = []xmlNode{*f}
		q.Children = append(q.Children, o)
	}
	res, err := s.request(ctx, "set", service.String(), q)
	if err != nil {
		return PubSubSubscription{}, err
	}
	var subNode *xmlNode
	if p := res.child(nsPubSub, "pubsub"); p != nil {
		subNode = p.child(nsPubSub, "subscription")
	}
	sub := subscriptionOf(service, node, subNode)
	if sub.JID == "" {
		sub.JID = full
	}
	s.pubsub.track(service, sub, ro)
	return sub, nil
}

// configureSubscription sets the options of an existing subscription
// (XEP-0060 §6.3.5). Services that accept no options for it (they answer
// feature-not-implemented) keep the subscription as it is.
func (s *Stream) configureSubscription(ctx context.Context, service jid.JID, sub PubSubSubscription, ro resolvedOptions) error {
	f := ro.form(time.Now())
	if f == nil {
		return nil
	}
	o := elem(nsPubSub, "options", "node", sub.Node, "jid", sub.JID)
	if sub.SubID != "" {
		o.Attrs = append(o.Attrs, xmlAttr("subid", sub.SubID))
	}
	o.Children = []xmlNode{*f}
	_, err := s.request(ctx, "set", service.String(), pubsubQuery(nsPubSub, o))
	var iqErr *IQError
	if errors.As(err, &iqErr) && iqErr.Condition == "feature-not-implemented" {
		s.log.Info("pubsub service does not configure subscriptions; kept as is", slog.String("service", service.String()))
		return nil
	}
	return err
}

// Unsubscribe removes this stream's subscription to a node. subid names
// it; "-" (or "") is this full JID's one subscription to the node, whatever
// its subid: services differ in assigning them (Prosody none, ejabberd one
// per subscription, pubsub service and PEP alike), and XEP-0060 §6.2.1
// makes the subid mandatory in the request once the service has one.
func (s *Stream) Unsubscribe(ctx context.Context, service jid.JID, node, subid string) error {
	own := subid == "-" || subid == ""
	if !own {
		if err := checkItemID(subid); err != nil {
			return err
		}
	}
	subs, err := s.PubSubSubscriptions(ctx, service, node)
	if err != nil {
		return err
	}
	if own {
		if subid, err = ownSubID(subs, node); err != nil {
			return err
		}
	} else {
		found := false
		for _, sub := range subs {
			found = found || sub.SubID == subid
		}
		if !found {
			return fmt.Errorf("%w: %s on node %q", ErrNotSubscribed, subidOrDefault(subid), node)
		}
	}
	u := elem(nsPubSub, "unsubscribe", "node", node, "jid", s.JID())
	if subid != "" {
		u.Attrs = append(u.Attrs, xmlAttr("subid", subid))
	}
	if _, err := s.request(ctx, "set", service.String(), pubsubQuery(nsPubSub, u)); err != nil {
		return err
	}
	s.pubsub.forget(service, node, subid)
	return nil
}

// ownSubID picks the subid of this full JID's one subscription among subs
// (already filtered to the stream's JID): "" when the service assigns none.
// Several subscriptions (XEP-0060 §6.1.6 multiple subscriptions) are
// ambiguous, so the client has to name one.
func ownSubID(subs []PubSubSubscription, node string) (string, error) {
	switch len(subs) {
	case 0:
		return "", fmt.Errorf("%w: %s on node %q", ErrNotSubscribed, subidOrDefault(""), node)
	case 1:
		return subs[0].SubID, nil
	}
	return "", fmt.Errorf("%w: this stream has %d subscriptions to node %q: name one by its subid", ErrInvalidInput, len(subs), node)
}

func subidOrDefault(subid string) string {
	if subid == "" {
		return "the subscription of this stream"
	}
	return "subid " + subid
}

// parsePayload validates a client-supplied item payload: exactly one
// namespaced element, no processing instructions or DTDs, namespace-well-
// formed names. The result is re-encoded, never the client's bytes.
func parsePayload(raw string) (xmlNode, error) {
	root, seen, err := parseOneElement(raw, "payload")
	if err != nil {
		return xmlNode{}, err
	}
	switch {
	case !seen:
		return xmlNode{}, fmt.Errorf("%w: payload is empty", ErrInvalidInput)
	case root.XMLName.Space == "" || root.XMLName.Space == nsClient:
		return xmlNode{}, fmt.Errorf("%w: the payload element needs its own namespace (xmlns)", ErrInvalidInput)
	case !root.wellNamed():
		return xmlNode{}, fmt.Errorf("%w: payload names are not namespace-well-formed", ErrInvalidInput)
	}
	return root, nil
}

// jsonPayload wraps a JSON value as an XEP-0335 <json/> payload.
func jsonPayload(v json.RawMessage) (xmlNode, error) {
	if !json.Valid(v) {
		return xmlNode{}, fmt.Errorf("%w: payload_json is not valid JSON", ErrInvalidInput)
	}
	n := elem(nsJSON, "json")
	n.Text = string(v)
	if err := checkText("payload_json", n.Text); err != nil {
		return xmlNode{}, err
	}
	return n, nil
}

// ItemPayload is the payload of an item to publish: one namespaced XML
// element, or a JSON value (sent as an XEP-0335 <json/> element).
type ItemPayload struct {
	XML  string
	JSON json.RawMessage
}

func (p ItemPayload) node() (xmlNode, error) {
	switch {
	case p.XML != "" && p.JSON != nil:
		return xmlNode{}, fmt.Errorf("%w: send payload or payload_json, not both", ErrInvalidInput)
	case p.XML != "":
		return parsePayload(p.XML)
	case p.JSON != nil:
		return jsonPayload(p.JSON)
	}
	return xmlNode{}, fmt.Errorf("%w: payload or payload_json is required", ErrInvalidInput)
}

// Publish publishes one item (id "" lets the service choose) and returns
// its id. PEP services are the user's own bare JID.
func (s *Stream) Publish(ctx context.Context, service jid.JID, node, id string, p ItemPayload, opts PublishOptions) (string, error) {
	if err := checkService(service); err != nil {
		return "", err
	}
	if err := checkNode(node); err != nil {
		return "", err
	}
	if err := checkItemID(id); err != nil {
		return "", err
	}
	switch opts.AccessModel {
	case "", "open", "presence", "roster", "authorize", "whitelist":
	default:
		return "", fmt.Errorf("%w: access_model must be open, presence, roster, authorize or whitelist", ErrInvalidInput)
	}
	payload, err := p.node()
	if err != nil {
		return "", err
	}
	item := elem(nsPubSub, "item")
	if id != "" {
		item.Attrs = append(item.Attrs, xmlAttr("id", id))
	}
	item.Children = []xmlNode{payload}
	pub := elem(nsPubSub, "publish", "node", node)
	pub.Children = []xmlNode{item}
	q := pubsubQuery(nsPubSub, pub)
	if opts.AccessModel != "" {
		po := elem(nsPubSub, "publish-options")
		po.Children = []xmlNode{dataForm(formPublishOptions, "pubsub#access_model", opts.AccessModel)}
		q.Children = append(q.Children, po)
	}
	res, err := s.request(ctx, "set", service.String(), q)
	if err != nil {
		return "", err
	}
	if p := res.child(nsPubSub, "pubsub"); p != nil {
		if pb := p.child(nsPubSub, "publish"); pb != nil {
			if it := pb.child(nsPubSub, "item"); it != nil && it.attr("id") != "" {
				return it.attr("id"), nil
			}
		}
	}
	return id, nil
}

// RetractItem deletes an item, notifying subscribers.
func (s *Stream) RetractItem(ctx context.Context, service jid.JID, node, id string) error {
	if err := checkService(service); err != nil {
		return err
	}
	if err := checkNode(node); err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("%w: item id is empty", ErrInvalidInput)
	}
	if err := checkItemID(id); err != nil {
		return err
	}
	r := elem(nsPubSub, "retract", "node", node, "notify", "true")
	r.Children = []xmlNode{elem(nsPubSub, "item", "id", id)}
	_, err := s.request(ctx, "set", service.String(), pubsubQuery(nsPubSub, r))
	return err
}

// Items retrieves a node's items: the ones named by ids, else the newest
// max (0: the service's default).
func (s *Stream) Items(ctx context.Context, service jid.JID, node string, max int, ids ...string) ([]PubSubItem, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	if err := checkNode(node); err != nil {
		return nil, err
	}
	q := elem(nsPubSub, "items", "node", node)
	if max > 0 {
		q.Attrs = append(q.Attrs, xmlAttr("max_items", strconv.Itoa(max)))
	}
	for _, id := range ids {
		if err := checkItemID(id); err != nil {
			return nil, err
		}
		q.Children = append(q.Children, elem(nsPubSub, "item", "id", id))
	}
	res, err := s.request(ctx, "get", service.String(), pubsubQuery(nsPubSub, q))
	if errors.Is(err, ErrStanzaSkipped) && res.badOnlyInside(isPubSubItem) {
		err = nil // the items the reader left out are reported as skipped
	}
	if err != nil {
		return nil, err
	}
	out := []PubSubItem{}
	if p := res.child(nsPubSub, "pubsub"); p != nil {
		if items := p.child(nsPubSub, "items"); items != nil {
			for i := range items.Children {
				if c := &items.Children[i]; c.XMLName.Local == "item" {
					out = append(out, itemOf(c))
				}
			}
		}
	}
	return out, nil
}

// itemOf reads an <item/>: its first child element is the payload. An
// item the reader did not keep whole is reported as skipped, without it.
func itemOf(n *xmlNode) PubSubItem {
	it := PubSubItem{ID: n.attr("id"), Publisher: n.attr("publisher"), Skipped: n.bad}
	if len(n.Children) == 0 || n.bad != "" {
		return it
	}
	p := n.Children[0]
	it.Payload = p.xmlString()
	if p.XMLName.Space == nsJSON && p.XMLName.Local == "json" {
		if text := strings.TrimSpace(p.Text); json.Valid([]byte(text)) {
			it.PayloadJSON = json.RawMessage(text)
		}
	}
	return it
}

// isPubSubItem reports whether n is an item of a pubsub answer or event:
// the unit a pubsub reader may skip on its own.
func isPubSubItem(n *xmlNode) bool {
	return n.XMLName.Local == "item" && (n.XMLName.Space == nsPubSub || n.XMLName.Space == nsPubSubEvent)
}

// handlePubSubEvent turns a pubsub#event message into events; it reports
// false for messages without one. A notification addressed to another
// resource of the user is not this stream's (OnSIP: check the to
// resource) and is dropped.
func (s *Stream) handlePubSubEvent(n xmlNode) bool {
	ev := n.child(nsPubSubEvent, "event")
	if ev == nil {
		return false
	}
	if to := n.attr("to"); to != "" {
		if j, err := jid.Parse(to); err == nil && j.Resourcepart() != "" && !s.isOwnFullJID(to) {
			s.log.Debug("dropped a pubsub notification for another resource")
			return true
		}
	}
	from := n.attr("from")
	service := from
	if j, err := jid.Parse(from); err == nil {
		service = j.String()
	} else if from == "" {
		service = s.user.String() // PEP notifications of our own account may omit from
	}
	subid := ""
	if h := n.child("http://jabber.org/protocol/shim", "headers"); h != nil {
		for _, c := range h.Children {
			if c.attr("name") == "SubID" {
				subid = c.Text
			}
		}
	}
	handled := false
	for i := range ev.Children {
		c := &ev.Children[i]
		switch c.XMLName.Local {
		case "items":
			pe := PubSubEvent{Type: EventPubSub, Service: service, Node: c.attr("node"), Items: []PubSubItem{}, SubID: subid}
			for j := range c.Children {
				switch it := &c.Children[j]; it.XMLName.Local {
				case "item":
					pe.Items = append(pe.Items, itemOf(it))
				case "retract":
					pe.Retract = append(pe.Retract, it.attr("id"))
				}
			}
			s.publish(pe)
			handled = true
		case "subscription":
			if !s.concernsUs(c.attr("jid")) {
				continue // about another account, or another resource of ours
			}
			se := PubSubSubscriptionEvent{Type: EventPubSubSubscription, Service: service, Node: c.attr("node"),
				JID: c.attr("jid"), State: c.attr("subscription"), SubID: c.attr("subid"), Expiry: c.attr("expiry")}
			if se.State == "" {
				se.State = SubscriptionNone
			}
			s.pubsub.settle(service, se)
			s.publish(se)
			handled = true
		}
	}
	return handled
}

// concernsUs reports whether a subscription's jid is this stream's: its
// full JID, or the bare account JID (or absent).
func (s *Stream) concernsUs(v string) bool {
	if v == "" {
		return true
	}
	j, err := jid.Parse(v)
	switch {
	case err != nil || !j.Bare().Equal(s.user.Bare()):
		return false
	case j.Resourcepart() == "":
		return true
	}
	return s.isOwnFullJID(v)
}

// pubsubState remembers the subscriptions this stream made, to renew
// relative expiries and to unsubscribe on logoff when asked.
type pubsubState struct {
	mu      sync.Mutex
	subs    map[string]*trackedSub // by service + node
	running bool                   // the renewal goroutine is started
}

type trackedSub struct {
	service jid.JID
	sub     PubSubSubscription
	opts    resolvedOptions
	renewAt time.Time // zero: nothing to renew
}

func pubsubKey(service, node string) string { return service + "\x00" + node }

func (p *pubsubState) track(service jid.JID, sub PubSubSubscription, ro resolvedOptions) {
	if sub.State == SubscriptionNone {
		return
	}
	t := &trackedSub{service: service, sub: sub, opts: ro}
	if ro.renewEvery > 0 {
		t.renewAt = time.Now().Add(ro.renewEvery * 3 / 4)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.subs == nil {
		p.subs = map[string]*trackedSub{}
	}
	p.subs[pubsubKey(service.String(), sub.Node)] = t
}

func (p *pubsubState) forget(service jid.JID, node, subid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := pubsubKey(service.String(), node)
	if t, ok := p.subs[k]; ok && (subid == "" || t.sub.SubID == subid) {
		delete(p.subs, k)
	}
}

// settle applies an owner's decision on a pending subscription.
func (p *pubsubState) settle(service string, ev PubSubSubscriptionEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := pubsubKey(service, ev.Node)
	t, ok := p.subs[k]
	if !ok {
		return
	}
	if ev.State == SubscriptionNone {
		delete(p.subs, k)
		return
	}
	t.sub.State = ev.State
	if ev.SubID != "" {
		t.sub.SubID = ev.SubID
	}
}

// due returns the subscriptions whose renewal time has come.
func (p *pubsubState) due(now time.Time) []trackedSub {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []trackedSub
	for _, t := range p.subs {
		if !t.renewAt.IsZero() && !now.Before(t.renewAt) && t.sub.State == SubscriptionSubscribed {
			out = append(out, *t)
			t.renewAt = now.Add(t.opts.renewEvery * 3 / 4)
		}
	}
	return out
}

// startRenewal reports whether the renewal loop should start now: some
// tracked subscription has a relative expiry and the loop is not running.
func (p *pubsubState) startRenewal() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		return false
	}
	for _, t := range p.subs {
		if !t.renewAt.IsZero() {
			p.running = true
			return true
		}
	}
	return false
}

func (s *Stream) startPubSubRenewal() {
	if s.stopping() || !s.pubsub.startRenewal() {
		return
	}
	s.mgr.wg.Add(1)
	go func() {
		defer s.mgr.wg.Done()
		tick := time.NewTicker(pubsubRenewTick)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-tick.C:
				for _, t := range s.pubsub.due(now) {
					s.renew(t)
				}
			}
		}
	}()
}

// renew reconfigures a subscription with a fresh expiry; when the service
// no longer knows it (expired meanwhile), it subscribes again.
func (s *Stream) renew(t trackedSub) {
	ctx, cancel := context.WithTimeout(s.stopCtx, requestTimeout) // Close ends it too
	defer cancel()
	err := s.configureSubscription(ctx, t.service, t.sub, t.opts)
	var iqErr *IQError
	if errors.As(err, &iqErr) && (iqErr.Condition == "item-not-found" || iqErr.Condition == "unexpected-request" || iqErr.Condition == "not-acceptable") {
		_, err = s.subscribe(ctx, t.service, t.sub.Node, t.opts.SubscribeOptions)
	}
	if err != nil {
		s.log.Warn("renewing a pubsub subscription failed", slog.String("service", t.service.String()), slog.String("error", err.Error()))
		return
	}
	s.log.Debug("pubsub subscription renewed", slog.String("service", t.service.String()))
}

// unsubscribeOnLogoff writes, without waiting for answers, an unsubscribe
// for every subscription made with UnsubscribeOnLogoff. Close calls it
// just before saying goodbye.
func (s *Stream) unsubscribeOnLogoff(c conn) {
	s.pubsub.mu.Lock()
	var todo []trackedSub
	for _, t := range s.pubsub.subs {
		if t.opts.UnsubscribeOnLogoff {
			todo = append(todo, *t)
		}
	}
	s.pubsub.mu.Unlock()
	for _, t := range todo {
		u := elem(nsPubSub, "unsubscribe", "node", t.sub.Node, "jid", t.sub.JID)
		if t.sub.SubID != "" {
			u.Attrs = append(u.Attrs, xmlAttr("subid", t.sub.SubID))
		}
		raw, err := xml.Marshal(xmlIQRequest{Type: "set", ID: newStanzaID(), To: t.service.String(), Payload: pubsubQuery(nsPubSub, u)})
		if err == nil {
			_ = c.Write(raw)
		}
	}
}
