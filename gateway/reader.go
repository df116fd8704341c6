package gateway

import (
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// errStreamEnded is returned by Read when the server closed the XML stream.
var errStreamEnded = errors.New("server closed the XMPP stream")

// errOverBudget is the reader's internal signal that the top-level element
// outgrew its byte budget; readStanza never returns it.
var errOverBudget = errors.New("stanza over its byte budget")

// hardCapFactor sets the hard cap of a skipped stanza at this many times
// the byte limit: content past the limit is consumed without being kept,
// but encoding/xml still keeps one entry per open element to match end
// tags, so endless nesting must end somewhere. Beyond the cap the stream is
// treated as broken (no XMPP server relays such a stanza: Prosody's c2s
// limit is 256 KiB).
const hardCapFactor = 4

// xmlNamespace is the namespace of the xml: prefix, always declared.
const xmlNamespace = "http://www.w3.org/XML/1998/namespace"

// tokenSource is what the stream reader reads: tokens, and how many input
// bytes they took so far. *xml.Decoder is one; sessionTokens another.
type tokenSource interface {
	Token() (xml.Token, error)
	InputOffset() int64
}

// readBudget is the byte budget of one top-level element, counted from the
// source's input offset while decoding (so nothing is buffered to count).
type readBudget struct {
	d     tokenSource
	start int64 // input offset where the element began
	max   int64 // bytes it may take before it is skipped; 0 = no limit
}

// over reports whether the element has taken more than its budget.
func (b *readBudget) over() bool { return b.max > 0 && b.d.InputOffset()-b.start > b.max }

func (b *readBudget) reasonTooLarge() string { return fmt.Sprintf("larger than %d bytes", b.max) }

// skip consumes the rest of the element whose start tag was read last,
// keeping nothing: xml.Decoder.Skip, iterative (no recursion however deep
// the element is), with the hard cap checked as it goes.
func (b *readBudget) skip() error {
	for depth := 0; ; {
		if b.max > 0 && b.d.InputOffset()-b.start > hardCapFactor*b.max {
			return fmt.Errorf("XMPP stanza larger than %d bytes: the stream cannot skip it", hardCapFactor*b.max)
		}
		tok, err := b.d.Token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return nil
			}
			depth--
		}
	}
}

// readStanza returns the next top-level element of an XMPP stream read by
// d; whitespace keepalives are skipped. A stanza the gateway will not take
// whole (nested deeper than maxXMLDepth, larger than maxBytes, or with
// names that are not namespace-well-formed) is still returned, without an
// error: what could be read is kept (its addresses, ids, the wrappers of a
// forwarded message), the rest was consumed to its end, and the elements
// concerned are marked (xmlNode.bad), so the caller can skip it as one
// stanza while the stream goes on. Errors mean the stream itself is broken:
// a syntax error, the end of the stream, a network error or a stream
// error (RFC 6120 §4.9).
func readStanza(d tokenSource, maxBytes int64) (xmlNode, error) {
	for {
		offset := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return xmlNode{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			b := &readBudget{d: d, start: offset, max: maxBytes}
			var n xmlNode
			// The top-level element's own namespace comes from the stream
			// header (jabber:client), read during login: take it as given.
			scope := append([]string{xmlNamespace, nsStreams, t.Name.Space}, declared(t)...)
			if !localOK(t.Name.Local) || t.Name.Space != "" && !strings.Contains(t.Name.Space, ":") {
				n.XMLName, n.Attrs = t.Name, append([]xml.Attr(nil), t.Attr...)
				n.markCut(reasonIllNamed)
				if err := b.skip(); err != nil {
					return xmlNode{}, err
				}
			} else if err := n.unmarshal(d, t, 1, b, scope); err != nil && !errors.Is(err, errOverBudget) {
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

// declared returns the namespaces an element's own xmlns attributes
// declare. encoding/xml resolves a declared prefix to its namespace; an
// undeclared one stays the bare prefix, which is how the reader tells
// them apart (a colon test would refuse real namespaces like vcard-temp).
func declared(t xml.StartElement) []string {
	var out []string
	for _, a := range t.Attr {
		if declaration(a.Name) && a.Value != "" {
			out = append(out, a.Value)
		}
	}
	return out
}

// inScope reports whether space is one of the declared namespaces.
func inScope(scope []string, space string) bool { return slices.Contains(scope, space) }
