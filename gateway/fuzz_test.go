package gateway

// Native fuzz targets for every JSON→XML path (messages, presence, IQ
// replies), the XML→JSON payload extraction, stanza errors and JID parsing.
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

// wire is encoder output; it prints clipped so a failing 64 KiB input
// does not flood the log.
type wire []byte

func (w wire) String() string {
	const max = 512
	if len(w) <= max {
		return string(w)
	}
	return fmt.Sprintf("%s…(%d bytes)", w[:max], len(w))
}

// xmlNode is one element of a parsed document: its resolved name, its
// attributes (xmlns declarations excluded), its direct character data and
// the names of its element children in order.
type xmlNode struct {
	Name     xml.Name
	Attr     map[string]string
	Text     string
	Children []*xmlNode
}

// parseStrict walks every token of raw with a strict encoding/xml decoder
// and returns the single root element. It fails on anything but exactly one
// element and whitespace-free markup: no prolog, comment, PI, directive,
// prefixed name or prefix declaration, no xmlns other than the element's
// own namespace, no duplicate attribute and no text outside the root.
func parseStrict(t *testing.T, raw wire) *xmlNode {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var root *xmlNode
	var stack []*xmlNode
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
			n := &xmlNode{Name: tok.Name, Attr: map[string]string{}}
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

// childrenOf checks that n has no text and only children named in allowed
// (local name → namespace), each at most once and, if leaf, without element
// children of their own; it returns them by local name.
func childrenOf(t *testing.T, raw wire, n *xmlNode, leaf bool, allowed map[string]string) map[string]*xmlNode {
	t.Helper()
	if n.Text != "" {
		t.Fatalf("<%s> has direct character data %q\n%q", n.Name.Local, n.Text, raw)
	}
	got := map[string]*xmlNode{}
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

func requireAttrs(t *testing.T, raw wire, n *xmlNode, want map[string]string) {
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

// requireLeaf checks that element name is present iff want != "" and that
// its text is want byte for byte.
func requireLeaf(t *testing.T, raw wire, children map[string]*xmlNode, name, want string) {
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
		if err := m.prepare(); err != nil {
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
		raw := wire(b)
		root := parseStrict(t, raw)
		if root.Name != (xml.Name{Local: "message"}) {
			t.Fatalf("root is {%s}%s, want message without namespace\n%q", root.Name.Space, root.Name.Local, raw)
		}
		requireAttrs(t, raw, root, map[string]string{"to": m.To.String(), "type": m.Type, "id": m.ID})
		children := childrenOf(t, raw, root, true, map[string]string{
			"body": "", "subject": "", "thread": "", "origin-id": nsOriginID, "json": nsJSON})
		requireLeaf(t, raw, children, "body", m.Body)
		requireLeaf(t, raw, children, "subject", m.Subject)
		requireLeaf(t, raw, children, "thread", m.Thread)
		requireLeaf(t, raw, children, "json", data)
		origin, ok := children["origin-id"]
		if !ok {
			t.Fatalf("no origin-id\n%q", raw)
		}
		requireAttrs(t, raw, origin, map[string]string{"id": m.ID})
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
		// What the gateway later reads back from the json element is the data sent.
		if data != "" {
			got := payloadData([]element{{Name: xml.Name{Space: nsJSON, Local: "json"}, InnerXML: innerXMLOf(t, raw, "json")}})
			if string(got) != data {
				t.Fatalf("payloadData of the encoded json element = %q, want %q", got, data)
			}
		}
	})
}

// innerXMLOf returns the raw inner XML of the first element named local in
// raw, as go-xmpp would hand it to payloadData.
func innerXMLOf(t *testing.T, raw wire, local string) string {
	t.Helper()
	var v struct {
		Elems []struct {
			XMLName xml.Name
			Inner   string `xml:",innerxml"`
		} `xml:",any"`
	}
	if err := xml.Unmarshal(raw, &v); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	for _, e := range v.Elems {
		if e.XMLName.Local == local {
			return e.Inner
		}
	}
	t.Fatalf("no <%s> in %q", local, raw)
	return ""
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
		raw := wire(b)
		root := parseStrict(t, raw)
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
		requireAttrs(t, raw, root, wantAttr)
		children := childrenOf(t, raw, root, true, map[string]string{"show": "", "status": "", "priority": ""})
		for _, c := range children {
			if len(c.Attr) != 0 {
				t.Fatalf("<%s> has attributes %v\n%q", c.Name.Local, c.Attr, raw)
			}
		}
		requireLeaf(t, raw, children, "show", show)
		requireLeaf(t, raw, children, "status", normalizeNewlines(status))
		wantPrio := ""
		if typ == "" {
			wantPrio = strconv.Itoa(priority)
		}
		requireLeaf(t, raw, children, "priority", wantPrio)
	})
}

// The conditions encodeIQReply is called with (stream.go answerIQ).
var iqConditions = []string{"", "service-unavailable"}

