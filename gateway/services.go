package gateway

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"strings"

	"mellium.im/xmpp/jid"
)

// cursorPattern bounds archive cursors (opaque server ids) to a safe form.
var cursorPattern = regexp.MustCompile(`^[A-Za-z0-9._:+/=-]{1,256}$`)

func xmlAttr(name, value string) xml.Attr {
	return xml.Attr{Name: xml.Name{Local: name}, Value: value}
}

// messageEnvelope builds a <message/> around payload elements.
func messageEnvelope(to jid.JID, typ, id string, payload ...xmlNode) xmlNode {
	m := elem("", "message", "to", to.String(), "type", typ, "id", id)
	m.Children = payload
	return m
}

func (s *Stream) sendNode(ctx context.Context, n xmlNode) error {
	raw, err := xml.Marshal(n)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	return s.send(ctx, raw)
}

// hint is an XEP-0334 processing hint.
func hint(name string) xmlNode { return elem("urn:xmpp:hints", name) }

// SendChatState sends a standalone XEP-0085 chat state (typing indicator).
// It is marked no-store so archives do not fill with typing noise.
func (s *Stream) SendChatState(ctx context.Context, to jid.JID, state string) error {
	if !chatStates[state] {
		return fmt.Errorf("%w: chat state must be active, composing, paused, inactive or gone", ErrInvalidInput)
	}
	return s.sendNode(ctx, messageEnvelope(to, "chat", newStanzaID(), elem(nsChatStates, state), hint("no-store")))
}

// SendMarker sends an XEP-0333 marker ("received" or "displayed") for
// message id, with optional extraParams (the seed's dialog_id).
func (s *Stream) SendMarker(ctx context.Context, to jid.JID, marker, id string, extra map[string]string) (string, error) {
	if marker != "received" && marker != "displayed" {
		return "", fmt.Errorf("%w: marker must be received or displayed", ErrInvalidInput)
	}
	if err := checkIDAndParams(id, extra); err != nil {
		return "", err
	}
	own := newStanzaID()
	payload := []xmlNode{elem(nsMarkers, marker, "id", id)}
	if n := extraParamsNode(extra, nil); n != nil {
		payload = append(payload, *n)
	}
	return own, s.sendNode(ctx, messageEnvelope(to, "chat", own, payload...))
}

// SendDelete asks the receiver to delete message id: the ConnectyCube
// <remove/> and the XEP-0424 <retract/>, so either kind of client acts.
func (s *Stream) SendDelete(ctx context.Context, to jid.JID, id string, extra map[string]string) (string, error) {
	if err := checkIDAndParams(id, extra); err != nil {
		return "", err
	}
	own := newStanzaID()
	payload := []xmlNode{elem(nsDelete, "remove", "id", id), elem(nsRetract, "retract", "id", id), hint("store")}
	if n := extraParamsNode(extra, nil); n != nil {
		payload = append(payload, *n)
	}
	return own, s.sendNode(ctx, messageEnvelope(to, "chat", own, payload...))
}

func checkIDAndParams(id string, extra map[string]string) error {
	if !stanzaIDPattern.MatchString(id) {
		return fmt.Errorf("%w: message id must be 1-128 characters of A-Z a-z 0-9 . _ : -", ErrInvalidInput)
	}
	m := OutgoingMessage{To: jid.MustParse("x@x"), ExtraParams: extra, Body: "x"}
	return m.prepare(false)
}

// Command is an x:oob service command.
type Command struct {
	Type, Action string
	// Payload is sent as JSON text.
	Payload json.RawMessage
}

var commandName = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// SendCommand sends an x:oob service command (<x xmlns='jabber:x:oob'>
// with type, action and a JSON payload, next to an empty body as the
// protocol's examples do) and returns the message id.
func (s *Stream) SendCommand(ctx context.Context, to jid.JID, cmd Command) (string, error) {
	if !commandName.MatchString(cmd.Type) || (cmd.Action != "" && !commandName.MatchString(cmd.Action)) {
		return "", fmt.Errorf("%w: command type and action must be 1-64 characters of A-Z a-z 0-9 _ . : -", ErrInvalidInput)
	}
	if len(cmd.Payload) > 0 && !json.Valid(cmd.Payload) {
		return "", fmt.Errorf("%w: payload is not valid JSON", ErrInvalidInput)
	}
	if err := checkText("payload", string(cmd.Payload)); err != nil {
		return "", err
	}
	x := elem(nsOOB, "x")
	for _, f := range [][2]string{{"type", cmd.Type}, {"action", cmd.Action}, {"payload", string(cmd.Payload)}} {
		if f[1] == "" && f[0] != "type" {
			continue
		}
		c := elem(nsOOB, f[0])
		c.Text = f[1]
		x.Children = append(x.Children, c)
	}
	id := newStanzaID()
	s.commands.add(id)
	return id, s.sendNode(ctx, messageEnvelope(to, "chat", id, elem("", "body"), x))
}

