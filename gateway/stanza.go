package gateway

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// Namespaces used on the wire.
const (
	nsOriginID    = "urn:xmpp:sid:0"                                    // XEP-0359
	nsJSON        = "urn:xmpp:json:0"                                   // XEP-0335
	nsJiveProps   = "http://www.jivesoftware.com/xmlns/xmpp/properties" // Openfire-Chat's "data"
	nsStanzaError = "urn:ietf:params:xml:ns:xmpp-stanzas"               // RFC 6120 §8.3
	nsClient      = "jabber:client"
	nsChatStates  = "http://jabber.org/protocol/chatstates" // XEP-0085
	nsMarkers     = "urn:xmpp:chat-markers:0"               // XEP-0333
	nsCorrect     = "urn:xmpp:message-correct:0"            // XEP-0308
	nsDelete      = "urn:xmpp:message-delete:0"             // ConnectyCube delete
	nsRetract     = "urn:xmpp:message-retract:1"            // XEP-0424
	nsDestroy     = "urn:xmpp:message-destroy-after:0"      // ConnectyCube self-destroy
	nsDelay       = "urn:xmpp:delay"                        // XEP-0203
	nsCarbons     = "urn:xmpp:carbons:2"                    // XEP-0280
	nsForward     = "urn:xmpp:forward:0"                    // XEP-0297
	nsMAM         = "urn:xmpp:mam:2"                        // XEP-0313
	nsRSM         = "http://jabber.org/protocol/rsm"        // XEP-0059
	nsDataForms   = "jabber:x:data"                         // XEP-0004
	nsOOB         = "jabber:x:oob"                          // the x:oob service commands
	nsPing        = "urn:xmpp:ping"                         // XEP-0199
	nsRoster      = "jabber:iq:roster"                      // RFC 6121
	nsVCard       = "vcard-temp"                            // XEP-0054
)

// Message types a client may send 1:1 (RFC 6121 §5.2.2); groupchat belongs
// to rooms.
var sendableMessageTypes = map[string]bool{"chat": true, "normal": true, "headline": true}

// OutgoingMessage is a 1:1 message a client asks to send.
type OutgoingMessage struct {
	To      jid.JID
	Type    string // chat (default), normal or headline
	ID      string // optional; generated when empty
	Body    string
	Subject string
	Thread  string
	// Data is any JSON value, carried in an XEP-0335 JSON container.
	Data json.RawMessage
	// ExtraParams are ConnectyCube-style <extraParams/> children (name →
	// text), e.g. moduleIdentifier=SystemNotifications.
	ExtraParams map[string]string
	// Attachments become <attachment/> elements inside extraParams, one
	// attribute per key (see attachmentAttrs).
	Attachments []map[string]string
	// ChatState (XEP-0085) goes along with the message, e.g. "active".
	ChatState string
	// Markable asks the receiver for XEP-0333 markers.
	Markable bool
	// ReplaceID makes this a correction of that message (XEP-0308).
	ReplaceID string
	// DestroyAfter asks the receiver to delete it after that many seconds.
	DestroyAfter int
}

// attachmentAttrs are the attachment attributes of the ConnectyCube
// convention; others are refused so typos do not travel silently.
var attachmentAttrs = map[string]bool{"type": true, "id": true, "url": true, "data": true, "size": true,
	"width": true, "height": true, "duration": true, "content-type": true, "name": true}

// chatStates are the XEP-0085 states.
var chatStates = map[string]bool{"active": true, "composing": true, "paused": true, "inactive": true, "gone": true}

// ValidChatState reports whether state is an XEP-0085 chat state.
func ValidChatState(state string) bool { return chatStates[state] }

// extraParamName limits extraParams keys to names that are valid XML
// element names, since each key becomes an element.
var extraParamName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// validParamName also refuses names starting with "xml" in any case,
// which XML 1.0 §2.3 reserves.
func validParamName(k string) bool {
	return extraParamName.MatchString(k) && !strings.HasPrefix(strings.ToLower(k), "xml")
}

// maxExtraParams bounds the number of extraParams children.
const maxExtraParams = 64

// OutgoingPresence is a presence a client asks to send. A zero To broadcasts
// to subscribed contacts; Type is empty for available.
type OutgoingPresence struct {
	To       jid.JID
	Type     string // "", unavailable, subscribe, subscribed, unsubscribe, unsubscribed
	Show     string // "", away, chat, dnd, xa
	Status   string
	Priority int
}

