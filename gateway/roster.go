package gateway

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"mellium.im/xmpp/jid"
)

// Event types of contacts and rooms.
const (
	EventSubscription = "subscription"
	EventRoster       = "roster"
)

// RosterItem is one contact (RFC 6121 §2.1.2).
type RosterItem struct {
	JID  string `json:"jid"`
	Name string `json:"name,omitempty"`
	// Groups is never null, so clients can iterate it.
	Groups []string `json:"groups"`
	// Subscription is none, to, from or both (remove in a push of a removal).
	Subscription string `json:"subscription"`
	// Ask is "subscribe" while our request is pending.
	Ask string `json:"ask,omitempty"`
}

// ContactPresence summarises a contact's current presence.
type ContactPresence struct {
	Available bool   `json:"available"`
	Show      string `json:"show"`
	Status    string `json:"status,omitempty"`
	// Resources are the contact's online resources, best first.
	Resources []ResourcePresence `json:"resources"`
}

// ResourcePresence is one online resource of a contact.
type ResourcePresence struct {
	Resource string `json:"resource"`
	Show     string `json:"show"`
	Status   string `json:"status,omitempty"`
	Priority int    `json:"priority"`
}

// Contact is a roster item with its live presence.
type Contact struct {
	RosterItem
	Presence ContactPresence `json:"presence"`
}

// SubscriptionEvent is an incoming subscription request or answer:
// action is subscribe, subscribed, unsubscribe or unsubscribed.
type SubscriptionEvent struct {
	Type   string `json:"type"`
	From   string `json:"from"`
	To     string `json:"to"`
	Action string `json:"action"`
	Status string `json:"status,omitempty"`
}

// RosterEvent is a roster push: a contact added, changed or removed
// (subscription "remove").
type RosterEvent struct {
	Type string     `json:"type"`
	Item RosterItem `json:"item"`
}

// Bounds of a stream's presence book.
const (
	presenceBookMaxJIDs      = 5000
	presenceBookMaxResources = 32
)

// presenceBook remembers the latest presence of every full JID that sent
// one, so a contact list can show who is online without waiting.
type presenceBook struct {
	mu   sync.Mutex
	byID map[string]map[string]ResourcePresence // bare → resource → presence
}

func (b *presenceBook) update(ev PresenceEvent) {
	from, err := jid.Parse(ev.From)
	if err != nil {
		return
	}
	bare, res := from.Bare().String(), from.Resourcepart()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byID == nil {
		b.byID = map[string]map[string]ResourcePresence{}
	}
	switch ev.PresenceType {
	case "available":
		// Bounded: anyone on the network can send directed presence.
		if b.byID[bare] == nil {
			if len(b.byID) >= presenceBookMaxJIDs {
				return
			}
			b.byID[bare] = map[string]ResourcePresence{}
		}
		if _, known := b.byID[bare][res]; !known && len(b.byID[bare]) >= presenceBookMaxResources {
			return
		}
		b.byID[bare][res] = ResourcePresence{Resource: res, Show: ev.Show, Status: ev.Status, Priority: ev.Priority}
	case "unavailable", "error":
		delete(b.byID[bare], res)
		if len(b.byID[bare]) == 0 {
			delete(b.byID, bare)
		}
	}
}

// forget drops everything (after a reconnect the server re-sends presence).
func (b *presenceBook) forget() {
	b.mu.Lock()
	b.byID = nil
	b.mu.Unlock()
}

func (b *presenceBook) of(bare string) ContactPresence {
	b.mu.Lock()
	defer b.mu.Unlock()
	cp := ContactPresence{Show: "offline", Resources: []ResourcePresence{}}
	for _, r := range b.byID[bare] {
		cp.Resources = append(cp.Resources, r)
	}
	sort.Slice(cp.Resources, func(i, j int) bool {
		if cp.Resources[i].Priority != cp.Resources[j].Priority {
			return cp.Resources[i].Priority > cp.Resources[j].Priority
		}
		return cp.Resources[i].Resource < cp.Resources[j].Resource
	})
	if len(cp.Resources) > 0 {
		cp.Available, cp.Show, cp.Status = true, cp.Resources[0].Show, cp.Resources[0].Status
	}
	return cp
}

// xmlRosterItem is a roster item on the wire.
type rosterQuery struct {
	XMLName struct{}        `xml:"jabber:iq:roster query"`
	Items   []xmlRosterItem `xml:"item"`
}

type xmlRosterItem struct {
	JID          string   `xml:"jid,attr"`
	Name         string   `xml:"name,attr,omitempty"`
	Subscription string   `xml:"subscription,attr,omitempty"`
	Ask          string   `xml:"ask,attr,omitempty"`
	Groups       []string `xml:"group"`
}

func rosterItemOf(n *xmlNode) RosterItem {
	it := RosterItem{JID: n.attr("jid"), Name: n.attr("name"), Subscription: n.attr("subscription"),
		Ask: n.attr("ask"), Groups: []string{}}
	if it.Subscription == "" {
		it.Subscription = "none"
	}
	for _, g := range n.Children {
		if g.XMLName.Local == "group" {
			it.Groups = append(it.Groups, g.Text)
		}
	}
	return it
}

// Contacts returns the roster with each contact's live presence.
func (s *Stream) Contacts(ctx context.Context) ([]Contact, error) {
	res, err := s.request(ctx, "get", "", rosterQuery{})
	if err != nil {
		return nil, err
	}
	out := []Contact{}
	if q := res.child(nsRoster, "query"); q != nil {
		for i := range q.Children {
			it := rosterItemOf(&q.Children[i])
			out = append(out, Contact{RosterItem: it, Presence: s.contacts.of(it.JID)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JID < out[j].JID })
	return out, nil
}

// maxGroups bounds the groups of one contact.
const maxGroups = 32

// SetContact adds or updates a roster item's name and groups; the server
// leaves the subscription state alone (RFC 6121 §2.1.2.5).
func (s *Stream) SetContact(ctx context.Context, who jid.JID, name string, groups []string) error {
	if len(groups) > maxGroups {
		return fmt.Errorf("%w: at most %d groups", ErrInvalidInput, maxGroups)
	}
	seen := map[string]bool{}
	for _, g := range append([]string{name}, groups...) {
		if err := checkText("name or group", g); err != nil {
			return err
		}
	}
	for _, g := range groups {
		if g == "" || seen[g] {
			return fmt.Errorf("%w: groups must be non-empty and distinct", ErrInvalidInput)
		}
		seen[g] = true
	}
	item := xmlRosterItem{JID: who.Bare().String(), Name: name, Groups: slices.Clone(groups)}
	_, err := s.request(ctx, "set", "", rosterQuery{Items: []xmlRosterItem{item}})
	return err
}

// RemoveContact removes a roster item; the server also cancels the
// subscriptions both ways (RFC 6121 §2.5.2).
func (s *Stream) RemoveContact(ctx context.Context, who jid.JID) error {
	_, err := s.request(ctx, "set", "", rosterQuery{Items: []xmlRosterItem{{JID: who.Bare().String(), Subscription: "remove"}}})
	return err
}

// handleSubscription turns subscription presences into events.
func subscriptionEvent(ev PresenceEvent) (SubscriptionEvent, bool) {
	switch ev.PresenceType {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return SubscriptionEvent{Type: EventSubscription, From: ev.From, To: ev.To, Action: ev.PresenceType, Status: ev.Status}, true
	}
	return SubscriptionEvent{}, false
}
