package gateway

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"

	"mellium.im/xmpp/jid"
)

// Namespaces of private storage, bookmarks and search.
const (
	nsPrivate    = "jabber:iq:private" // XEP-0049
	nsProperties = "urn:xmppgw:properties:0"
	nsBookmarks  = "storage:bookmarks" // XEP-0048, bridged to XEP-0402 by servers that have both
	nsSearch     = "jabber:iq:search"  // XEP-0055
)

// ErrNoDirectory means the XMPP server offers no user directory.
var ErrNoDirectory = errors.New("the XMPP server offers no user directory (XEP-0055 jabber:iq:search)")

// propertyName bounds profile property names.
var propertyName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// maxProperties bounds how many properties one user keeps.
const maxProperties = 128

// Properties reads the user's own profile properties, kept server-side in
// private XML storage (XEP-0049): only the account itself can read them.
func (s *Stream) Properties(ctx context.Context) (map[string]string, error) {
	q := elem(nsPrivate, "query")
	q.Children = []xmlNode{elem(nsProperties, "properties")}
	res, err := s.request(ctx, "get", "", q)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if rq := res.child(nsPrivate, "query"); rq != nil {
		if props := rq.child(nsProperties, "properties"); props != nil {
			for _, p := range props.Children {
				if name := p.attr("name"); p.XMLName.Local == "property" && name != "" {
					out[name] = p.Text
				}
			}
		}
	}
	return out, nil
}

// SetProperty sets (value != nil) or deletes (nil) one property.
func (s *Stream) SetProperty(ctx context.Context, name string, value *string) error {
	if !propertyName.MatchString(name) {
		return fmt.Errorf("%w: property names are 1-64 characters of A-Z a-z 0-9 _ . -", ErrInvalidInput)
	}
	if value != nil {
		if err := checkText("value", *value); err != nil {
			return err
		}
	}
	props, err := s.Properties(ctx)
	if err != nil {
		return err
	}
	if value == nil {
		delete(props, name)
	} else {
		props[name] = *value
	}
	if len(props) > maxProperties {
		return fmt.Errorf("%w: at most %d properties", ErrInvalidInput, maxProperties)
	}
	node := elem(nsProperties, "properties")
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := elem(nsProperties, "property", "name", n)
		p.Text = props[n]
		node.Children = append(node.Children, p)
	}
	q := elem(nsPrivate, "query")
	q.Children = []xmlNode{node}
	_, err = s.request(ctx, "set", "", q)
	return err
}

// Bookmark is a bookmarked room (XEP-0048 conference bookmark).
type Bookmark struct {
	Room     string `json:"room"`
	Name     string `json:"name,omitempty"`
	Nick     string `json:"nick,omitempty"`
	Password string `json:"password,omitempty"`
	Autojoin bool   `json:"autojoin"`
}

// Bookmarks lists the user's room bookmarks.
func (s *Stream) Bookmarks(ctx context.Context) ([]Bookmark, error) {
	q := elem(nsPrivate, "query")
	q.Children = []xmlNode{elem(nsBookmarks, "storage")}
	res, err := s.request(ctx, "get", "", q)
	if err != nil {
		return nil, err
	}
	out := []Bookmark{}
	if rq := res.child(nsPrivate, "query"); rq != nil {
		if st := rq.child(nsBookmarks, "storage"); st != nil {
			for _, c := range st.Children {
				if c.XMLName.Local != "conference" {
					continue
				}
				auto := c.attr("autojoin")
				out = append(out, Bookmark{Room: c.attr("jid"), Name: c.attr("name"), Nick: c.childText("", "nick"),
					Password: c.childText("", "password"), Autojoin: auto == "true" || auto == "1"})
			}
		}
	}
	return out, nil
}

// SetBookmarks replaces the user's room bookmarks.
func (s *Stream) SetBookmarks(ctx context.Context, marks []Bookmark) error {
	st := elem(nsBookmarks, "storage")
	for _, b := range marks {
		room, err := ParseAddress(b.Room)
		if err != nil {
			return err
		}
		for _, f := range []string{b.Name, b.Nick, b.Password} {
			if err := checkText("bookmark", f); err != nil {
				return err
			}
		}
		c := elem(nsBookmarks, "conference", "jid", room.Bare().String(), "autojoin", fmt.Sprint(b.Autojoin))
		if b.Name != "" {
			c.Attrs = append(c.Attrs, xmlAttr("name", b.Name))
		}
		for _, kv := range [][2]string{{"nick", b.Nick}, {"password", b.Password}} {
			if kv[1] != "" {
				n := elem(nsBookmarks, kv[0])
				n.Text = kv[1]
				c.Children = append(c.Children, n)
			}
		}
		st.Children = append(st.Children, c)
	}
	q := elem(nsPrivate, "query")
	q.Children = []xmlNode{st}
	_, err := s.request(ctx, "set", "", q)
	return err
}

// autojoinBookmarks joins the rooms bookmarked with autojoin (at login,
// when the gateway is configured to).
func (s *Stream) autojoinBookmarks(ctx context.Context) {
	marks, err := s.Bookmarks(ctx)
	if err != nil {
		return
	}
	for _, b := range marks {
		if !b.Autojoin {
			continue
		}
		room, err := jid.Parse(b.Room)
		if err != nil {
			continue
		}
		if err := s.JoinRoom(ctx, room, JoinOptions{Nick: b.Nick, Password: b.Password, MaxStanzas: -1}); err != nil {
			s.log.Info("autojoin failed", "room", b.Room, "error", err.Error())
		}
	}
}

