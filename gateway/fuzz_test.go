package gateway

// Native fuzz targets for every JSON→XML path (messages with extraParams
// and attachments, presence, IQ replies, client raw stanzas), the XML→JSON
// payload extraction, stanza errors and JID parsing.
// Each target asserts properties of the output, not just "no panic"; the
// seeds below and the files under testdata/fuzz/ run as ordinary tests with
// plain `go test`. scripts/fuzz.sh fuzzes them all for a bounded time.

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// Interesting strings shared by the seeds.
var (
	fuzzBig       = strings.Repeat("x", 64<<10)
	fuzzBigMixed  = strings.Repeat("<a&'\"\r\n😀", 64<<10/16)
	fuzzLongID    = strings.Repeat("i", 128)
	fuzzTextSeeds = []string{
		"", "hi", `</body><evil xmlns="x"/><body>`, `]]><evil/>`, `<![CDATA[<x/>]]>`,
		`say "hi" & 'bye'`, "a\r\nb\rc\n", "\r", "\r\n", "\t tab", "nul\x00byte", "bell\x07", "\x1b[31mred",
		"bad\xffutf8", "\xc3", "\ufffe", "\uffff", "\ufffd", "\ud7ff\ue000", "😀 üñí 中文", "\u2028\u2029",
		"&amp;", "&#0;", "&#x1F600;", fuzzBig, fuzzBigMixed,
	}
	fuzzJIDSeeds = []string{
		"bob@localhost", "bob@localhost/res", "Bob@LocalHost/Res", "bob@localhost/a/b@c",
		"user@münchen.example", "user@xn--mnchen-3ya.example", "juliet@example.com/ balcony ",
		`d\27artagnan@example.com`, `\40at\20sign@example.com`, "localhost", "localhost/r",
		"bob@local host", "@localhost", "bob@", "a@b@c", "bob@[::1]", "bob@127.0.0.1",
		"ＢＯＢ@ｅｘａｍｐｌｅ.com", "bob@localhost.", "bob@localhost/😀", "\u0130@example.com",
		"bob@localhost/" + strings.Repeat("r", 1100), strings.Repeat("l", 1024) + "@localhost",
		"bob@localhost/\x00", "bob@localhost/\ufffe", "bob@localhost/<evil/>", `bob@localhost/"'&`,
	}
)

// fuzzRepresentable reports whether s can appear in a parsed XML document:
// valid UTF-8 and only XML 1.0 Chars.
func fuzzRepresentable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !isXMLChar(r) {
			return false
		}
	}
	return true
}

// fuzzWire is encoder output; it prints clipped so a failing 64 KiB input
// does not flood the log.
type fuzzWire []byte

func (w fuzzWire) String() string {
	const max = 512
	if len(w) <= max {
		return string(w)
	}
	return fmt.Sprintf("%s…(%d bytes)", w[:max], len(w))
}

// fuzzNode is one element of a parsed document: its resolved name, its
// attributes (xmlns declarations excluded), its direct character data and
// the names of its element children in order.
type fuzzNode struct {
	Name     xml.Name
	Attr     map[string]string
	Text     string
	Children []*fuzzNode
}

// fuzzParseStrict walks every token of raw with a strict encoding/xml decoder
// and returns the single root element. It fails on anything but exactly one
// element and whitespace-free markup: no prolog, comment, PI, directive,
// prefixed name or prefix declaration, no xmlns other than the element's
// own namespace, no duplicate attribute and no text outside the root.
func fuzzParseStrict(t *testing.T, raw fuzzWire) *fuzzNode {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var root *fuzzNode
	var stack []*fuzzNode
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("output is not well-formed XML: %v\n%q", err, raw)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name == (xml.Name{Local: "xmlns"}) {
				// encoding/xml leaves an element named "xmlns" out of
				// namespace processing; resolve it as a namespace-aware
				// parser would. (Whether extraParams should accept names
				// starting with "xml", reserved by XML 1.0 §2.3, is an
				// open question for the maintainers.)
				for _, a := range tok.Attr {
					if a.Name == (xml.Name{Local: "xmlns"}) {
						tok.Name.Space = a.Value
					}
				}
			}
			n := &fuzzNode{Name: tok.Name, Attr: map[string]string{}}
			for _, a := range tok.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					if a.Value != tok.Name.Space {
						t.Fatalf("<%s> declares xmlns=%q but is in %q\n%q", tok.Name.Local, a.Value, tok.Name.Space, raw)
					}
					continue
				case a.Name.Space != "":
					t.Fatalf("<%s> has a prefixed attribute or prefix declaration %v\n%q", tok.Name.Local, a.Name, raw)
				}
				if _, dup := n.Attr[a.Name.Local]; dup {
					t.Fatalf("<%s> has attribute %q twice\n%q", tok.Name.Local, a.Name.Local, raw)
				}
				n.Attr[a.Name.Local] = a.Value
			}
			if strings.Contains(tok.Name.Local, ":") {
				t.Fatalf("element name %q carries a prefix\n%q", tok.Name.Local, raw)
			}
			if len(stack) == 0 {
				if root != nil {
					t.Fatalf("more than one top-level element\n%q", raw)
				}
				root = n
			} else {
				parent := stack[len(stack)-1]
				parent.Children = append(parent.Children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				t.Fatalf("character data %q outside the root element\n%q", tok, raw)
			}
			stack[len(stack)-1].Text += string(tok)
		default:
			t.Fatalf("unexpected token %T %v\n%q", tok, tok, raw)
		}
	}
	if root == nil {
		t.Fatalf("no element in output %q", raw)
	}
	return root
}

