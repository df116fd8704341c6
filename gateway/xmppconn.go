package gateway

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"time"
	"unsafe"

	xmpp "github.com/xmppo/go-xmpp"
)

// writeTimeout bounds one stanza write: a server that stops reading must
// not block a REST call (or the stream's goroutine) forever.
const writeTimeout = 10 * time.Second

// nsStreams is the stream namespace (RFC 6120 §4.8.1).
const nsStreams = "http://etherx.jabber.org/streams"

// xmppConn is a go-xmpp session whose reading the gateway has taken over.
// go-xmpp does the part it does well (TCP, STARTTLS, SASL, resource
// binding); after that, its Recv loses too much (message ids, all but one
// <x/> child, IQ error conditions, presence priority), so the gateway reads
// the same XML decoder itself and keeps every element whole.
type xmppConn struct {
	client *xmpp.Client
	raw    net.Conn
	dec    *xml.Decoder

	writeMu sync.Mutex
}

// takeOver extracts the socket and XML decoder of a logged-in go-xmpp
// client (v0.3.6, pinned in go.mod). The decoder is reused, not replaced:
// it may already hold buffered stanzas (offline messages arrive right
// after login). TestTakeOver_MatchesGoXMPP fails if go-xmpp's fields change.
func takeOver(c *xmpp.Client) (*xmppConn, error) {
	v := reflect.ValueOf(c).Elem()
	connField, decField := v.FieldByName("conn"), v.FieldByName("p")
	if !connField.IsValid() || !decField.IsValid() ||
		connField.Type() != reflect.TypeFor[net.Conn]() || decField.Type() != reflect.TypeFor[*xml.Decoder]() {
		return nil, errors.New("gateway: go-xmpp's Client layout is not the expected v0.3.6 one")
	}
	raw, _ := reflect.NewAt(connField.Type(), unsafe.Pointer(connField.UnsafeAddr())).Elem().Interface().(net.Conn)
	dec, _ := reflect.NewAt(decField.Type(), unsafe.Pointer(decField.UnsafeAddr())).Elem().Interface().(*xml.Decoder)
	if raw == nil || dec == nil {
		return nil, errors.New("gateway: go-xmpp client has no connection")
	}
	return &xmppConn{client: c, raw: raw, dec: dec}, nil
}

// errStreamEnded is returned by Read when the server closed the XML stream.
var errStreamEnded = errors.New("server closed the XMPP stream")

// Read returns the next top-level element. Stream errors (RFC 6120 §4.9)
// and the end of the stream are errors; whitespace keepalives are skipped.
func (c *xmppConn) Read() (xmlNode, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return xmlNode{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var n xmlNode
			if err := c.dec.DecodeElement(&n, &t); err != nil {
				return xmlNode{}, err
			}
			if n.XMLName.Space == nsStreams && n.XMLName.Local == "error" {
				condition := "undefined-condition"
				if len(n.Children) > 0 {
					condition = n.Children[0].XMLName.Local
				}
				return xmlNode{}, fmt.Errorf("stream error: %s", condition)
			}
			return n, nil
		case xml.EndElement:
			return xmlNode{}, errStreamEnded
		}
	}
}

// Write sends one stanza under a write deadline.
func (c *xmppConn) Write(raw []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.raw.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.client.SendOrg(string(raw))
	return err
}

// JID is the bound full JID.
func (c *xmppConn) JID() string { return c.client.JID() }

// Close closes the socket.
func (c *xmppConn) Close() error { return c.raw.Close() }

// expectClose makes a pending Read give up after d if the server does not
// answer our </stream:stream> (RFC 6120 §4.4 lets it take its time).
func (c *xmppConn) expectClose(d time.Duration) {
	_ = c.raw.SetReadDeadline(time.Now().Add(d))
}

var _ io.Closer = (*xmppConn)(nil)