func FuzzEncodeIQReply(f *testing.F) {
	for _, cond := range iqConditions {
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
			condition = iqConditions[1]
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
		raw := wire(b)
		root := parseStrict(t, raw)
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
		requireAttrs(t, raw, root, wantAttr)
		if condition == "" {
			if len(root.Children) != 0 || root.Text != "" {
				t.Fatalf("result iq has content\n%q", raw)
			}
			return
		}
		children := childrenOf(t, raw, root, false, map[string]string{"error": ""})
		e, ok := children["error"]
		if !ok {
			t.Fatalf("error iq without <error/>\n%q", raw)
		}
		requireAttrs(t, raw, e, map[string]string{"type": "cancel"})
		cond := childrenOf(t, raw, e, true, map[string]string{condition: nsStanzaError})
		c, ok := cond[condition]
		if !ok || len(cond) != 1 || len(c.Attr) != 0 || c.Text != "" {
			t.Fatalf("<error/> does not hold exactly an empty <%s/>\n%q", condition, raw)
		}
		// The gateway reads its own error back as sent.
		se := stanzaError([]element{{Name: xml.Name{Local: "error"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "cancel"}},
			InnerXML: innerXMLOf(t, raw, "error")}})
		if se != (StanzaError{Type: "cancel", Condition: condition}) {
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

func FuzzPayloadData(f *testing.F) {
	for _, s := range []string{`{&#34;a&#34;:[1,2]}`, `{"k":true}`, `not "json"`, "", " ", "<x/>", "<x>1</x>",
		"&lt;", "&bogus;", "<![CDATA[{\"a\":1}]]>", "<!-- c -->1", "<?pi x?>2", "1<x>2</x>3", "\"\xff\"", "\xff",
		"&#xD;{}", "\r\n[]\r", "</json>", "<a><b></a>", "null", "\"\\ud800\"", `"\u0000"`, "1e999999", "-0",
		"\ufffe", "&#xFFFE;", "&#0;", "😀", fuzzBig, `"` + fuzzBig + `"`,
		"</value></property><property><name>data</name><value>{}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, inner string) {
		check := func(kind string, got json.RawMessage) {
			t.Helper()
			if got == nil {
				return
			}
			if !json.Valid(got) {
				t.Fatalf("%s: payloadData(%q) = %q, not valid JSON", kind, inner, got)
			}
			if !utf8.Valid(got) {
				t.Fatalf("%s: payloadData(%q) = %q, not UTF-8 (cannot be an SSE event)", kind, inner, got)
			}
		}
		check("json", payloadData([]element{{Name: xml.Name{Space: nsJSON, Local: "json"}, InnerXML: inner}}))
		check("jive", payloadData([]element{{Name: xml.Name{Space: nsJiveProps, Local: "properties"},
			InnerXML: `<property><name>data</name><value>` + inner + `</value></property>`}}))
		// Round trip: JSON escaped the way encodeMessage escapes it reads back
		// unchanged from both containers.
		if json.Valid([]byte(inner)) && fuzzRepresentable(inner) {
			var esc bytes.Buffer
			if err := xml.EscapeText(&esc, []byte(inner)); err != nil {
				t.Fatal(err)
			}
			for _, e := range []element{
				{Name: xml.Name{Space: nsJSON, Local: "json"}, InnerXML: esc.String()},
				{Name: xml.Name{Space: nsJiveProps, Local: "properties"},
					InnerXML: `<property><name>data</name><value>` + esc.String() + `</value></property>`},
			} {
				if got := payloadData([]element{e}); string(got) != inner {
					t.Fatalf("%s: escaped JSON %q reads back as %q", e.Name.Local, inner, got)
				}
			}
		}
	})
}

func FuzzStanzaError(f *testing.F) {
	for _, s := range []string{"", `<resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">full</text>`,
		"<item-not-found/>", "<text>only text</text>", "<text><b>x</b></text>", `<x:y xmlns:x="urn:ietf:params:xml:ns:xmpp-stanzas"/>`,
		`<a xmlns=""/>`, "<a:/>", "<:a/>", "<a:b/>", "text only", "<", "<a>", "</a>", "<a><b/></a>", `<a xmlns="urn:other"/>`,
		"\xff", "<\xff/>", "<a\x00/>", fuzzBig, strings.Repeat("<a>", 10000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, inner string) {
		for _, attr := range [][]xml.Attr{nil, {{Name: xml.Name{Local: "type"}, Value: ""}}, {{Name: xml.Name{Local: "type"}, Value: "wait"}}} {
			se := stanzaError([]element{{Name: xml.Name{Local: "error"}, Attr: attr, InnerXML: inner}})
			if se.Type == "" || se.Condition == "" {
				t.Fatalf("stanzaError(%q, %v) = %+v with an empty field", inner, attr, se)
			}
			if len(attr) > 0 && attr[0].Value != "" && se.Type != attr[0].Value {
				t.Fatalf("type attribute %q read as %q", attr[0].Value, se.Type)
			}
			if _, err := json.Marshal(se); err != nil {
				t.Fatalf("error event does not marshal: %v", err)
			}
		}
	})
}
