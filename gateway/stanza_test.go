package gateway

import (
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"mellium.im/xmpp/jid"
)

// decodedMessage is what a receiver's parser sees of an encoded message.
type decodedMessage struct {
	XMLName xml.Name
	To      string `xml:"to,attr"`
	Type    string `xml:"type,attr"`
	ID      string `xml:"id,attr"`
	Body    string `xml:"body"`
	Subject string `xml:"subject"`
	Thread  string `xml:"thread"`
	JSON    string `xml:"urn:xmpp:json:0 json"`
	Origin  struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:sid:0 origin-id"`
	Any []struct{ XMLName xml.Name } `xml:",any"`
}

func TestEncodeMessage_RoundTrip(t *testing.T) {
	t.Parallel()
	bob := jid.MustParse("bob@localhost")
	tests := []struct {
		name string
		msg  OutgoingMessage
		want decodedMessage // fields compared after decoding
	}{
		{"plain", OutgoingMessage{To: bob, Body: "hi"}, decodedMessage{Type: "chat", Body: "hi"}},
		{"injection stays text", OutgoingMessage{To: bob, Body: `</body><evil xmlns="x"/><body>`},
			decodedMessage{Type: "chat", Body: `</body><evil xmlns="x"/><body>`}},
		{"quotes newlines unicode", OutgoingMessage{To: bob, Body: "say \"hi\" & 'bye'\nline2\tüñí 😀"},
			decodedMessage{Type: "chat", Body: "say \"hi\" & 'bye'\nline2\tüñí 😀"}},
		{"CRLF normalised", OutgoingMessage{To: bob, Body: "a\r\nb\rc"}, decodedMessage{Type: "chat", Body: "a\nb\nc"}},
		{"headline with data", OutgoingMessage{To: bob, Type: "headline", Data: json.RawMessage(`{"k":"<v>"}`)},
			decodedMessage{Type: "headline", JSON: `{"k":"<v>"}`}},
		{"subject thread", OutgoingMessage{To: bob, Type: "normal", Subject: "s", Body: "b", Thread: "t1"},
			decodedMessage{Type: "normal", Subject: "s", Body: "b", Thread: "t1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := tt.msg
			require.NoError(t, m.prepare(false))
			raw, err := encodeMessage(m)
			require.NoError(t, err)
			var got decodedMessage
			require.NoError(t, xml.Unmarshal(raw, &got), string(raw))
			require.Equal(t, "message", got.XMLName.Local)
			require.Equal(t, "bob@localhost", got.To)
			require.Equal(t, tt.want.Type, got.Type)
			require.Equal(t, tt.want.Body, got.Body)
			require.Equal(t, tt.want.Subject, got.Subject)
			require.Equal(t, tt.want.Thread, got.Thread)
			require.Equal(t, tt.want.JSON, got.JSON)
			require.NotEmpty(t, got.ID)
			require.Equal(t, got.ID, got.Origin.ID, "origin-id mirrors the stanza id")
			for _, child := range got.Any {
				require.Contains(t, []string{"body", "subject", "thread", "origin-id", "json"}, child.XMLName.Local,
					"no injected element")
			}
		})
	}
}

func TestOutgoingMessage_Validation(t *testing.T) {
	t.Parallel()
	bob := jid.MustParse("bob@localhost")
	tests := []struct {
		name string
		msg  OutgoingMessage
		want error
		text string
	}{
		{"no recipient", OutgoingMessage{Body: "x"}, ErrInvalidAddress, "recipient"},
		{"empty", OutgoingMessage{To: bob}, ErrInvalidInput, "needs a body"},
		{"groupchat refused", OutgoingMessage{To: bob, Type: "groupchat", Body: "x"}, ErrInvalidInput, "type"},
		{"bad id", OutgoingMessage{To: bob, ID: "a b", Body: "x"}, ErrInvalidInput, "id"},
		{"control char", OutgoingMessage{To: bob, Body: "a\x01b"}, ErrInvalidInput, "U+0001"},
		{"bad utf8", OutgoingMessage{To: bob, Body: "a\xffb"}, ErrInvalidInput, "UTF-8"},
		{"bad data", OutgoingMessage{To: bob, Data: json.RawMessage(`{`)}, ErrInvalidInput, "JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.msg.prepare(false)
			require.ErrorIs(t, err, tt.want)
			require.Contains(t, err.Error(), tt.text)
		})
	}
}