// VCard is a vcard-temp (XEP-0054) profile as JSON.
type VCard struct {
	FN       string     `json:"fn,omitempty" xml:"FN,omitempty"`
	N        *VCardName `json:"n,omitempty" xml:"N,omitempty"`
	Nickname string     `json:"nickname,omitempty" xml:"NICKNAME,omitempty"`
	Email    []string   `json:"email,omitempty" xml:"-"`
	Tel      []string   `json:"tel,omitempty" xml:"-"`
	URL      string     `json:"url,omitempty" xml:"URL,omitempty"`
	Org      string     `json:"org,omitempty" xml:"-"`
	Title    string     `json:"title,omitempty" xml:"TITLE,omitempty"`
	BDay     string     `json:"bday,omitempty" xml:"BDAY,omitempty"`
	Desc     string     `json:"desc,omitempty" xml:"DESC,omitempty"`
	// DescJSON is DESC parsed as JSON when it holds JSON (the "dynamic
	// buddies" configuration of the x:oob service protocol); output only.
	DescJSON json.RawMessage `json:"desc_json,omitempty" xml:"-" swaggertype:"object"`
	Photo    *VCardPhoto     `json:"photo,omitempty" xml:"PHOTO,omitempty"`
}

// VCardName is the structured name.
type VCardName struct {
	Family string `json:"family,omitempty" xml:"FAMILY,omitempty"`
	Given  string `json:"given,omitempty" xml:"GIVEN,omitempty"`
	Middle string `json:"middle,omitempty" xml:"MIDDLE,omitempty"`
}

// VCardPhoto is an inline avatar.
type VCardPhoto struct {
	Type   string `json:"type,omitempty" xml:"TYPE,omitempty"`
	BinVal string `json:"binval,omitempty" xml:"BINVAL,omitempty"`
}

type xmlVCard struct {
	XMLName xml.Name `xml:"vcard-temp vCard"`
	VCard
	Emails []struct {
		Internet *struct{} `xml:"INTERNET,omitempty"`
		UserID   string    `xml:"USERID"`
	} `xml:"EMAIL"`
	Tels []struct {
		Voice  *struct{} `xml:"VOICE,omitempty"`
		Number string    `xml:"NUMBER"`
	} `xml:"TEL"`
	OrgName *struct {
		Name string `xml:"ORGNAME"`
	} `xml:"ORG,omitempty"`
	// Note is where Prosody's vCard4 bridge (mod_vcard_legacy) returns DESC.
	Note string `xml:"NOTE,omitempty"`
}

// VCard fetches a vCard: of == zero for the user's own.
func (s *Stream) VCard(ctx context.Context, of jid.JID) (VCard, error) {
	to := ""
	if !of.Equal(jid.JID{}) {
		to = of.Bare().String()
	}
	res, err := s.request(ctx, "get", to, elem(nsVCard, "vCard"))
	if err != nil {
		return VCard{}, err
	}
	node := res.child(nsVCard, "vCard")
	if node == nil {
		return VCard{}, nil // RFC 6120 allows an empty result for "no vCard"
	}
	var x xmlVCard
	if err := xml.Unmarshal([]byte(node.xmlString()), &x); err != nil {
		return VCard{}, fmt.Errorf("%w: unreadable vCard: %v", ErrServerUnreachable, err)
	}
	v := x.VCard
	for _, e := range x.Emails {
		v.Email = append(v.Email, e.UserID)
	}
	for _, t := range x.Tels {
		v.Tel = append(v.Tel, t.Number)
	}
	if x.OrgName != nil {
		v.Org = x.OrgName.Name
	}
	if v.Desc == "" {
		v.Desc = x.Note
	}
	if d := strings.TrimSpace(v.Desc); d != "" && json.Valid([]byte(d)) {
		v.DescJSON = json.RawMessage(d)
	}
	return v, nil
}

