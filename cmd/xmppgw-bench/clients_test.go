package main

import (
	"encoding/xml"
	"testing"
	"time"
)

func TestChatBody(t *testing.T) {
	for _, c := range []struct {
		line, want string
		ok         bool
	}{
		{`data: {"type":"chat","id":"x","from":"a@l/r","to":"b@l/r","body":"bench 1 2"}` + "\n", "bench 1 2", true},
		{`data: {"type":"chat","body":"bench 1 \"2"}` + "\n", `bench 1 "2`, true},
		{`data: {"type":"groupchat","id":"x","from":"r@conference.l/n","to":"b@l/r","body":"bench 3 4","room":"r@conference.l"}` + "\n", "bench 3 4", true},
		{`data: {"type":"groupchat","body":"bench 3 \"4"}` + "\n", `bench 3 "4`, true},
		{`data: {"type":"presence","from":"a"}` + "\n", "", false},
		{`data: {"type":"chat","body":"hello"}` + "\n", "", false},
		{": heartbeat\n", "", false},
	} {
		got, ok := chatBody([]byte(c.line))
		if got != c.want || ok != c.ok {
			t.Errorf("chatBody(%q) = %q, %v; want %q, %v", c.line, got, ok, c.want, c.ok)
		}
	}
	seq, _, ok := parseBenchBody(benchBody(42, time.Unix(0, 5)))
	if !ok || seq != 42 {
		t.Errorf("parseBenchBody: %d %v", seq, ok)
	}
}

// TestBaselineStanzas checks the baseline's own stanzas as an XMPP server
// parses them: names, namespaces and escaped text.
func TestBaselineStanzas(t *testing.T) {
	var msg struct {
		To       string `xml:"to,attr"`
		Body     string `xml:"body"`
		OriginID struct {
			XMLName xml.Name
			ID      string `xml:"id,attr"`
		} `xml:"urn:xmpp:sid:0 origin-id"`
	}
	raw, err := xml.Marshal(originIDMessage{To: "a@b", Type: "chat", ID: "x", Body: "bench <&>", OriginID: originID{ID: "x"}})
	if err != nil || xml.Unmarshal(raw, &msg) != nil {
		t.Fatalf("message %s: %v", raw, err)
	}
	if msg.To != "a@b" || msg.Body != "bench <&>" || msg.OriginID.ID != "x" || msg.OriginID.XMLName.Space != "urn:xmpp:sid:0" {
		t.Errorf("message parsed as %+v from %s", msg, raw)
	}
	for _, c := range []struct {
		iq          setupIQ
		typ, wantNS string
	}{
		{setupIQ{Type: "set", ID: "1", Payload: carbonsEnable{}}, "set", "urn:xmpp:carbons:2"},
		{setupIQ{Type: "get", ID: "2", Payload: rosterQuery{}}, "get", "jabber:iq:roster"},
	} {
		var iq struct {
			Type    string                     `xml:"type,attr"`
			Payload struct{ XMLName xml.Name } `xml:",any"`
		}
		raw, err := xml.Marshal(c.iq)
		if err != nil || xml.Unmarshal(raw, &iq) != nil {
			t.Fatalf("iq %s: %v", raw, err)
		}
		if iq.Type != c.typ || iq.Payload.XMLName.Space != c.wantNS {
			t.Errorf("iq %s parsed as %+v", raw, iq)
		}
	}
}