// fuzzChildren checks that n has no text and only children named in allowed
// (local name → namespace), each at most once and, if leaf, without element
// children of their own; it returns them by local name.
func fuzzChildren(t *testing.T, raw fuzzWire, n *fuzzNode, leaf bool, allowed map[string]string) map[string]*fuzzNode {
	t.Helper()
	if n.Text != "" {
		t.Fatalf("<%s> has direct character data %q\n%q", n.Name.Local, n.Text, raw)
	}
	got := map[string]*fuzzNode{}
	for _, c := range n.Children {
		space, ok := allowed[c.Name.Local]
		if !ok || c.Name.Space != space {
			t.Fatalf("unexpected element {%s}%s inside <%s>\n%q", c.Name.Space, c.Name.Local, n.Name.Local, raw)
		}
		if _, dup := got[c.Name.Local]; dup {
			t.Fatalf("<%s> appears twice\n%q", c.Name.Local, raw)
		}
		if leaf && len(c.Children) > 0 {
			t.Fatalf("<%s> has child element <%s>\n%q", c.Name.Local, c.Children[0].Name.Local, raw)
		}
		got[c.Name.Local] = c
	}
	return got
}

func fuzzRequireAttrs(t *testing.T, raw fuzzWire, n *fuzzNode, want map[string]string) {
	t.Helper()
	if len(n.Attr) != len(want) {
		t.Fatalf("<%s> attributes %v, want %v\n%q", n.Name.Local, n.Attr, want, raw)
	}
	for k, v := range want {
		if got, ok := n.Attr[k]; !ok || got != v {
			t.Fatalf("<%s> attribute %s = %q (present %v), want %q\n%q", n.Name.Local, k, got, ok, v, raw)
		}
	}
}

// fuzzRequireLeaf checks that element name is present iff want != "" and that
// its text is want byte for byte.
func fuzzRequireLeaf(t *testing.T, raw fuzzWire, children map[string]*fuzzNode, name, want string) {
	t.Helper()
	c, ok := children[name]
	if ok != (want != "") {
		t.Fatalf("<%s> present=%v, but value is %q\n%q", name, ok, want, raw)
	}
	if ok && c.Text != want {
		t.Fatalf("<%s> decodes to %q, want %q\n%q", name, c.Text, want, raw)
	}
}

