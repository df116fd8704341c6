package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// xmlNode is one received element with its attributes, children and text:
// the gateway's own model of incoming stanzas, so that nothing the server
// sends is lost to a fixed struct (go-xmpp v0.3.6's Recv, which the gateway
// once used, returns a Chat with no field for the message's id attribute and
// an IQ with none for its error condition). It keeps the order of text and
// child elements, so mixed content (XHTML-IM) re-encodes faithfully.
type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr
	Children []xmlNode
	// Text is all character data directly inside the element, joined.
	Text string
	// parts records the interleaving of text runs and children.
	parts []nodePart
	// bad says why the stanza reader did not keep all of this element or
	// of something inside it ("": read whole); only readStanza sets it.
	bad string
	// cut marks an element that lost content itself (a child nested too
	// deep or ill-named, an ill-named attribute, the size limit reached
	// while it was open), as against an ancestor of one.
	cut bool
}

// nodePart is a text run (child < 0) or the index of a child.
type nodePart struct {
	text  string
	child int
}

// maxXMLDepth bounds nesting: real stanzas are a few levels deep, and a
// deeply nested body would cost memory and stack far beyond its size.
const maxXMLDepth = 64

// errTooDeep rejects XML nested beyond maxXMLDepth.
var errTooDeep = errors.New("XML nested too deeply")

// Why readStanza skipped (part of) a stanza; the texts reach clients.
var (
	reasonTooDeep  = fmt.Sprintf("nested deeper than %d levels", maxXMLDepth)
	reasonIllNamed = "names not namespace-well-formed"
)

// UnmarshalXML reads an element token by token, keeping content order.
// It is strict: too deep is an error (validation of client input relies
// on that). The stream reader uses the lenient mode of readStanza instead.
func (n *xmlNode) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	return n.unmarshal(d, start, 1, nil, nil)
}

// unmarshal reads the element start opened. With a budget (the stream
// reader) it never fails on content: what is too deep or ill-named is
// consumed and left out, and once the element outgrows the budget every
// open level keeps what it has and consumes the rest of itself; the
// elements concerned are marked (bad, cut). Only a broken XML stream, or a
// stanza beyond the budget's hard cap, is an error. errOverBudget tells the
// caller to stop reading its own element too. scope holds the namespaces
// declared for this element (by it and its ancestors).
func (n *xmlNode) unmarshal(d xml.TokenReader, start xml.StartElement, depth int, b *readBudget, scope []string) error {
	if depth > maxXMLDepth {
		return errTooDeep
	}
	n.XMLName = start.Name
	n.Attrs = append([]xml.Attr(nil), start.Attr...)
	if b != nil {
		n.Attrs = n.Attrs[:0]
		for _, a := range start.Attr {
			if declaration(a.Name) || a.Name.Space == "" || inScope(scope, a.Name.Space) {
				n.Attrs = append(n.Attrs, a)
			} else {
				n.markCut(reasonIllNamed)
			}
		}
	}
	var text strings.Builder
	defer func() { n.Text = text.String() }()
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if b != nil && b.over() {
			// The token just read is not kept: the budget is spent.
			n.markCut(b.reasonTooLarge())
			if _, end := tok.(xml.EndElement); end {
				return errOverBudget
			}
			if _, open := tok.(xml.StartElement); open {
				if err := b.skip(); err != nil {
					return err
				}
			}
			if err := b.skip(); err != nil {
				return err
			}
			return errOverBudget
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var childScope []string
			if b != nil {
				childScope = append(scope[:len(scope):len(scope)], declared(t)...)
				reason := ""
				switch {
				case depth+1 > maxXMLDepth:
					reason = reasonTooDeep
				case !localOK(t.Name.Local) || t.Name.Space != "" && !inScope(childScope, t.Name.Space):
					reason = reasonIllNamed
				}
				if reason != "" {
					// Consume the child without keeping (or recursing into) it.
					n.markCut(reason)
					if err := b.skip(); err != nil {
						return err
					}
					continue
				}
			}
			var c xmlNode
			err := c.unmarshal(d, t, depth+1, b, childScope)
			if err != nil && !errors.Is(err, errOverBudget) {
				return err
			}
			n.Children = append(n.Children, c)
			n.parts = append(n.parts, nodePart{child: len(n.Children) - 1})
			if c.bad != "" && n.bad == "" {
				n.bad = c.bad
			}
			if err != nil { // over budget: keep what we have, consume the rest
				n.markCut(b.reasonTooLarge())
				if err := b.skip(); err != nil {
					return err
				}
				return errOverBudget
			}
		case xml.CharData:
			text.Write(t)
			n.parts = append(n.parts, nodePart{text: string(t), child: -1})
		case xml.EndElement:
			return nil
		}
	}
}

