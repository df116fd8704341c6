package gateway

import "encoding/json"

// Event types, the "type" field of every JSON event a stream publishes.
// Message events reuse the XMPP message type (chat, normal, headline,
// groupchat) so the ancestor's clients keep working.
const (
	EventError    = "error"
	EventPresence = "presence"
	EventStream   = "stream"
)

// Stream states reported in stream events.
const (
	StateOnline       = "online"
	StateReconnecting = "reconnecting"
	StateOffline      = "offline"
)

// MessageEvent is an incoming chat, normal, headline or groupchat message.
type MessageEvent struct {
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	From    string `json:"from"`
	To      string `json:"to"`
	Body    string `json:"body"`
	Subject string `json:"subject,omitempty"`
	Thread  string `json:"thread,omitempty"`
	// Data is the JSON payload a gateway (or Openfire-Chat) client attached.
	Data json.RawMessage `json:"data,omitempty"`
	// ExtraParams are ConnectyCube-style <extraParams/> children; system
	// notifications carry moduleIdentifier=SystemNotifications here.
	ExtraParams map[string]string `json:"extra_params,omitempty"`
	// Stamp is the XEP-0203 delay stamp (RFC 3339) of an offline or
	// archived message.
	Stamp string `json:"stamp,omitempty"`
	// StanzaID is the server-assigned XEP-0359 id, usable with history.
	StanzaID string `json:"stanza_id,omitempty"`
}

// StanzaError is the error condition carried by a bounced stanza (RFC 6120 §8.3).
type StanzaError struct {
	Type      string `json:"type"`
	Condition string `json:"condition"`
	Text      string `json:"text,omitempty"`
}

// ErrorEvent reports a message that bounced; ID is the id the gateway
// returned when the message was sent.
type ErrorEvent struct {
	Type  string      `json:"type"`
	ID    string      `json:"id,omitempty"`
	From  string      `json:"from"`
	To    string      `json:"to"`
	Error StanzaError `json:"error"`
}

// PresenceEvent is an incoming presence. PresenceType is "available" for a
// presence without a type attribute, else the RFC 6121 type (unavailable,
// subscribe, ...); unavailable presences report show "offline" rather than
// the ancestor's misleading "available".
type PresenceEvent struct {
	Type         string `json:"type"`
	From         string `json:"from"`
	To           string `json:"to"`
	PresenceType string `json:"presence_type"`
	Show         string `json:"show"`
	Status       string `json:"status"`
	// Priority is absent when unknown: go-xmpp v0.3.6 does not parse the
	// <priority/> element of incoming presences.
	Priority *int `json:"priority,omitempty"`
}

// StreamEvent reports the state of the stream's XMPP connection.
type StreamEvent struct {
	Type    string `json:"type"`
	State   string `json:"state"`
	JID     string `json:"jid"`
	Reason  string `json:"reason,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
}