func FuzzEncodeMessage(f *testing.F) {
	for _, s := range fuzzTextSeeds {
		f.Add("bob@localhost", "chat", "m-1", s, "", "", "")
		f.Add("bob@localhost/res", "normal", "", "b", s, s, "")
	}
	for _, to := range fuzzJIDSeeds {
		f.Add(to, "", "", "hi", "", "", "")
	}
	for _, typ := range []string{"", "chat", "normal", "headline", "groupchat", "error", "Chat", "chat\x00"} {
		f.Add("bob@localhost", typ, "", "hi", "", "", "")
	}
	for _, id := range []string{"", "a", "a b", "q'1", `"><evil/>`, "x:y.z_-", fuzzLongID, fuzzLongID + "i", "id\n", "ü"} {
		f.Add("bob@localhost", "chat", id, "hi", "", "", "")
	}
	for _, data := range []string{`{"k":"<v>"}`, `"</json><evil/>"`, "1", "null", `[1,"\u0000"]`, " \r\n{}\t",
		`{"a":"\ud83d\ude00"}`, `{"bad":"` + "\xff" + `"}`, `{"nc":"` + "\ufffe" + `"}`, `{`, `{}}`, `"` + fuzzBig + `"`,
		"\"\x01\"", `{"]]>":"<![CDATA["}`} {
		f.Add("bob@localhost", "headline", "", "", "", "", data)
	}
	f.Fuzz(func(t *testing.T, to, typ, id, body, subject, thread, data string) {
		addr, err := ParseAddress(to)
		if err != nil {
			return
		}
		m := OutgoingMessage{To: addr, Type: typ, ID: id, Body: body, Subject: subject, Thread: thread}
		if data != "" {
			m.Data = json.RawMessage(data)
		}
		if err := m.prepare(false); err != nil {
			if !errors.Is(err, ErrInvalidInput) && !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("prepare error %v wraps neither ErrInvalidInput nor ErrInvalidAddress", err)
			}
			return
		}
		// prepare's own contract, independent of the encoding.
		if !sendableMessageTypes[m.Type] || (typ != "" && m.Type != typ) {
			t.Fatalf("prepared type %q from %q", m.Type, typ)
		}
		if !stanzaIDPattern.MatchString(m.ID) || (id != "" && m.ID != id) {
			t.Fatalf("prepared id %q from %q", m.ID, id)
		}
		for _, s := range []string{m.Body, m.Subject, m.Thread} {
			if strings.Contains(s, "\r") {
				t.Fatalf("prepared text %q still contains CR", s)
			}
		}
		if m.Body != normalizeNewlines(body) || m.Subject != normalizeNewlines(subject) || m.Thread != normalizeNewlines(thread) {
			t.Fatalf("prepare changed text beyond newline normalisation")
		}

		b, err := encodeMessage(m)
		if err != nil {
			t.Fatalf("encodeMessage of a prepared message failed: %v", err)
		}
		raw := fuzzWire(b)
		root := fuzzParseStrict(t, raw)
		if root.Name != (xml.Name{Local: "message"}) {
			t.Fatalf("root is {%s}%s, want message without namespace\n%q", root.Name.Space, root.Name.Local, raw)
		}
		fuzzRequireAttrs(t, raw, root, map[string]string{"to": m.To.String(), "type": m.Type, "id": m.ID})
		children := fuzzChildren(t, raw, root, true, map[string]string{
			"body": "", "subject": "", "thread": "", "origin-id": nsOriginID, "json": nsJSON})
		fuzzRequireLeaf(t, raw, children, "body", m.Body)
		fuzzRequireLeaf(t, raw, children, "subject", m.Subject)
		fuzzRequireLeaf(t, raw, children, "thread", m.Thread)
		fuzzRequireLeaf(t, raw, children, "json", data)
		origin, ok := children["origin-id"]
		if !ok {
			t.Fatalf("no origin-id\n%q", raw)
		}
		fuzzRequireAttrs(t, raw, origin, map[string]string{"id": m.ID})
		if origin.Text != "" {
			t.Fatalf("origin-id has text %q\n%q", origin.Text, raw)
		}
		for _, c := range children {
			for _, a := range []string{"to", "type", "id"} {
				if _, ok := c.Attr[a]; ok && c.Name.Local != "origin-id" {
					t.Fatalf("<%s> carries attribute %s\n%q", c.Name.Local, a, raw)
				}
			}
			if c.Name.Local != "origin-id" && len(c.Attr) != 0 {
				t.Fatalf("<%s> has attributes %v\n%q", c.Name.Local, c.Attr, raw)
			}
		}
		// What a receiving gateway reads back is what was sent.
		back := readParts(fuzzInbound(t, raw), "")
		if back.body != m.Body || back.hasBody != (m.Body != "") || back.subject != m.Subject || back.thread != m.Thread ||
			back.originID != m.ID || string(back.data) != data || len(back.extensions) != 0 {
			t.Fatalf("read back %+v\n%q", back, raw)
		}
	})
}

// FuzzEncodeExtraParams covers the other JSON→XML paths of a message: the
// ConnectyCube extraParams map, whose keys become element names, and an
// attachment, whose keys become attribute names.
func FuzzEncodeExtraParams(f *testing.F) {
	for _, k := range []string{"moduleIdentifier", "_a", "a.b-c", "A9", "xmlns", "xml", "XMLfoo", "a:b", "a b", "1a", "",
		"attachment", "<evil/>", "é", strings.Repeat("k", 64), strings.Repeat("k", 65)} {
		f.Add(k, "SystemNotifications", "", "", "url", "https://x/y?a=1&b=2", "")
	}
	for _, v := range fuzzTextSeeds {
		f.Add("moduleIdentifier", v, "other", v, "name", v, "")
	}
	for _, a := range []string{"type", "id", "url", "data", "size", "content-type", "name", "xmlns", "from", "bogus", ""} {
		f.Add("", "", "", "", a, `"><evil/>`, "hi")
	}
	f.Add("a", "1", "a", "2", "", "", "hi")
	f.Add("b", "", "a", "\r", "", "", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, attKey, attVal, body string) {
		params := map[string]string{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if kv[0] != "" || kv[1] != "" {
				params[kv[0]] = kv[1]
			}
		}
		var attachments []map[string]string
		if attKey != "" || attVal != "" {
			attachments = []map[string]string{{attKey: attVal}}
		}
		m := OutgoingMessage{To: jid.MustParse("bob@localhost"), Type: "headline", Body: body,
			ExtraParams: params, Attachments: attachments}
		if err := m.prepare(false); err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("prepare error %v does not wrap ErrInvalidInput", err)
			}
			return
		}
		want := map[string]string{}
		for k, v := range params {
			if !validParamName(k) || k == "attachment" || !fuzzRepresentable(v) {
				t.Fatalf("prepare accepted extra param %q = %q", k, v)
			}
			want[k] = normalizeNewlines(v)
		}
		if len(want) == 0 {
			want = nil
		}
		for _, a := range attachments {
			for k, v := range a {
				if !attachmentAttrs[k] || !fuzzRepresentable(v) {
					t.Fatalf("prepare accepted attachment attribute %q = %q", k, v)
				}
			}
		}
		b, err := encodeMessage(m)
		if err != nil {
			t.Fatalf("encodeMessage of a prepared message failed: %v", err)
		}
		raw := fuzzWire(b)
		root := fuzzParseStrict(t, raw)
		children := fuzzChildren(t, raw, root, false, map[string]string{
			"body": "", "origin-id": nsOriginID, "extraParams": nsClient})
		fuzzRequireLeaf(t, raw, children, "body", m.Body)
		ep, ok := children["extraParams"]
		if !ok || len(ep.Attr) != 0 {
			t.Fatalf("no plain <extraParams/>\n%q", raw)
		}
		allowed := map[string]string{}
		for k := range want {
			allowed[k] = nsClient
		}
		if len(attachments) > 0 {
			allowed["attachment"] = nsClient
		}
		got := fuzzChildren(t, raw, ep, true, allowed)
		if len(got) != len(want)+len(attachments) {
			t.Fatalf("extraParams has %d children, want %d\n%q", len(got), len(want)+len(attachments), raw)
		}
		for k, v := range want {
			if got[k].Text != v || len(got[k].Attr) != 0 {
				t.Fatalf("<%s> = %q %v, want %q\n%q", k, got[k].Text, got[k].Attr, v, raw)
			}
		}
		if len(attachments) > 0 {
			fuzzRequireAttrs(t, raw, got["attachment"], attachments[0])
		}
		// The receiving side reads back exactly what was sent.
		back := readParts(fuzzInbound(t, raw), "")
		if !maps.Equal(back.extra, want) {
			t.Fatalf("extraParams read back %q, want %q\n%q", back.extra, want, raw)
		}
		if len(back.attachments) != len(attachments) || len(attachments) > 0 && !maps.Equal(back.attachments[0], attachments[0]) {
			t.Fatalf("attachments read back %q, want %q\n%q", back.attachments, attachments, raw)
		}
	})
}

