package gateway

import "encoding/json"

// Event types, the "type" field of every JSON event a stream publishes.
// Message events reuse the XMPP message type (chat, normal, headline,
// groupchat) so the ancestor's clients keep working.
const (
	EventError     = "error"
	EventPresence  = "presence"
	EventStream    = "stream"
	EventChatState = "chatstate"
	EventMarker    = "marker"
	EventEdit      = "edit"
	EventDelete    = "delete"
	EventSystem    = "system"
	EventCommand   = "command"
	EventRaw       = "xmpp"
)

// Stream states reported in stream events.
const (
	StateOnline       = "online"
	StateReconnecting = "reconnecting"
	StateOffline      = "offline"
	// StateLost: the node holding the stream died and the stream could
	// not be re-opened elsewhere; the client must log in again (cluster
	// mode, docs/cluster.md).
	StateLost = "lost"
	// StateResumed: another node took the stream over after its node died
	// and re-opened its session; missed messages follow from the archive.
	StateResumed = "resumed"
)

// MessageEvent is a chat, normal, headline or groupchat message, and the
// base of the edit event.
type MessageEvent struct {
	Type string `json:"type"`
	// ID is the stanza id the sender chose (for markers, edits, deletes).
	ID string `json:"id,omitempty"`
	// OriginID is the sender's XEP-0359 origin id.
	OriginID string `json:"origin_id,omitempty"`
	// StanzaID is the archive id (XEP-0359) of the archive that holds the
	// message, the cursor for history: our server's for 1:1 messages, the
	// room's for a room's messages (page with the room's history route).
	StanzaID string `json:"stanza_id,omitempty"`
	From     string `json:"from"`
	To       string `json:"to"`
	Body     string `json:"body"`
	Subject  string `json:"subject,omitempty"`
	Thread   string `json:"thread,omitempty"`
	// Stamp is when the message was sent (XEP-0203 delay) or, without a
	// delay, when the gateway received it; RFC 3339 UTC.
	Stamp string `json:"stamp"`
	// Delayed is true when Stamp comes from a <delay/> the gateway trusts:
	// one our server added (offline storage), the room's (MUC history) or
	// the archive's (XEP-0313).
	Delayed bool `json:"delayed,omitempty"`
	// ClaimedStamp is a <delay/> stamp the sender put in itself (XEP-0203
	// §3: anyone may add one); it is shown, not trusted, so Stamp stays
	// the receipt time.
	ClaimedStamp string `json:"claimed_stamp,omitempty"`
	// Data is the JSON payload a gateway (or Openfire-Chat) client attached.
	Data json.RawMessage `json:"data,omitempty"`
	// ExtraParams are ConnectyCube <extraParams/> children (save_to_history,
	// date_sent, dialog_id, silent, moduleIdentifier, custom keys).
	ExtraParams map[string]string `json:"extraParams,omitempty"`
	// Attachments are the <attachment/> elements inside extraParams.
	Attachments []map[string]string `json:"attachments,omitempty"`
	// ChatState is an XEP-0085 state sent along with the message.
	ChatState string `json:"chatstate,omitempty"`
	// Markable asks for XEP-0333 markers.
	Markable bool `json:"markable,omitempty"`
	// ReplaceID (edit events) names the message this one corrects (XEP-0308).
	ReplaceID string `json:"replace_id,omitempty"`
	// DestroyAfter asks the receiver to delete the message after that many seconds.
	DestroyAfter int `json:"destroy_after,omitempty"`
	// Carbon is "sent" or "received" for XEP-0280 copies of the user's
	// conversations on other devices.
	Carbon string `json:"carbon,omitempty"`
	// Room and Nick are set on groupchat messages.
	Room string `json:"room,omitempty"`
	Nick string `json:"nick,omitempty"`
	// Extensions are payload elements the gateway does not model, as XML.
	Extensions []string `json:"extensions,omitempty"`
}

// StanzaError is the error condition carried by a bounced stanza (RFC 6120 §8.3).
type StanzaError struct {
	Type      string `json:"type"`
	Condition string `json:"condition"`
	Text      string `json:"text,omitempty"`
}

// ErrorEvent reports a message that bounced; ID is the id the gateway
// returned when the message was sent. With Skipped set it reports instead
// a received stanza the gateway would not read (nested too deeply, too
// large, names not namespace-well-formed): ID and From are the stanza's,
// Error.Text says why, and its payload is not delivered.
type ErrorEvent struct {
	Type  string      `json:"type"`
	ID    string      `json:"id,omitempty"`
	From  string      `json:"from"`
	To    string      `json:"to"`
	Error StanzaError `json:"error"`
	// Skipped is the kind of the skipped stanza: message, presence or iq.
	Skipped string `json:"skipped,omitempty"`
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
	Priority     int    `json:"priority"`
	// Error is set on presence errors.
	Error      *StanzaError `json:"error,omitempty"`
	Extensions []string     `json:"extensions,omitempty"`
}

// StreamEvent reports the state of the stream's XMPP connection.
type StreamEvent struct {
	Type    string `json:"type"`
	State   string `json:"state"`
	JID     string `json:"jid"`
	Reason  string `json:"reason,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
}

// ChatStateEvent is a standalone XEP-0085 chat state (typing indicator).
type ChatStateEvent struct {
	Type  string `json:"type"`
	From  string `json:"from"`
	To    string `json:"to"`
	State string `json:"state"`
}

// MarkerEvent is an XEP-0333 received/displayed marker for message ID.
type MarkerEvent struct {
	Type        string            `json:"type"`
	Marker      string            `json:"marker"`
	ID          string            `json:"id"`
	From        string            `json:"from"`
	To          string            `json:"to"`
	ExtraParams map[string]string `json:"extraParams,omitempty"`
}

// DeleteEvent says the sender deleted (retracted) message ID.
type DeleteEvent struct {
	Type        string            `json:"type"`
	ID          string            `json:"id"`
	From        string            `json:"from"`
	To          string            `json:"to"`
	ExtraParams map[string]string `json:"extraParams,omitempty"`
}

// SystemEvent is a system notification: a headline whose extraParams carry
// moduleIdentifier=SystemNotifications (ConnectyCube convention).
type SystemEvent struct {
	Type   string            `json:"type"`
	ID     string            `json:"id,omitempty"`
	From   string            `json:"from"`
	To     string            `json:"to"`
	Body   string            `json:"body,omitempty"`
	Stamp  string            `json:"stamp"`
	Params map[string]string `json:"params"`
}

// CommandEvent is an x:oob service command (the "XMPP service" protocol).
type CommandEvent struct {
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	From    string `json:"from"`
	To      string `json:"to"`
	Command string `json:"command"`
	Action  string `json:"action,omitempty"`
	// Payload is the payload parsed leniently into JSON, or a JSON string
	// holding the raw text when it could not be parsed.
	Payload      json.RawMessage `json:"payload,omitempty"`
	PayloadError string          `json:"payload_error,omitempty"`
	// InReplyTo is the id of the command this answers, when the reply echoes it.
	InReplyTo string `json:"in_reply_to,omitempty"`
}

// RawEvent carries a stanza the gateway does not model, as XML text, so
// nothing is dropped.
type RawEvent struct {
	Type   string `json:"type"`
	From   string `json:"from,omitempty"`
	Stanza string `json:"stanza"`
}