func TestEncodePresence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    OutgoingPresence
		want string
	}{
		{"available default priority", OutgoingPresence{}, `<presence><priority>0</priority></presence>`},
		{"away with status", OutgoingPresence{Show: "away", Status: "<lunch> & \"more\"", Priority: 5},
			`<presence><show>away</show><status>&lt;lunch&gt; &amp; &#34;more&#34;</status><priority>5</priority></presence>`},
		{"unavailable has no priority", OutgoingPresence{Type: "unavailable", Status: "bye"},
			`<presence type="unavailable"><status>bye</status></presence>`},
		{"subscribe", OutgoingPresence{Type: "subscribe", To: jid.MustParse("bob@localhost")},
			`<presence to="bob@localhost" type="subscribe"></presence>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tt.p.Validate())
			raw, err := encodePresence(tt.p)
			require.NoError(t, err)
			require.Equal(t, tt.want, string(raw))
		})
	}
	for _, bad := range []OutgoingPresence{{Show: "busy"}, {Type: "probe"}, {Priority: 128},
		{Type: "subscribe"}, {Status: "\x00"}} {
		require.ErrorIs(t, bad.Validate(), ErrInvalidInput, "%+v", bad)
	}
}

func TestEncodeIQReply(t *testing.T) {
	t.Parallel()
	raw, err := encodeIQReply("localhost", "r1", "")
	require.NoError(t, err)
	require.Equal(t, `<iq type="result" id="r1" to="localhost"></iq>`, string(raw))
	raw, err = encodeIQReply("x@y/z", "q'1", "service-unavailable")
	require.NoError(t, err)
	require.Equal(t, `<iq type="error" id="q&#39;1" to="x@y/z"><error type="cancel">`+
		`<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></service-unavailable></error></iq>`, string(raw))
}

// parseNode decodes XML into the gateway's node model, as the reader does.
func parseNode(t *testing.T, raw string) xmlNode {
	t.Helper()
	var n xmlNode
	require.NoError(t, xml.Unmarshal([]byte(raw), &n), raw)
	return n
}

func TestReadParts(t *testing.T) {
	t.Parallel()
	const own = "bob@localhost"
	tests := []struct {
		name  string
		xml   string
		check func(t *testing.T, p messageParts)
	}{
		{"xep-0335 data", `<message xmlns="jabber:client"><json xmlns="urn:xmpp:json:0">{&#34;a&#34;:[1,2]}</json></message>`,
			func(t *testing.T, p messageParts) { require.JSONEq(t, `{"a":[1,2]}`, string(p.data)) }},
		{"jive data property", `<message xmlns="jabber:client"><properties xmlns="` + nsJiveProps + `"><property><name>other</name><value>x</value></property><property><name>data</name><value type="string">{"k":true}</value></property></properties></message>`,
			func(t *testing.T, p messageParts) { require.JSONEq(t, `{"k":true}`, string(p.data)) }},
		{"non-JSON data becomes a string", `<message xmlns="jabber:client"><json xmlns="urn:xmpp:json:0">not "json"</json></message>`,
			func(t *testing.T, p messageParts) { require.Equal(t, `"not \"json\""`, string(p.data)) }},
		{"extraParams and attachments", `<message xmlns="jabber:client"><extraParams xmlns="jabber:client"><save_to_history>1</save_to_history><attachment type="image" id="7" width="640"/></extraParams></message>`,
			func(t *testing.T, p messageParts) {
				require.Equal(t, map[string]string{"save_to_history": "1"}, p.extra)
				require.Equal(t, []map[string]string{{"type": "image", "id": "7", "width": "640"}}, p.attachments)
			}},
		{"foreign stanza-id ignored", `<message xmlns="jabber:client"><stanza-id xmlns="urn:xmpp:sid:0" id="evil" by="mallory@evil"/><stanza-id xmlns="urn:xmpp:sid:0" id="good" by="bob@localhost"/></message>`,
			func(t *testing.T, p messageParts) { require.Equal(t, "good", p.stanzaID) }},
		{"markers, state, correction, destroy", `<message xmlns="jabber:client"><composing xmlns="http://jabber.org/protocol/chatstates"/><markable xmlns="urn:xmpp:chat-markers:0"/><replace xmlns="urn:xmpp:message-correct:0" id="m1"/><destroy xmlns="urn:xmpp:message-destroy-after:0" after="5"/></message>`,
			func(t *testing.T, p messageParts) {
				require.Equal(t, "composing", p.chatState)
				require.True(t, p.markable)
				require.Equal(t, "m1", p.replaceID)
				require.Equal(t, 5, p.destroyAfter)
			}},
		{"unknown kept as extension", `<message xmlns="jabber:client"><thing xmlns="urn:x" a="1">t</thing></message>`,
			func(t *testing.T, p messageParts) {
				require.Equal(t, []string{`<thing xmlns="urn:x" a="1">t</thing>`}, p.extensions)
			}},
		{"x:oob command, other x kept", `<message xmlns="jabber:client"><x xmlns="jabber:x:oob"><type>cmd</type><payload>{}</payload></x><x xmlns="jabber:x:conference" jid="r@c"/></message>`,
			func(t *testing.T, p messageParts) {
				require.NotNil(t, p.command)
				require.Len(t, p.extensions, 1)
				require.Contains(t, p.extensions[0], "jabber:x:conference")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.check(t, readParts(parseNode(t, tt.xml), own))
		})
	}
}

