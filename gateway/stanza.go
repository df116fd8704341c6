package gateway

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// Namespaces used on the wire.
const (
	nsOriginID    = "urn:xmpp:sid:0"                                    // XEP-0359
	nsJSON        = "urn:xmpp:json:0"                                   // XEP-0335
	nsJiveProps   = "http://www.jivesoftware.com/xmlns/xmpp/properties" // Openfire-Chat's "data"
	nsStanzaError = "urn:ietf:params:xml:ns:xmpp-stanzas"               // RFC 6120 §8.3
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
}

// extraParamName limits extraParams keys to names that are valid XML
// element names, since each key becomes an element.
var extraParamName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

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

// prepare validates a message and fills its defaults.
func (m *OutgoingMessage) prepare() error {
	if m.To.Equal(jid.JID{}) {
		return fmt.Errorf("%w: recipient JID is empty", ErrInvalidAddress)
	}
	if m.Type == "" {
		m.Type = "chat"
	}
	if !sendableMessageTypes[m.Type] {
		return fmt.Errorf("%w: message type must be chat, normal or headline", ErrInvalidInput)
	}
	if m.ID == "" {
		m.ID = newStanzaID()
	} else if !stanzaIDPattern.MatchString(m.ID) {
		return fmt.Errorf("%w: id must be 1-128 characters of A-Z a-z 0-9 . _ : -", ErrInvalidInput)
	}
	if m.Body == "" && len(m.Data) == 0 && m.Subject == "" && len(m.ExtraParams) == 0 {
		return fmt.Errorf("%w: a message needs a body, a subject, data or extra params", ErrInvalidInput)
	}
	if len(m.ExtraParams) > maxExtraParams {
		return fmt.Errorf("%w: at most %d extra params", ErrInvalidInput, maxExtraParams)
	}
	for k, v := range m.ExtraParams {
		if !extraParamName.MatchString(k) {
			return fmt.Errorf("%w: extra param name %q must match %s", ErrInvalidInput, k, extraParamName)
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

type xmlOriginID struct {
	ID string `xml:"id,attr"`
}

type xmlJSON struct {
	Value string `xml:",chardata"`
}

// xmlMessage is an outgoing <message/>. It carries no namespace so it
// inherits the stream's jabber:client default.
type xmlMessage struct {
	XMLName  xml.Name    `xml:"message"`
	To       string      `xml:"to,attr"`
	Type     string      `xml:"type,attr"`
	ID       string      `xml:"id,attr"`
	Subject  string      `xml:"subject,omitempty"`
	Body     string      `xml:"body,omitempty"`
	Thread   string      `xml:"thread,omitempty"`
	OriginID xmlOriginID `xml:"urn:xmpp:sid:0 origin-id"`
	JSON     *xmlJSON    `xml:"urn:xmpp:json:0 json,omitempty"`
	Extra    *xmlExtra   `xml:"jabber:client extraParams,omitempty"`
}

// xmlExtra is ConnectyCube's <extraParams xmlns="jabber:client">.
type xmlExtra struct {
	Params []xmlParam
}

type xmlParam struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

// encodeMessage renders a prepared message with encoding/xml; no client text
// is ever spliced into markup.
func encodeMessage(m OutgoingMessage) ([]byte, error) {
	x := xmlMessage{To: m.To.String(), Type: m.Type, ID: m.ID, Subject: m.Subject, Body: m.Body,
		Thread: m.Thread, OriginID: xmlOriginID{ID: m.ID}}
	if len(m.Data) > 0 {
		x.JSON = &xmlJSON{Value: string(m.Data)}
	}
	if len(m.ExtraParams) > 0 {
		x.Extra = &xmlExtra{}
		for _, k := range slices.Sorted(maps.Keys(m.ExtraParams)) {
			x.Extra.Params = append(x.Extra.Params, xmlParam{XMLName: xml.Name{Local: k}, Value: normalizeNewlines(m.ExtraParams[k])})
		}
	}
	return xml.Marshal(x)
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

// element is the subset of go-xmpp's XMLElement the translation reads; kept
// separate so the parsing is unit-testable without go-xmpp values.
type element struct {
	Name     xml.Name
	Attr     []xml.Attr
	InnerXML string
}

// payloadData extracts the JSON payload of a message: an XEP-0335 container,
// else the Openfire-Chat Jive property "data". Text that is not JSON is
// returned as a JSON string so the event stays valid.
func payloadData(elems []element) json.RawMessage {
	for _, e := range elems {
		var text string
		switch {
		case e.Name.Space == nsJSON && e.Name.Local == "json":
			text = innerText(e.InnerXML)
		case e.Name.Space == nsJiveProps && e.Name.Local == "properties":
			var props struct {
				Property []struct {
					Name  string `xml:"name"`
					Value string `xml:"value"`
				} `xml:"property"`
			}
			if xml.Unmarshal([]byte("<p>"+e.InnerXML+"</p>"), &props) != nil {
				continue
			}
			for _, p := range props.Property {
				if p.Name == "data" {
					text = p.Value
				}
			}
		default:
			continue
		}
		if text == "" {
			continue
		}
		if json.Valid([]byte(text)) {
			return json.RawMessage(text)
		}
		quoted, _ := json.Marshal(text)
		return quoted
	}
	return nil
}

// extraParams reads a ConnectyCube <extraParams/> element: each child's
// name and text.
func extraParams(elems []element) map[string]string {
	for _, e := range elems {
		if e.Name.Local != "extraParams" {
			continue
		}
		out := map[string]string{}
		d := xml.NewDecoder(strings.NewReader(e.InnerXML))
		for len(out) < maxExtraParams {
			tok, err := d.Token()
			if err != nil {
				break
			}
			if start, ok := tok.(xml.StartElement); ok {
				var v struct {
					Inner string `xml:",innerxml"`
				}
				if d.DecodeElement(&v, &start) == nil {
					out[start.Name.Local] = innerText(v.Inner)
				}
			}
		}
		return out
	}
	return nil
}

// innerText decodes the character data of an element's inner XML.
func innerText(inner string) string {
	d := xml.NewDecoder(strings.NewReader(inner))
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return b.String()
		}
		if cd, ok := tok.(xml.CharData); ok {
			b.Write(cd)
		}
	}
}

// stanzaError reads the <error/> child of a bounced stanza.
func stanzaError(elems []element) StanzaError {
	se := StanzaError{Type: "cancel", Condition: "undefined-condition"}
	for _, e := range elems {
		if e.Name.Local != "error" {
			continue
		}
		for _, a := range e.Attr {
			if a.Name.Local == "type" && a.Value != "" {
				se.Type = a.Value
			}
		}
		d := xml.NewDecoder(bytes.NewReader([]byte(e.InnerXML)))
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			start, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			if start.Name.Local == "text" {
				var t string
				if d.DecodeElement(&t, &start) == nil {
					se.Text = t
				}
				continue
			}
			if start.Name.Space == nsStanzaError || start.Name.Space == "" {
				se.Condition = start.Name.Local
			}
			_ = d.Skip()
		}
		break
	}
	return se
}