// fuzzInbound decodes one top-level element the way xmppConn.Read does.
func fuzzInbound(t *testing.T, raw fuzzWire) xmlNode {
	t.Helper()
	n, err := fuzzDecodeNode(raw)
	if err != nil {
		t.Fatalf("inbound decode: %v\n%q", err, raw)
	}
	return n
}

func fuzzDecodeNode(raw []byte) (xmlNode, error) {
	return nextNode(xml.NewDecoder(bytes.NewReader(raw)))
}

func FuzzEncodePresence(f *testing.F) {
	for _, s := range fuzzTextSeeds {
		f.Add("", "", "away", s, 5)
	}
	for _, to := range fuzzJIDSeeds {
		f.Add(to, "subscribe", "", "", 0)
		f.Add(to, "", "", "hi", 1)
	}
	for _, typ := range []string{"", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed",
		"probe", "error", "available", "Unavailable", "subscri", "unsubscri"} {
		f.Add("", typ, "", "", 0)
		f.Add("bob@localhost", typ, "", "s", 0)
	}
	for _, show := range []string{"", "away", "chat", "dnd", "xa", "available", "offline", "busy", "AWAY", "away\x00"} {
		f.Add("", "", show, "", 0)
	}
	for _, prio := range []int{0, -1, 1, -128, 127, -129, 128, 1 << 31, -1 << 63, 1<<63 - 1} {
		f.Add("", "", "", "", prio)
		f.Add("", "unavailable", "", "", prio)
	}
	f.Fuzz(func(t *testing.T, to, typ, show, status string, priority int) {
		var addr jid.JID
		if to != "" {
			var err error
			if addr, err = ParseAddress(to); err != nil {
				return
			}
		}
		p := OutgoingPresence{To: addr, Type: typ, Show: show, Status: status, Priority: priority}
		if err := p.Validate(); err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("Validate error %v does not wrap ErrInvalidInput", err)
			}
			return
		}
		if !presenceTypes[typ] || !presenceShows[show] || priority < -128 || priority > 127 || !fuzzRepresentable(status) {
			t.Fatalf("Validate accepted %+v", p)
		}
		b, err := encodePresence(p)
		if err != nil {
			t.Fatalf("encodePresence of a valid presence failed: %v", err)
		}
		raw := fuzzWire(b)
		root := fuzzParseStrict(t, raw)
		if root.Name != (xml.Name{Local: "presence"}) {
			t.Fatalf("root is {%s}%s, want presence without namespace\n%q", root.Name.Space, root.Name.Local, raw)
		}
		wantAttr := map[string]string{}
		if to != "" {
			wantAttr["to"] = addr.String()
		}
		if typ != "" {
			wantAttr["type"] = typ
		}
		fuzzRequireAttrs(t, raw, root, wantAttr)
		children := fuzzChildren(t, raw, root, true, map[string]string{"show": "", "status": "", "priority": ""})
		for _, c := range children {
			if len(c.Attr) != 0 {
				t.Fatalf("<%s> has attributes %v\n%q", c.Name.Local, c.Attr, raw)
			}
		}
		fuzzRequireLeaf(t, raw, children, "show", show)
		fuzzRequireLeaf(t, raw, children, "status", normalizeNewlines(status))
		wantPrio := ""
		if typ == "" {
			wantPrio = strconv.Itoa(priority)
		}
		fuzzRequireLeaf(t, raw, children, "priority", wantPrio)
	})
}