// SearchUsers searches the server's user directory (XEP-0055), found via
// service discovery; ErrNoDirectory when there is none.
//
// The search is built from what the directory's own form offers (§2,
// §3): servers differ here. ejabberd's mod_vcard answers the request
// for the form with an XEP-0004 data form only and rejects the simple
// fields with bad-request "Incorrect data form", so the term goes into
// one field of that form; a directory that lists simple fields gets the
// simple query.
func (s *Stream) SearchUsers(ctx context.Context, term string) ([]map[string]string, error) {
	if err := checkText("search", term); err != nil || term == "" {
		return nil, fmt.Errorf("%w: search must be a non-empty text", ErrInvalidInput)
	}
	service, err := s.searchService(ctx)
	if err != nil {
		return nil, err
	}
	form, err := s.request(ctx, "get", service.String(), elem(nsSearch, "query"))
	if err != nil {
		return nil, err
	}
	q, err := searchQuery(form.child(nsSearch, "query"), term)
	if err != nil {
		return nil, err
	}
	res, err := s.request(ctx, "set", service.String(), q)
	if err != nil {
		return nil, err
	}
	return searchResults(res.child(nsSearch, "query")), nil
}

// searchFields are the fields the term goes into, best first: nick is
// what the gateway always searched; ejabberd's form names the username
// "user" and the full name "fn". One field only, as directories AND the
// fields of a search (ejabberd does).
var searchFields = []string{"nick", "user", "fn", "first", "last", "email"}

// searchQuery builds the search request from the directory's answer to
// the form request (nil: it sent none): a submitted data form when it
// offered one, else the simple fields.
func searchQuery(form *xmlNode, term string) (xmlNode, error) {
	q := elem(nsSearch, "query")
	var x *xmlNode
	if form != nil {
		x = form.child(nsDataForms, "x")
	}
	if x == nil {
		// Simple fields (§2): the first of searchFields the directory
		// lists, nick when it lists none of them.
		name := "nick"
		if form != nil {
			for _, f := range searchFields {
				if form.child(nsSearch, f) != nil {
					name = f
					break
				}
			}
		}
		field := elem(nsSearch, name)
		field.Text = term
		q.Children = []xmlNode{field}
		return q, nil
	}
	offered := map[string]string{} // var -> type
	formType := ""
	for _, f := range x.Children {
		if f.XMLName.Local != "field" {
			continue
		}
		offered[f.attr("var")] = f.attr("type")
		if f.attr("var") == "FORM_TYPE" {
			formType = f.childText(nsDataForms, "value")
		}
	}
	name := ""
	for _, f := range searchFields {
		if t, ok := offered[f]; ok && (t == "" || t == "text-single") {
			name = f
			break
		}
	}
	if name == "" {
		return xmlNode{}, fmt.Errorf("%w: the directory's search form has none of the fields %v", ErrNoDirectory, searchFields)
	}
	submit := elem(nsDataForms, "x", "type", "submit")
	if formType != "" {
		// XEP-0004 §3.4 / XEP-0068: a form with a FORM_TYPE is submitted with it.
		ft := formField("FORM_TYPE", formType)
		ft.Attrs = append(ft.Attrs, xmlAttr("type", "hidden"))
		submit.Children = append(submit.Children, ft)
	}
	submit.Children = append(submit.Children, formField(name, term))
	q.Children = []xmlNode{submit}
	return q, nil
}

// formField is an XEP-0004 field with one value.
func formField(name, value string) xmlNode {
	f := elem(nsDataForms, "field", "var", name)
	v := elem(nsDataForms, "value")
	v.Text = value
	f.Children = []xmlNode{v}
	return f
}

// searchResults reads either answer of §2 (items with simple fields) or §3
// (a result data form, one <item> of fields per match) into one map per
// match; "jid" is always set.
func searchResults(rq *xmlNode) []map[string]string {
	out := []map[string]string{}
	if rq == nil {
		return out
	}
	if x := rq.child(nsDataForms, "x"); x != nil {
		for _, item := range x.Children {
			if item.XMLName.Local != "item" {
				continue
			}
			m := map[string]string{}
			for _, f := range item.Children {
				if name := f.attr("var"); f.XMLName.Local == "field" && name != "" {
					m[name] = f.childText(nsDataForms, "value")
				}
			}
			if m["jid"] != "" {
				out = append(out, m)
			}
		}
		return out
	}
	for _, item := range rq.Children {
		if item.XMLName.Local != "item" {
			continue
		}
		m := map[string]string{"jid": item.attr("jid")}
		for _, f := range item.Children {
			m[f.XMLName.Local] = f.Text
		}
		out = append(out, m)
	}
	return out
}

func (s *Stream) searchService(ctx context.Context) (jid.JID, error) {
	domain, err := jid.New("", s.user.Domainpart(), "")
	if err != nil {
		return jid.JID{}, err
	}
	if info, err := s.DiscoInfo(ctx, domain); err == nil && contains(info.Features, nsSearch) {
		return domain, nil
	}
	items, err := s.DiscoItems(ctx, domain)
	if err != nil {
		return jid.JID{}, err
	}
	for _, it := range items {
		j, err := jid.Parse(it.JID)
		if err != nil {
			continue
		}
		if info, err := s.DiscoInfo(ctx, j); err == nil && contains(info.Features, nsSearch) {
			return j, nil
		}
	}
	return jid.JID{}, ErrNoDirectory
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
