package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
)

// xmlNode is one received element with its attributes, children and text:
// the gateway's own model of incoming stanzas, so that nothing the server
// sends is lost to a fixed struct (go-xmpp's Recv drops the id attribute,
// every <x/> but one, and IQ error conditions). It keeps the order of text
// and child elements, so mixed content (XHTML-IM) re-encodes faithfully.
type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr
	Children []xmlNode
	// Text is all character data directly inside the element, joined.
	Text string
	// parts records the interleaving of text runs and children.
	parts []nodePart
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

// UnmarshalXML reads an element token by token, keeping content order.
func (n *xmlNode) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	return n.unmarshal(d, start, 1)
}

func (n *xmlNode) unmarshal(d *xml.Decoder, start xml.StartElement, depth int) error {
	if depth > maxXMLDepth {
		return errTooDeep
	}
	n.XMLName = start.Name
	n.Attrs = append([]xml.Attr(nil), start.Attr...)
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var c xmlNode
			if err := c.unmarshal(d, t, depth+1); err != nil {
				return err
			}
			n.Children = append(n.Children, c)
			n.parts = append(n.parts, nodePart{child: len(n.Children) - 1})
		case xml.CharData:
			text.Write(t)
			n.parts = append(n.parts, nodePart{text: string(t), child: -1})
		case xml.EndElement:
			n.Text = text.String()
			return nil
		}
	}
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
		return name.Local != "" && !strings.Contains(name.Local, ":") &&
			(name.Space == "" || strings.Contains(name.Space, ":"))
	}
	if !ok(n.XMLName) {
		return false
	}
	for _, a := range n.Attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
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