var (
	presenceTypes = map[string]bool{"": true, "unavailable": true, "subscribe": true,
		"subscribed": true, "unsubscribe": true, "unsubscribed": true}
	presenceShows = map[string]bool{"": true, "away": true, "chat": true, "dnd": true, "xa": true}
)

// Validate checks a presence against RFC 6121 §4.7.
func (p OutgoingPresence) Validate() error {
	if !presenceTypes[p.Type] {
		return fmt.Errorf("%w: presence type %q", ErrInvalidInput, p.Type)
	}
	if !presenceShows[p.Show] {
		return fmt.Errorf("%w: show must be one of available, away, chat, dnd, xa, offline", ErrInvalidInput)
	}
	if p.Priority < -128 || p.Priority > 127 {
		return fmt.Errorf("%w: priority must be between -128 and 127", ErrInvalidInput)
	}
	if strings.HasPrefix(p.Type, "subscri") || strings.HasPrefix(p.Type, "unsubscri") {
		if p.To.Equal(jid.JID{}) {
			return fmt.Errorf("%w: presence type %q needs a 'to' JID", ErrInvalidInput, p.Type)
		}
	}
	return checkText("status", p.Status)
}

// CheckText rejects text that XML 1.0 cannot carry (invalid UTF-8,
// control characters), naming the field in the error.
func CheckText(field, s string) error { return checkText(field, s) }