// The conditions encodeIQReply is called with (stream.go answerIQ).
var fuzzIQConditions = []string{"", "service-unavailable"}

func FuzzEncodeIQReply(f *testing.F) {
	for _, cond := range fuzzIQConditions {
		for _, s := range append([]string{"localhost", "x@y/z", "q'1", `"><evil/>`, "a\r\nb", "\t"}, fuzzJIDSeeds...) {
			f.Add(s, "r1", cond)
			f.Add("localhost", s, cond)
		}
		f.Add("", "", cond)
		f.Add(fuzzBig, fuzzBigMixed, cond)
	}
	f.Fuzz(func(t *testing.T, to, id, condition string) {
		// answerIQ passes one of two constant conditions; any other fuzzed
		// value selects the error reply so both shapes get fuzzed.
		if condition != "" {
			condition = fuzzIQConditions[1]
		}
		// to and id come from attributes go-xmpp parsed, so they can only
		// hold what XML can carry.
		if !fuzzRepresentable(to) || !fuzzRepresentable(id) {
			return
		}
		b, err := encodeIQReply(to, id, condition)
		if err != nil {
			t.Fatalf("encodeIQReply: %v", err)
		}
		raw := fuzzWire(b)
		root := fuzzParseStrict(t, raw)
		if root.Name != (xml.Name{Local: "iq"}) {
			t.Fatalf("root is {%s}%s, want iq without namespace\n%q", root.Name.Space, root.Name.Local, raw)
		}
		wantAttr := map[string]string{"id": id, "type": "result"}
		if condition != "" {
			wantAttr["type"] = "error"
		}
		if to != "" {
			wantAttr["to"] = to
		}
		fuzzRequireAttrs(t, raw, root, wantAttr)
		if condition == "" {
			if len(root.Children) != 0 || root.Text != "" {
				t.Fatalf("result iq has content\n%q", raw)
			}
			return
		}
		children := fuzzChildren(t, raw, root, false, map[string]string{"error": ""})
		e, ok := children["error"]
		if !ok {
			t.Fatalf("error iq without <error/>\n%q", raw)
		}
		fuzzRequireAttrs(t, raw, e, map[string]string{"type": "cancel"})
		cond := fuzzChildren(t, raw, e, true, map[string]string{condition: nsStanzaError})
		c, ok := cond[condition]
		if !ok || len(cond) != 1 || len(c.Attr) != 0 || c.Text != "" {
			t.Fatalf("<error/> does not hold exactly an empty <%s/>\n%q", condition, raw)
		}
		// The gateway reads its own error back as sent.
		iq := fuzzInbound(t, raw)
		if se := stanzaError(iq.child("", "error")); se != (StanzaError{Type: "cancel", Condition: condition}) {
			t.Fatalf("stanzaError of own reply = %+v", se)
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range fuzzJIDSeeds {
		f.Add(s)
	}
	f.Add("")
	f.Add(fuzzBig)
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseAddress(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("ParseAddress(%q) error %v does not wrap ErrInvalidAddress", s, err)
			}
			return
		}
		if j.Domainpart() == "" {
			t.Fatalf("ParseAddress(%q) = %q with an empty domainpart", s, j)
		}
		str := j.String()
		j2, err := ParseAddress(str)
		if err != nil {
			t.Fatalf("ParseAddress(%q) = %q, which does not parse again: %v", s, str, err)
		}
		if !j2.Equal(j) || j2.String() != str {
			t.Fatalf("normalisation not idempotent: %q → %q → %q", s, str, j2)
		}
		if j.Localpart() != j2.Localpart() || j.Domainpart() != j2.Domainpart() || j.Resourcepart() != j2.Resourcepart() {
			t.Fatalf("parts changed on reparse: %q vs %q", str, j2)
		}
		// What the encoders put into to="..." must survive XML untouched.
		if !fuzzRepresentable(str) {
			t.Fatalf("ParseAddress(%q) = %q, which XML cannot carry", s, str)
		}
	})
}

func FuzzUserJID(f *testing.F) {
	for _, s := range []string{"alice", "Alice", "ALICE", "a@b", "a b", "a/b", "", "münchen", "ＡＬＩＣＥ", "\u0130",
		`d\27artagnan`, "alice\x00", "alice\ufffe", "😀", "a'b\"c&d<e>", strings.Repeat("x", 1023),
		strings.Repeat("x", 1024), strings.Repeat("x", 1100), "\u212b", "\u00c5", "bad\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, username string) {
		j, err := UserJID(username, "localhost")
		if err != nil {
			if !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("UserJID(%q) error %v does not wrap ErrInvalidAddress", username, err)
			}
			return
		}
		if j.Domainpart() != "localhost" || j.Resourcepart() != "" || j.Localpart() == "" {
			t.Fatalf("UserJID(%q) = %q (local %q, domain %q, resource %q)", username, j,
				j.Localpart(), j.Domainpart(), j.Resourcepart())
		}
		again, err := UserJID(j.Localpart(), "localhost")
		if err != nil {
			t.Fatalf("UserJID(%q) = %q, but its localpart is rejected: %v", username, j, err)
		}
		if !again.Equal(j) || again.String() != j.String() {
			t.Fatalf("UserJID not idempotent: %q → %q → %q", username, j, again)
		}
		// A user JID is also a valid address naming the same account.
		p, err := ParseAddress(j.String())
		if err != nil || !p.Equal(j) {
			t.Fatalf("ParseAddress(%q) = %q, %v", j, p, err)
		}
	})
}