func TestStanzaError(t *testing.T) {
	t.Parallel()
	n := parseNode(t, `<error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">full</text></error>`)
	require.Equal(t, StanzaError{Type: "wait", Condition: "resource-constraint", Text: "full"}, stanzaError(&n))
	require.Equal(t, StanzaError{Type: "cancel", Condition: "undefined-condition"}, stanzaError(nil))
}

func TestXMLNode_ReencodesThroughTheEncoder(t *testing.T) {
	t.Parallel()
	n := parseNode(t, `<message xmlns="jabber:client" to="a@b" type="chat"><body>x &amp; &lt;y&gt;</body><z xmlns="urn:z" k="&quot;v&quot;"/></message>`)
	out := n.xmlString()
	back := parseNode(t, out)
	require.Equal(t, "x & <y>", back.childText("", "body"))
	require.Equal(t, `"v"`, back.child("urn:z", "z").attr("k"))
	require.Equal(t, "chat", back.attr("type"))
}

func TestPendingSends_MatchesOldestPerRecipient(t *testing.T) {
	t.Parallel()
	var p pendingSends
	p.record("a@x", "1")
	p.record("b@x", "2")
	p.record("a@x", "3")
	require.Equal(t, "1", p.match("a@x"))
	require.Equal(t, "3", p.match("a@x"))
	require.Equal(t, "", p.match("a@x"))
	require.Equal(t, "2", p.match("b@x"))
	for i := range pendingSendsMax + 10 {
		p.record("c@x", strings.Repeat("i", i%5+1))
	}
	require.Len(t, p.items, pendingSendsMax, "bounded")
}

func TestAddresses(t *testing.T) {
	t.Parallel()
	j, err := UserJID("Alice", "localhost")
	require.NoError(t, err)
	require.Equal(t, "alice@localhost", j.String(), "PRECIS case-maps the localpart")
	for _, bad := range []string{"", "a@b", "a b", "a/b", strings.Repeat("x", 1100)} {
		_, err := UserJID(bad, "localhost")
		require.ErrorIs(t, err, ErrInvalidAddress, "%q", bad)
	}
	_, err = ParseAddress("bob@localhost/res")
	require.NoError(t, err)
	for _, bad := range []string{"", "@localhost", "bob@", "a@b@c", "bob@local host"} {
		_, err := ParseAddress(bad)
		require.ErrorIs(t, err, ErrInvalidAddress, "%q", bad)
	}
	require.NoError(t, ValidateResource("web-1.tab_2"))
	require.ErrorIs(t, ValidateResource("<x>"), ErrInvalidInput)
}
