package gateway

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"mellium.im/xmpp/jid"
)

// benchMessages are the shapes encodeMessage sees: the plain chat message
// of the throughput benchmark and a ConnectyCube-style rich one.
var benchMessages = []struct {
	name string
	msg  OutgoingMessage
}{
	{"plain", OutgoingMessage{To: jid.MustParse("bob@localhost"), Body: "bench 123456 1700000000000000000 padding text"}},
	{"rich", OutgoingMessage{To: jid.MustParse("bob@localhost/phone"), Type: "chat", Body: "see <this> & \"that\"\nline two",
		Thread: "th-1", Data: json.RawMessage(`{"k":"<v>","n":[1,2]}`), ChatState: "active", Markable: true,
		ExtraParams: map[string]string{"moduleIdentifier": "SystemNotifications", "save_to_history": "1"},
		Attachments: []map[string]string{{"type": "image", "id": "a1", "url": "https://x/y?a=1&b=2"}}}},
}

func BenchmarkEncodeMessage(b *testing.B) { benchmarkEncode(b, encodeMessage) }

// BenchmarkMarshalMessage is the former encodeMessage, for comparison.
func BenchmarkMarshalMessage(b *testing.B) { benchmarkEncode(b, marshalMessage) }

func benchmarkEncode(b *testing.B, encode func(OutgoingMessage) ([]byte, error)) {
	for _, bm := range benchMessages {
		b.Run(bm.name, func(b *testing.B) {
			m := bm.msg
			if err := m.prepare(false); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encode(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// marshalMessage is how encodeMessage used to render a message: xml.Marshal
// of a struct. TestEncodeMessage_MatchesMarshal holds the token encoder to it.
func marshalMessage(m OutgoingMessage) ([]byte, error) {
	type xmlOriginID struct {
		ID string `xml:"id,attr"`
	}
	type xmlJSON struct {
		Value string `xml:",chardata"`
	}
	type xmlMessage struct {
		XMLName  xml.Name     `xml:"message"`
		To       string       `xml:"to,attr"`
		Type     string       `xml:"type,attr"`
		ID       string       `xml:"id,attr"`
		Subject  string       `xml:"subject,omitempty"`
		Body     *string      `xml:"body"`
		Thread   string       `xml:"thread,omitempty"`
		OriginID *xmlOriginID `xml:"urn:xmpp:sid:0 origin-id"`
		JSON     *xmlJSON     `xml:"urn:xmpp:json:0 json,omitempty"`
		Extra    *xmlNode     `xml:",omitempty"`
		Ext      []xmlNode
	}
	x := xmlMessage{To: m.To.String(), Type: m.Type, ID: m.ID, Subject: m.Subject,
		Thread: m.Thread, OriginID: &xmlOriginID{ID: m.ID}, Extra: extraParamsNode(m.ExtraParams, m.Attachments)}
	if m.Body != "" {
		x.Body = &m.Body
	}
	if len(m.Data) > 0 {
		x.JSON = &xmlJSON{Value: string(m.Data)}
	}
	if m.ChatState != "" {
		x.Ext = append(x.Ext, elem(nsChatStates, m.ChatState))
	}
	if m.Markable {
		x.Ext = append(x.Ext, elem(nsMarkers, "markable"))
	}
	if m.ReplaceID != "" {
		x.Ext = append(x.Ext, elem(nsCorrect, "replace", "id", m.ReplaceID))
	}
	if m.DestroyAfter > 0 {
		x.Ext = append(x.Ext, elem(nsDestroy, "destroy", "after", strconv.Itoa(m.DestroyAfter)))
	}
	return xml.Marshal(x)
}

// xmlTokens is what a namespace-aware parser reads from raw.
func xmlTokens(t *testing.T, raw []byte) []xml.Token {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(raw))
	var toks []xml.Token
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return toks
		}
		require.NoError(t, err, "%s", raw)
		toks = append(toks, xml.CopyToken(tok))
	}
}

func TestEncodeMessage_MatchesMarshal(t *testing.T) {
	t.Parallel()
	bob, bobPhone := jid.MustParse("bob@localhost"), jid.MustParse("bob@localhost/phone")
	special := "<b>&amp; \"q\" 'a' ]]> \t tab é 😀 \uFFFD"
	tests := []struct {
		name string
		msg  OutgoingMessage
	}{
		{"plain", OutgoingMessage{To: bob, Body: "hi"}},
		{"full JID, given id", OutgoingMessage{To: bobPhone, ID: "my-id.1:2_3", Body: "hi"}},
		{"special characters", OutgoingMessage{To: bob, Body: special, Subject: special, Thread: special}},
		{"injection stays text", OutgoingMessage{To: bob, Body: `</body><evil xmlns="x"/><body>`}},
		{"newlines and CR", OutgoingMessage{To: bob, Type: "normal", Body: "a\nb\r\nc\rd", Subject: "s\n", Thread: "t\r"}},
		{"subject only", OutgoingMessage{To: bob, Type: "headline", Subject: "only"}},
		{"data", OutgoingMessage{To: bob, Data: json.RawMessage("{\"k\": \"<v>&'\\\"\",\n \"n\": [1, 2.5e3, null, true]}")}},
		{"data and body", OutgoingMessage{To: bob, Body: "b", Data: json.RawMessage(`"just a string"`)}},
		{"extraParams", OutgoingMessage{To: bob, ExtraParams: map[string]string{
			"moduleIdentifier": "SystemNotifications", "b_key": special, "a.key-2": "x\r\ny", "empty": "", "Z": "1"}}},
		{"attachments", OutgoingMessage{To: bob, Body: "pic", Attachments: []map[string]string{
			{"type": "image", "id": "1", "url": "https://x/y?a=1&b=2", "name": special + "\nline"},
			{},
			{"content-type": "text/plain", "size": "12", "data": "<xml/>", "width": "1", "height": "2", "duration": "3"}}}},
		{"attachments only", OutgoingMessage{To: bob, Attachments: []map[string]string{{"url": "u"}}}},
		{"markers and states", OutgoingMessage{To: bob, Body: "x", ChatState: "composing", Markable: true}},
		{"correction", OutgoingMessage{To: bob, Body: "fixed", ReplaceID: "orig-1"}},
		{"destroy after", OutgoingMessage{To: bob, Body: "bye", DestroyAfter: 604800}},
		{"everything", OutgoingMessage{To: bobPhone, Type: "chat", ID: "all", Body: special, Subject: "s", Thread: "t",
			Data: json.RawMessage(`{"a":1}`), ExtraParams: map[string]string{"save_to_history": "1", "dialog_id": "d\n1"},
			Attachments: []map[string]string{{"type": "audio", "url": "u"}}, ChatState: "active", Markable: true,
			ReplaceID: "r", DestroyAfter: 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := tt.msg
			require.NoError(t, m.prepare(false))
			want, err := marshalMessage(m)
			require.NoError(t, err)
			got, err := encodeMessage(m)
			require.NoError(t, err)
			require.Equal(t, xmlTokens(t, want), xmlTokens(t, got), "what a parser reads\nwant %s\ngot  %s", want, got)
			// Byte for byte, but for one escape: Marshal writes a newline in
			// character data as &#xA;, EncodeToken writes it as is.
			require.Equal(t, strings.ReplaceAll(string(want), "&#xA;", "\n"), strings.ReplaceAll(string(got), "&#xA;", "\n"))
			if !strings.Contains(string(want), "&#xA;") {
				require.Equal(t, string(want), string(got))
			}
		})
	}
}

// TestEncodeMessage_Concurrent shares the encoder pool between goroutines;
// with -race it shows that no pooled state leaks from one message to another.
func TestEncodeMessage_Concurrent(t *testing.T) {
	t.Parallel()
	done := make(chan error)
	for i := range 8 {
		go func() {
			m := OutgoingMessage{To: jid.MustParse("bob@localhost"), Body: strings.Repeat(strconv.Itoa(i), 100*i+1),
				ExtraParams: map[string]string{"k" + strconv.Itoa(i): "v"}}
			if err := m.prepare(false); err != nil {
				done <- err
				return
			}
			want, err := marshalMessage(m)
			for range 200 {
				if err != nil {
					break
				}
				var got []byte
				if got, err = encodeMessage(m); err == nil && !bytes.Equal(got, want) {
					err = errors.New("got " + string(got) + "\nwant " + string(want))
				}
			}
			done <- err
		}()
	}
	for range 8 {
		require.NoError(t, <-done)
	}
}