// FuzzPayloadData fuzzes the XML→JSON direction of message data: the
// XEP-0335 container and the Openfire-Chat Jive property, as a received
// message is decoded (xmppConn.Read) and read (readParts).
func FuzzPayloadData(f *testing.F) {
	for _, s := range []string{`{&#34;a&#34;:[1,2]}`, `{"k":true}`, `not "json"`, "", " ", "<x/>", "<x>1</x>",
		"&lt;", "&bogus;", "<![CDATA[{\"a\":1}]]>", "<!-- c -->1", "<?pi x?>2", "1<x>2</x>3", "\"\xff\"", "\xff",
		"&#xD;{}", "\r\n[]\r", "</json>", "<a><b></a>", "null", "\"\\ud800\"", `"\u0000"`, "1e999999", "-0",
		"\ufffe", "&#xFFFE;", "&#0;", "😀", fuzzBig, `"` + fuzzBig + `"`,
		"</value></property><property><name>data</name><value>{}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, inner string) {
		// jsonValue itself: empty → nil, JSON → unchanged, else a JSON string.
		got := jsonValue(inner)
		switch {
		case inner == "":
			if got != nil {
				t.Fatalf("jsonValue(\"\") = %q", got)
			}
		case json.Valid([]byte(inner)):
			if string(got) != inner {
				t.Fatalf("jsonValue(%q) = %q, want it unchanged", inner, got)
			}
		default:
			var back string
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("jsonValue(%q) = %q, not a JSON string: %v", inner, got, err)
			}
			if utf8.ValidString(inner) && back != inner {
				t.Fatalf("jsonValue(%q) = %q, which reads back as %q", inner, got, back)
			}
		}
		// Received messages carrying inner in either container.
		docs := map[string]string{
			"json": `<message xmlns="jabber:client"><json xmlns="urn:xmpp:json:0">` + inner + `</json></message>`,
			"jive": `<message xmlns="jabber:client"><properties xmlns="` + nsJiveProps + `"><property><name>data</name><value>` +
				inner + `</value></property></properties></message>`,
		}
		for kind, doc := range docs {
			n, err := fuzzDecodeNode([]byte(doc))
			if err != nil {
				continue // not well-formed: a server never delivers it
			}
			data := readParts(n, "").data
			if data == nil {
				continue
			}
			if !json.Valid(data) || !utf8.Valid(data) {
				t.Fatalf("%s: %q reads as data %q, not valid UTF-8 JSON", kind, inner, data)
			}
			if _, err := json.Marshal(MessageEvent{Data: data}); err != nil {
				t.Fatalf("%s: event with data %q does not marshal: %v", kind, data, err)
			}
		}
		// Round trip: JSON escaped the way encodeMessage escapes it reads back
		// unchanged from both containers.
		if json.Valid([]byte(inner)) && fuzzRepresentable(inner) {
			var esc bytes.Buffer
			if err := xml.EscapeText(&esc, []byte(inner)); err != nil {
				t.Fatal(err)
			}
			for kind, doc := range map[string]string{
				"json": `<message><json xmlns="urn:xmpp:json:0">` + esc.String() + `</json></message>`,
				"jive": `<message><properties xmlns="` + nsJiveProps + `"><property><name>data</name><value>` +
					esc.String() + `</value></property></properties></message>`,
			} {
				if got := readParts(fuzzInbound(t, fuzzWire(doc)), "").data; string(got) != inner {
					t.Fatalf("%s: escaped JSON %q reads back as %q", kind, inner, got)
				}
			}
		}
	})
}