// SetVCard publishes the user's own vCard.
func (s *Stream) SetVCard(ctx context.Context, v VCard) error {
	x := xmlVCard{VCard: v}
	x.DescJSON = nil
	fields := map[string]string{"fn": v.FN, "nickname": v.Nickname, "url": v.URL, "title": v.Title,
		"bday": v.BDay, "desc": v.Desc, "org": v.Org}
	if v.N != nil {
		maps.Copy(fields, map[string]string{"n.family": v.N.Family, "n.given": v.N.Given, "n.middle": v.N.Middle})
	}
	if v.Photo != nil {
		maps.Copy(fields, map[string]string{"photo.type": v.Photo.Type, "photo.binval": v.Photo.BinVal})
	}
	for i, e := range v.Email {
		fields[fmt.Sprintf("email[%d]", i)] = e
	}
	for i, t := range v.Tel {
		fields[fmt.Sprintf("tel[%d]", i)] = t
	}
	for name, val := range fields {
		if err := checkText(name, val); err != nil {
			return err
		}
	}
	for _, e := range v.Email {
		x.Emails = append(x.Emails, struct {
			Internet *struct{} `xml:"INTERNET,omitempty"`
			UserID   string    `xml:"USERID"`
		}{&struct{}{}, e})
	}
	for _, t := range v.Tel {
		x.Tels = append(x.Tels, struct {
			Voice  *struct{} `xml:"VOICE,omitempty"`
			Number string    `xml:"NUMBER"`
		}{&struct{}{}, t})
	}
	if v.Org != "" {
		x.OrgName = &struct {
			Name string `xml:"ORGNAME"`
		}{v.Org}
	}
	_, err := s.request(ctx, "set", "", x)
	return err
}

// parseOneElement decodes client-supplied XML that must be exactly one
// element: well formed, no text around it, no processing instructions or
// DTDs (entities are how XML bombs and external fetches start). It reports
// whether an element was found at all.
func parseOneElement(data, what string) (xmlNode, bool, error) {
	if len(data) > DefaultMaxStanzaBytes {
		return xmlNode{}, false, fmt.Errorf("%w: %s larger than %d bytes", ErrTooLarge, what, DefaultMaxStanzaBytes)
	}
	dec := xml.NewDecoder(strings.NewReader(data))
	var root xmlNode
	seen := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return root, seen, nil
		}
		if err != nil {
			return xmlNode{}, false, fmt.Errorf("%w: %s is not well-formed XML: %v", ErrInvalidInput, what, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if seen {
				return xmlNode{}, false, fmt.Errorf("%w: exactly one %s expected", ErrInvalidInput, what)
			}
			if err := dec.DecodeElement(&root, &t); err != nil {
				return xmlNode{}, false, fmt.Errorf("%w: %s is not well-formed XML: %v", ErrInvalidInput, what, err)
			}
			seen = true
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return xmlNode{}, false, fmt.Errorf("%w: text outside the %s", ErrInvalidInput, what)
			}
		case xml.ProcInst, xml.Directive:
			return xmlNode{}, false, fmt.Errorf("%w: processing instructions and DTDs are not allowed", ErrInvalidInput)
		}
	}
}

// RawStanza is a client-supplied stanza that passed ParseRawStanza.
type RawStanza struct{ node xmlNode }

// ParseRawStanza validates one client-supplied stanza for SendRaw: well
// formed, exactly one top-level message, presence or iq in the client
// namespace, and no from attribute (the server stamps the sender; a client
// must not pretend otherwise).
func ParseRawStanza(data []byte) (RawStanza, error) {
	root, seen, err := parseOneElement(string(data), "stanza")
	if err != nil {
		return RawStanza{}, err
	}
	switch {
	case !seen:
		return RawStanza{}, fmt.Errorf("%w: no stanza", ErrInvalidInput)
	case root.XMLName.Space != "" && root.XMLName.Space != nsClient:
		return RawStanza{}, fmt.Errorf("%w: stanza must be in the jabber:client namespace", ErrInvalidInput)
	case root.XMLName.Local != "message" && root.XMLName.Local != "presence" && root.XMLName.Local != "iq":
		return RawStanza{}, fmt.Errorf("%w: stanza must be message, presence or iq", ErrInvalidInput)
	}
	if !root.wellNamed() {
		return RawStanza{}, fmt.Errorf("%w: element or attribute names are not namespace-well-formed", ErrInvalidInput)
	}
	for _, a := range root.Attrs {
		switch a.Name.Local {
		case "from":
			return RawStanza{}, fmt.Errorf("%w: from is set by the server; leave it out", ErrInvalidInput)
		case "to":
			// RFC 6120 §8.1.1: the addressee is a JID; the server would
			// answer a malformed one with an error the caller never sees.
			if _, err := jid.Parse(a.Value); err != nil {
				return RawStanza{}, fmt.Errorf("%w: to is not a valid JID: %v", ErrInvalidInput, err)
			}
		}
	}
	root.XMLName.Space = "" // inherit the stream's jabber:client
	return RawStanza{node: root}, nil
}

// SendRaw sends a stanza validated by ParseRawStanza, re-encoded by the
// encoder (never the client's bytes).
func (s *Stream) SendRaw(ctx context.Context, st RawStanza) error {
	return s.sendNode(ctx, st.node)
}