// checkText rejects text that XML 1.0 cannot carry (§2.2 Char), so nothing a
// client sends is silently replaced on the way.
func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidInput, field)
	}
	for _, r := range s {
		if !isXMLChar(r) {
			return fmt.Errorf("%w: %s contains character U+%04X, which XML cannot carry", ErrInvalidInput, field, r)
		}
	}
	return nil
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// normalizeNewlines applies XML 1.0 §2.11 end-of-line handling up front:
// every receiver's parser turns CR LF and lone CR into LF anyway, so doing it
// here keeps what the sender stored equal to what the peer sees.
func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// prepare validates a message and fills its defaults; groupchat is only
// allowed for messages to rooms.
func (m *OutgoingMessage) prepare(groupchat bool) error {
	if m.To.Equal(jid.JID{}) {
		return fmt.Errorf("%w: recipient JID is empty", ErrInvalidAddress)
	}
	if m.Type == "" {
		m.Type = "chat"
	}
	if !sendableMessageTypes[m.Type] && !(groupchat && m.Type == "groupchat") {
		return fmt.Errorf("%w: message type must be chat, normal or headline", ErrInvalidInput)
	}
	if m.ID == "" {
		m.ID = newStanzaID()
	} else if !stanzaIDPattern.MatchString(m.ID) {
		return fmt.Errorf("%w: id must be 1-128 characters of A-Z a-z 0-9 . _ : -", ErrInvalidInput)
	}
	if m.Body == "" && len(m.Data) == 0 && m.Subject == "" && len(m.ExtraParams) == 0 && len(m.Attachments) == 0 {
		return fmt.Errorf("%w: a message needs a body, a subject, data, extraParams or attachments", ErrInvalidInput)
	}
	if m.ChatState != "" && !chatStates[m.ChatState] {
		return fmt.Errorf("%w: chat state must be active, composing, paused, inactive or gone", ErrInvalidInput)
	}
	if m.ReplaceID != "" && !stanzaIDPattern.MatchString(m.ReplaceID) {
		return fmt.Errorf("%w: replace id must be 1-128 characters of A-Z a-z 0-9 . _ : -", ErrInvalidInput)
	}
	if m.DestroyAfter < 0 || m.DestroyAfter > 7*24*3600 {
		return fmt.Errorf("%w: destroy_after must be 0 to 604800 seconds", ErrInvalidInput)
	}
	if len(m.Attachments) > maxExtraParams {
		return fmt.Errorf("%w: at most %d attachments", ErrInvalidInput, maxExtraParams)
	}
	for _, a := range m.Attachments {
		for k, v := range a {
			if !attachmentAttrs[k] {
				return fmt.Errorf("%w: unknown attachment attribute %q", ErrInvalidInput, k)
			}
			if err := checkText("attachment "+k, v); err != nil {
				return err
			}
		}
	}
	if _, ok := m.ExtraParams["attachment"]; ok {
		return fmt.Errorf("%w: attachments go in attachments, not extraParams", ErrInvalidInput)
	}
	if len(m.ExtraParams) > maxExtraParams {
		return fmt.Errorf("%w: at most %d extra params", ErrInvalidInput, maxExtraParams)
	}
	for k, v := range m.ExtraParams {
		if !validParamName(k) {
			return fmt.Errorf("%w: extra param name %q must match %s and not start with xml", ErrInvalidInput, k, extraParamName)
		}
		if err := checkText("extra param "+k, v); err != nil {
			return err
		}
	}
	if len(m.Data) > 0 && !json.Valid(m.Data) {
		return fmt.Errorf("%w: data is not valid JSON", ErrInvalidInput)
	}
	m.Body, m.Subject, m.Thread = normalizeNewlines(m.Body), normalizeNewlines(m.Subject), normalizeNewlines(m.Thread)
	for _, f := range []struct{ name, v string }{{"body", m.Body}, {"subject", m.Subject}, {"thread", m.Thread}, {"data", string(m.Data)}} {
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

// elem builds a payload element; attrs are name/value pairs.
func elem(space, local string, attrs ...string) xmlNode {
	n := xmlNode{XMLName: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		n.Attrs = append(n.Attrs, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
	}
	return n
}

// extraParamsNode builds ConnectyCube's <extraParams xmlns="jabber:client">
// with sorted keys (stable output) and attachments last.
func extraParamsNode(params map[string]string, attachments []map[string]string) *xmlNode {
	if len(params) == 0 && len(attachments) == 0 {
		return nil
	}
	n := elem(nsClient, "extraParams")
	for _, k := range slices.Sorted(maps.Keys(params)) {
		c := elem(nsClient, k)
		c.Text = normalizeNewlines(params[k])
		n.Children = append(n.Children, c)
	}
	for _, a := range attachments {
		c := elem(nsClient, "attachment")
		for _, k := range slices.Sorted(maps.Keys(a)) {
			c.Attrs = append(c.Attrs, xml.Attr{Name: xml.Name{Local: k}, Value: a[k]})
		}
		n.Children = append(n.Children, c)
	}
	return &n
}

// encodeMessage renders a prepared message token by token through an
// xml.Encoder; no client text is ever spliced into markup. It is on the
// path of every REST send, where xml.Marshal of a tagged struct
// cost about a tenth of the gateway's CPU; encoders and buffers are pooled.
// The output matches what xml.Marshal of the old struct produced, except that
// a newline in character data is written as is rather than as &#xA; (the
// same text to any XML parser; TestEncodeMessage_MatchesMarshal checks).
func encodeMessage(m OutgoingMessage) ([]byte, error) {
	e := msgEncoders.Get().(*msgEncoder)
	out, err := e.message(m)
	if err != nil {
		return nil, err // the encoder may hold a half-written element: drop it
	}
	if e.buf.Cap() <= maxPooledEncoderBytes && cap(e.text) <= maxPooledEncoderBytes {
		clear(e.attrs[:cap(e.attrs)]) // do not keep client strings alive
		msgEncoders.Put(e)
	}
	return out, nil
}

// msgEncoder is encodeMessage's reusable state.
type msgEncoder struct {
	buf   bytes.Buffer
	enc   *xml.Encoder
	text  []byte     // CharData of the current text
	attrs []xml.Attr // attributes of the current element
}

// maxPooledEncoderBytes keeps encoders that rendered a huge message out of
// the pool, so it does not pin their buffers (stanzas go up to 200 KiB).
const maxPooledEncoderBytes = 64 * 1024

var msgEncoders = sync.Pool{New: func() any {
	e := &msgEncoder{}
	e.enc = xml.NewEncoder(&e.buf)
	return e
}}

// Element names of an outgoing message. <message/> and its RFC 6120
// children carry no namespace, so they inherit the stream's jabber:client.
var (
	nameMessage     = xml.Name{Local: "message"}
	nameSubject     = xml.Name{Local: "subject"}
	nameBody        = xml.Name{Local: "body"}
	nameThread      = xml.Name{Local: "thread"}
	nameOriginID    = xml.Name{Space: nsOriginID, Local: "origin-id"}
	nameJSON        = xml.Name{Space: nsJSON, Local: "json"}
	nameExtraParams = xml.Name{Space: nsClient, Local: "extraParams"}
	nameAttachment  = xml.Name{Space: nsClient, Local: "attachment"}
	nameMarkable    = xml.Name{Space: nsMarkers, Local: "markable"}
	nameReplace     = xml.Name{Space: nsCorrect, Local: "replace"}
	nameDestroy     = xml.Name{Space: nsDestroy, Local: "destroy"}
)

// message writes m (RFC 6120 children, origin-id, JSON, extraParams, then
// the other extensions) and returns a copy of the bytes.
func (e *msgEncoder) message(m OutgoingMessage) ([]byte, error) {
	e.buf.Reset()
	e.attrs = append(e.attrs[:0], xml.Attr{Name: xml.Name{Local: "to"}, Value: m.To.String()},
		xml.Attr{Name: xml.Name{Local: "type"}, Value: m.Type}, xml.Attr{Name: xml.Name{Local: "id"}, Value: m.ID})
	err := e.enc.EncodeToken(xml.StartElement{Name: nameMessage, Attr: e.attrs})
	for _, f := range [...]struct {
		name xml.Name
		text string
	}{{nameSubject, m.Subject}, {nameBody, m.Body}, {nameThread, m.Thread}} {
		if err == nil && f.text != "" {
			err = e.element(f.name, nil, f.text)
		}
	}
	if err == nil {
		e.attrs = append(e.attrs[:0], xml.Attr{Name: xml.Name{Local: "id"}, Value: m.ID})
		err = e.element(nameOriginID, e.attrs, "")
	}
	if err == nil && len(m.Data) > 0 {
		err = e.element(nameJSON, nil, string(m.Data))
	}
	if n := extraParamsNode(m.ExtraParams, m.Attachments); err == nil && n != nil {
		err = e.enc.EncodeElement(n, xml.StartElement{Name: n.XMLName}) // rare: the node's own marshaller
	}
	if err == nil && m.ChatState != "" {
		err = e.element(xml.Name{Space: nsChatStates, Local: m.ChatState}, nil, "")
	}
	if err == nil && m.Markable {
		err = e.element(nameMarkable, nil, "")
	}
	if err == nil && m.ReplaceID != "" {
		e.attrs = append(e.attrs[:0], xml.Attr{Name: xml.Name{Local: "id"}, Value: m.ReplaceID})
		err = e.element(nameReplace, e.attrs, "")
	}
	if err == nil && m.DestroyAfter > 0 {
		e.attrs = append(e.attrs[:0], xml.Attr{Name: xml.Name{Local: "after"}, Value: strconv.Itoa(m.DestroyAfter)})
		err = e.element(nameDestroy, e.attrs, "")
	}
	if err == nil {
		err = e.enc.EncodeToken(xml.EndElement{Name: nameMessage})
	}
	if err == nil {
		err = e.enc.Flush()
	}
	if err != nil {
		return nil, err
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

// element writes a leaf element with optional attributes and text.
func (e *msgEncoder) element(name xml.Name, attrs []xml.Attr, text string) error {
	if err := e.enc.EncodeToken(xml.StartElement{Name: name, Attr: attrs}); err != nil {
		return err
	}
	if text != "" {
		e.text = append(e.text[:0], text...)
		if err := e.enc.EncodeToken(xml.CharData(e.text)); err != nil {
			return err
		}
	}
	return e.enc.EncodeToken(xml.EndElement{Name: name})
}

type xmlPresence struct {
	XMLName  xml.Name `xml:"presence"`
	To       string   `xml:"to,attr,omitempty"`
	Type     string   `xml:"type,attr,omitempty"`
	Show     string   `xml:"show,omitempty"`
	Status   string   `xml:"status,omitempty"`
	Priority *int     `xml:"priority,omitempty"`
}

// encodePresence renders a validated presence. Priority is only meaningful
// on available presence broadcasts (RFC 6121 §4.7.2.3).
func encodePresence(p OutgoingPresence) ([]byte, error) {
	x := xmlPresence{Type: p.Type, Show: p.Show, Status: normalizeNewlines(p.Status)}
	if !p.To.Equal(jid.JID{}) {
		x.To = p.To.String()
	}
	if p.Type == "" {
		prio := p.Priority
		x.Priority = &prio
	}
	return xml.Marshal(x)
}

type xmlStanzaError struct {
	Type      string `xml:"type,attr"`
	Condition struct {
		XMLName xml.Name
	} `xml:",any"`
}

type xmlIQ struct {
	XMLName xml.Name        `xml:"iq"`
	Type    string          `xml:"type,attr"`
	ID      string          `xml:"id,attr"`
	To      string          `xml:"to,attr,omitempty"`
	Error   *xmlStanzaError `xml:"error,omitempty"`
}

// encodeIQReply answers an IQ get/set: RFC 6120 §8.2.3 requires every one to
// get a result or an error, or the sender waits forever.
func encodeIQReply(to, id, condition string) ([]byte, error) {
	x := xmlIQ{Type: "result", ID: id, To: to}
	if condition != "" {
		x.Type = "error"
		x.Error = &xmlStanzaError{Type: "cancel"}
		x.Error.Condition.XMLName = xml.Name{Space: nsStanzaError, Local: condition}
	}
	return xml.Marshal(x)
}