// FuzzStanzaError fuzzes the reading of a received <error/> element.
func FuzzStanzaError(f *testing.F) {
	for _, s := range []string{"", `<resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">full</text>`,
		"<item-not-found/>", "<text>only text</text>", "<text><b>x</b></text>", `<x:y xmlns:x="urn:ietf:params:xml:ns:xmpp-stanzas"/>`,
		`<a xmlns=""/>`, "<a:/>", "<:a/>", "<a:b/>", "text only", "<", "<a>", "</a>", "<a><b/></a>", `<a xmlns="urn:other"/>`,
		`<x: xmlns:x="urn:ietf:params:xml:ns:xmpp-stanzas"/>`, `<:x xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>`,
		"\xff", "<\xff/>", "<a\x00/>", fuzzBig, strings.Repeat("<a>", 10000)} {
		f.Add(s)
	}
	if se := stanzaError(nil); se.Type == "" || se.Condition == "" {
		f.Fatalf("stanzaError(nil) = %+v", se)
	}
	f.Fuzz(func(t *testing.T, inner string) {
		for _, typ := range []string{"", "wait"} {
			doc := `<error>` + inner + `</error>`
			if typ != "" {
				doc = `<error type="` + typ + `">` + inner + `</error>`
			}
			n, err := fuzzDecodeNode([]byte(doc))
			if err != nil {
				continue // not well-formed: a server never delivers it
			}
			se := stanzaError(&n)
			if se.Type == "" || se.Condition == "" {
				t.Fatalf("stanzaError(%q) = %+v with an empty field", doc, se)
			}
			if typ != "" && se.Type != typ {
				t.Fatalf("type attribute %q read as %q", typ, se.Type)
			}
			want := "undefined-condition"
			for _, c := range n.Children {
				if c.XMLName.Space == nsStanzaError && c.XMLName.Local != "text" {
					want = c.XMLName.Local
				}
			}
			if se.Condition != want {
				t.Fatalf("stanzaError(%q).Condition = %q, want %q", doc, se.Condition, want)
			}
			if _, err := json.Marshal(ErrorEvent{Error: se}); err != nil {
				t.Fatalf("error event does not marshal: %v", err)
			}
		}
	})
}

// FuzzParseRawStanza fuzzes the client-XML path (SendRaw): whatever
// ParseRawStanza accepts is re-encoded by sendNode, and the server must get
// one stanza of the same kind, without from, that means what the client
// sent.
func FuzzParseRawStanza(f *testing.F) {
	for _, s := range []string{
		`<message to="bob@localhost" type="chat"><body>hi</body></message>`,
		`<message xmlns="jabber:client" to="bob@localhost"><body>a &amp; b</body><x xmlns="urn:x" a="1"/></message>`,
		`<presence/>`, `<iq type="get" id="1"><ping xmlns="urn:xmpp:ping"/></iq>`,
		`<message from="admin@localhost"><body>spoof</body></message>`,
		`<message xmlns:a="jabber:client" a:from="admin@localhost"/>`,
		`<message xmlns="jabber:server"/>`, `<stream:stream/>`, `<message/><message/>`, `<message/>text`,
		`<?xml version="1.0"?><message/>`, `<!DOCTYPE x [<!ENTITY a "b">]><message/>`, `<message><!-- c --></message>`,
		`<message><body><![CDATA[</body><evil/>]]></body></message>`, `<message><a:b/></message>`,
		`<message xml:lang="en"><body xml:lang="de">x</body></message>`,
		`<message><x xmlns:p="urn:p" p:a="1" a="2"/></message>`,
		"<message>\n  <body>x</body>\n</message>", `<message><body>a<b/></body></message>`,
		`<message><body>&#xD;&#xA;&#x9;</body></message>`,
		`<message to="&quot;&lt;&gt;&apos;"/>`, `<iq><query xmlns="jabber:iq:roster"><item jid="x@y"/></query></iq>`,
		"<message>\xff</message>", "<message>\x00</message>", "", " ", "<", "<message>",
		`<message><body>` + strings.Repeat("x", 64<<10) + `</body></message>`,
		strings.Repeat("<a>", 1000) + strings.Repeat("</a>", 1000),
	} {
		f.Add([]byte(s))
	}
	// Failing inputs found so far are kept in testdata/fuzz/FuzzParseRawStanza.
	f.Fuzz(func(t *testing.T, data []byte) {
		parsed, err := ParseRawStanza(data)
		n := parsed.node
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("ParseRawStanza error %v does not wrap ErrInvalidInput", err)
			}
			return
		}
		fuzzCheckRawStanza(t, n, "parsed")
		b, err := xml.Marshal(n)
		if err != nil {
			return // sendNode reports ErrInvalidInput: refused, not sent
		}
		raw := fuzzWire(b)
		// The server sees exactly one element, the stanza, with no xmlns of
		// its own (it inherits jabber:client) and no from.
		d := xml.NewDecoder(bytes.NewReader(b))
		depth, roots := 0, 0
		for {
			tok, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("re-encoded stanza is not well-formed: %v\n%q", err, raw)
			}
			switch tok := tok.(type) {
			case xml.StartElement:
				if depth == 0 {
					roots++
					for _, a := range tok.Attr {
						if a.Name == (xml.Name{Local: "xmlns"}) || a.Name.Local == "from" {
							t.Fatalf("re-encoded stanza carries %v=%q\n%q", a.Name, a.Value, raw)
						}
					}
				}
				depth++
			case xml.EndElement:
				depth--
			case xml.CharData:
				if depth == 0 {
					t.Fatalf("text outside the stanza\n%q", raw)
				}
			default:
				if depth == 0 {
					t.Fatalf("%T outside the stanza\n%q", tok, raw)
				}
			}
		}
		if roots != 1 {
			t.Fatalf("re-encoded output has %d top-level elements\n%q", roots, raw)
		}
		again, err := ParseRawStanza(b)
		if err != nil {
			t.Fatalf("re-encoded stanza is refused: %v\n%q", err, raw)
		}
		fuzzCheckRawStanza(t, again.node, "re-parsed")
		// What the server receives means what the client sent: the same
		// elements (with namespaces), attributes and text, in order.
		sent, err := fuzzOrderedTree(b)
		if err != nil {
			t.Fatalf("re-encoded stanza: %v\n%q", err, raw)
		}
		client, err := fuzzOrderedTree(data)
		if err != nil {
			t.Fatalf("client stanza accepted by ParseRawStanza but not parseable: %v", err)
		}
		client.name.Space = "" // ParseRawStanza moves the stanza into the stream's namespace on purpose
		if diff := fuzzSameTree(client, sent, ""); diff != "" {
			t.Fatalf("re-encoding changed the stanza: %s\nclient: %q\nsent:   %q", diff, fuzzWire(data), raw)
		}
	})
}