// markCut records that n itself lost content, and why (the first reason
// stays).
func (n *xmlNode) markCut(reason string) {
	n.cut = true
	if n.bad == "" {
		n.bad = reason
	}
}

// badOnlyInside reports whether everything the reader left out of n lies
// inside elements for which unit is true, so that the rest of n is whole
// and the unit can be reported as skipped on its own.
func (n *xmlNode) badOnlyInside(unit func(*xmlNode) bool) bool {
	if n.bad == "" || unit(n) {
		return true
	}
	if n.cut {
		return false
	}
	for i := range n.Children {
		if !n.Children[i].badOnlyInside(unit) {
			return false
		}
	}
	return true
}

// attr returns the value of an attribute without namespace.
func (n *xmlNode) attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local && (a.Name.Space == "" || a.Name.Space == n.XMLName.Space) {
			return a.Value
		}
	}
	return ""
}

// child returns the first child with that namespace ("" matches any) and
// local name, or nil.
func (n *xmlNode) child(space, local string) *xmlNode {
	for i := range n.Children {
		c := &n.Children[i]
		if c.XMLName.Local == local && (space == "" || c.XMLName.Space == space) {
			return c
		}
	}
	return nil
}

// childText returns the text of a child, or "".
func (n *xmlNode) childText(space, local string) string {
	if c := n.child(space, local); c != nil {
		return c.Text
	}
	return ""
}

// nextNode decodes the next element d holds, strictly (UnmarshalXML),
// skipping whatever comes before its start tag.
func nextNode(d *xml.Decoder) (xmlNode, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xmlNode{}, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			var n xmlNode
			err := d.DecodeElement(&n, &start)
			return n, err
		}
	}
}

// MarshalXML re-encodes the node through the encoder: namespace
// declarations are regenerated from the resolved names, never copied.
func (n xmlNode) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return n.encode(e, "")
}

// encode writes the node inside a parent whose default namespace is
// parentSpace. An element in no namespace under a namespaced parent gets
// an explicit xmlns="" so it does not inherit the parent's.
func (n xmlNode) encode(e *xml.Encoder, parentSpace string) error {
	start := xml.StartElement{Name: n.XMLName}
	for _, a := range n.Attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		start.Attr = append(start.Attr, a)
	}
	if n.XMLName.Space == "" && parentSpace != "" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: ""})
	}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	parts := n.parts
	if parts == nil { // built in code, not parsed: text first, then children
		if n.Text != "" {
			parts = append(parts, nodePart{text: n.Text, child: -1})
		}
		for i := range n.Children {
			parts = append(parts, nodePart{child: i})
		}
	}
	for _, p := range parts {
		var err error
		if p.child < 0 {
			err = e.EncodeToken(xml.CharData(p.text))
		} else {
			err = n.Children[p.child].encode(e, n.XMLName.Space)
		}
		if err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// xmlString renders a node as XML text.
func (n xmlNode) xmlString() string {
	var b bytes.Buffer
	enc := xml.NewEncoder(&b)
	if err := enc.Encode(n); err != nil || enc.Flush() != nil {
		return ""
	}
	return b.String()
}

// wellNamed reports whether every element and attribute name of the tree
// is namespace-well-formed: a non-empty local name without a colon, and a
// namespace (if any) that was declared, which for the decoder means it
// resolved to a URI rather than staying a bare prefix.
func (n *xmlNode) wellNamed() bool {
	ok := func(name xml.Name) bool {
		return localOK(name.Local) && (name.Space == "" || strings.Contains(name.Space, ":"))
	}
	if !ok(n.XMLName) {
		return false
	}
	for _, a := range n.Attrs {
		if declaration(a.Name) {
			continue
		}
		if !ok(a.Name) {
			return false
		}
	}
	for i := range n.Children {
		if !n.Children[i].wellNamed() {
			return false
		}
	}
	return true
}

// localOK reports whether a local name is namespace-well-formed: not
// empty, no colon (encoding/xml leaves the rest of a second colon there).
func localOK(local string) bool { return local != "" && !strings.Contains(local, ":") }

// declaration reports whether an attribute name is a namespace
// declaration (xmlns or xmlns:prefix).
func declaration(name xml.Name) bool {
	return name.Space == "xmlns" || (name.Space == "" && name.Local == "xmlns")
}