func fuzzCheckRawStanza(t *testing.T, n xmlNode, what string) {
	t.Helper()
	if n.XMLName.Space != "" || (n.XMLName.Local != "message" && n.XMLName.Local != "presence" && n.XMLName.Local != "iq") {
		t.Fatalf("%s stanza is %v", what, n.XMLName)
	}
	for _, a := range n.Attrs {
		if a.Name.Local == "from" {
			t.Fatalf("%s stanza has from=%q", what, a.Value)
		}
	}
}

// fuzzTree is an element with its content in document order, which
// xmlNode (children and concatenated text) does not keep.
type fuzzTree struct {
	name    xml.Name
	attrs   map[xml.Name]string // without namespace declarations
	content []any               // string or *fuzzTree
}

// fuzzOrderedTree parses the first element of data in order; comments and
// processing instructions are not content.
func fuzzOrderedTree(data []byte) (*fuzzTree, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var stack []*fuzzTree
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			for _, n := range append([]xml.Name{tok.Name}, fuzzAttrNames(tok.Attr)...) {
				// Namespaces in XML §3: local names are NCNames. A server
				// parsing with namespaces closes the stream otherwise.
				if n.Local == "" || strings.Contains(n.Local, ":") {
					return nil, fmt.Errorf("name %v is not namespace-well-formed", n)
				}
			}
			e := &fuzzTree{name: tok.Name, attrs: map[xml.Name]string{}}
			for _, a := range tok.Attr {
				if a.Name.Space != "xmlns" && a.Name != (xml.Name{Local: "xmlns"}) {
					e.attrs[a.Name] = a.Value
				}
			}
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.content = append(parent.content, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			if len(stack) == 1 {
				return stack[0], nil
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				continue
			}
			e := stack[len(stack)-1]
			if k := len(e.content); k > 0 {
				if prev, ok := e.content[k-1].(string); ok {
					e.content[k-1] = prev + string(tok)
					continue
				}
			}
			e.content = append(e.content, string(tok))
		}
	}
}

func fuzzAttrNames(attrs []xml.Attr) []xml.Name {
	var names []xml.Name
	for _, a := range attrs {
		if a.Name.Space == "xmlns" && a.Name.Local != "" {
			continue // a prefix declaration: its local part is the prefix
		}
		names = append(names, a.Name)
	}
	return names
}

// fuzzSameTree compares two ordered trees; whitespace-only text in an
// element that has child elements is formatting (sendNode drops it).
func fuzzSameTree(a, b *fuzzTree, path string) string {
	path += "/" + a.name.Local
	if a.name != b.name {
		return fmt.Sprintf("%s: element %v became %v", path, a.name, b.name)
	}
	if !maps.Equal(a.attrs, b.attrs) {
		return fmt.Sprintf("%s: attributes %v became %v", path, a.attrs, b.attrs)
	}
	ac, bc := fuzzContent(a), fuzzContent(b)
	if len(ac) != len(bc) {
		return fmt.Sprintf("%s: content %s became %s", path, fuzzDescribe(ac), fuzzDescribe(bc))
	}
	for i := range ac {
		switch x := ac[i].(type) {
		case string:
			if y, ok := bc[i].(string); !ok || x != y {
				return fmt.Sprintf("%s: content %s became %s", path, fuzzDescribe(ac), fuzzDescribe(bc))
			}
		case *fuzzTree:
			y, ok := bc[i].(*fuzzTree)
			if !ok {
				return fmt.Sprintf("%s: content %s became %s", path, fuzzDescribe(ac), fuzzDescribe(bc))
			}
			if d := fuzzSameTree(x, y, path); d != "" {
				return d
			}
		}
	}
	return ""
}

func fuzzContent(e *fuzzTree) []any {
	hasChild := false
	for _, c := range e.content {
		if _, ok := c.(*fuzzTree); ok {
			hasChild = true
		}
	}
	var out []any
	for _, c := range e.content {
		if s, ok := c.(string); ok && (s == "" || hasChild && strings.TrimSpace(s) == "") {
			continue
		}
		out = append(out, c)
	}
	return out
}

func fuzzDescribe(content []any) string {
	parts := make([]string, len(content))
	for i, c := range content {
		if s, ok := c.(string); ok {
			parts[i] = strconv.Quote(s)
		} else {
			parts[i] = "<" + c.(*fuzzTree).name.Local + ">"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}
