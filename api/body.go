package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

// bodyKind tells a JSON body from a text/plain one. A missing Content-Type
// counts as text, as in the ancestor's API (curl -d sends form type, which
// is treated as text too, since the body is not a form).
func bodyKind(r *http.Request) (isJSON bool, err error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false, nil
	}
	mt, _, perr := mime.ParseMediaType(ct)
	if perr != nil {
		return false, errUnsupportedMedia.wrap("malformed Content-Type")
	}
	switch mt {
	case "application/json":
		return true, nil
	case "text/plain", "application/x-www-form-urlencoded":
		return false, nil
	}
	return false, errUnsupportedMedia.wrap("use application/json or text/plain")
}

// readBody reads the whole body under the size cap.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, err
		}
		return nil, errBadRequest.wrap("reading body failed")
	}
	return b, nil
}

// readText reads a text/plain body, which must be UTF-8.
func readText(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", errBadRequest.wrap("body is not valid UTF-8")
	}
	return string(b), nil
}

// decodeJSON strictly decodes one JSON object into v. It is the one JSON
// decode path of the API (every REST body and every WebSocket command
// frame), so the rules hold everywhere:
//   - the body is valid UTF-8 with no lone UTF-16 surrogate escape (RFC 8259
//     §8.1, §8.2: encoding/json would silently turn both into U+FFFD);
//   - no object has a key twice (RFC 8259 §4 leaves duplicates to the
//     receiver; two parsers disagreeing on which one wins is an attack);
//   - keys match the target's json names exactly (encoding/json folds case,
//     so {"Body":..} would fill "body"), unknown keys are errors;
//   - exactly one value, no trailing data;
//   - error messages name the JSON field, never a Go type.
func decodeJSON(b []byte, v any) error {
	if err := checkJSONText(b); err != nil {
		return err
	}
	if err := checkJSONKeys(b, reflect.TypeOf(v)); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return jsonError(err)
	}
	// More() does not see a stray "}" or "]" at the top level; only EOF
	// proves the body was exactly one value.
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errInvalidJSON.wrap("trailing data after the JSON value")
	}
	return nil
}

// checkJSONText refuses invalid UTF-8 and \u escapes of lone surrogates.
// It only tracks string boundaries and escapes; the grammar is the
// decoder's job.
func checkJSONText(b []byte) error {
	if !utf8.Valid(b) {
		return errInvalidJSON.wrap("body is not valid UTF-8")
	}
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(b):
			if b[i+1] != 'u' {
				i++ // a one-character escape, maybe \" or \\
				continue
			}
			r, ok := hex4(b, i+2)
			if !ok {
				continue // malformed: the decoder reports it
			}
			switch {
			case utf16.IsSurrogate(r) && r < 0xdc00: // high half: a low half must follow
				if lo, ok := hex4(b, i+8); ok && i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' && lo >= 0xdc00 && lo <= 0xdfff {
					i += 11
					continue
				}
				return errInvalidJSON.wrap("lone UTF-16 surrogate \\u%04x at byte %d", r, i)
			case utf16.IsSurrogate(r):
				return errInvalidJSON.wrap("lone UTF-16 surrogate \\u%04x at byte %d", r, i)
			}
			i += 5
		}
	}
	return nil
}

// hex4 reads the four hex digits of a \u escape at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[i:i+4]), 16, 32)
	return rune(n), err == nil
}

// maxJSONDepth is encoding/json's own nesting limit; the key walk stops
// there too, so a deep body cannot grow its stack further.
const maxJSONDepth = 10000

// checkJSONKeys walks the tokens of b: no key twice in one object, and
// every key of an object decoded into a struct is one of its json names,
// spelled exactly. Syntax errors are left to the decoder.
func checkJSONKeys(b []byte, t reflect.Type) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // numbers stay text: 1e999 is for the decoder to judge
	w := keyWalker{d: d}
	var ae *apiError
	if err := w.value(t); errors.As(err, &ae) {
		return err
	}
	return nil // a syntax error: the decoder reports it with its position
}

// keyWalker is one walk over a body's tokens. path is where the walk is
// (object keys and array indices), turned into text only for an error:
// building it at every value would make deep bodies quadratic.
type keyWalker struct {
	d    *json.Decoder
	path []pathSeg
}

type pathSeg struct {
	key   string
	index int // when key is "": an array element
}

// name renders the path as "data.k" or "attachments[0].url".
func (w *keyWalker) name() string {
	var b strings.Builder
	for _, p := range w.path {
		switch {
		case p.key == "":
			fmt.Fprintf(&b, "[%d]", p.index)
		case b.Len() > 0:
			b.WriteByte('.')
			fallthrough
		default:
			b.WriteString(p.key)
		}
	}
	return b.String()
}

// value consumes one JSON value decoded into t (nil: anything goes, keys
// are only checked for duplicates).
func (w *keyWalker) value(t reflect.Type) error {
	if len(w.path) > maxJSONDepth {
		return errInvalidJSON.wrap("nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := w.d.Token()
	if err != nil {
		return err
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		return w.object(t)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; w.d.More(); i++ {
			w.path = append(w.path, pathSeg{index: i})
			if err := w.value(elem); err != nil {
				return err
			}
			w.path = w.path[:len(w.path)-1]
		}
		_, err := w.d.Token() // ']'
		return err
	}
	return nil
}

func (w *keyWalker) object(t reflect.Type) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = jsonFields(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	var seen map[string]struct{}
	for w.d.More() {
		tok, err := w.d.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		w.path = append(w.path, pathSeg{key: key})
		if _, dup := seen[key]; dup {
			return errInvalidJSON.wrap("field %q given twice", w.name())
		}
		if seen == nil {
			seen = map[string]struct{}{}
		}
		seen[key] = struct{}{}
		ft := elem
		if fields != nil {
			var ok bool
			if ft, ok = fields[key]; !ok {
				return unknownField(fields, w.name(), key)
			}
		}
		if err := w.value(ft); err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
	}
	_, err := w.d.Token() // '}'
	return err
}

// unknownField names a key the struct does not have, with the right
// spelling when only its case (or a Unicode fold) differs.
func unknownField(fields map[string]reflect.Type, name, key string) error {
	for f := range fields {
		if strings.EqualFold(f, key) {
			return errInvalidJSON.wrap("field %q: unknown field (names are case-sensitive: %q)", name, f)
		}
	}
	return errInvalidJSON.wrap("field %q: unknown field", name)
}

// jsonFieldCache holds each struct type's json names → field types.
var jsonFieldCache sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields lists the keys encoding/json decodes into struct type t:
// exported fields by tag name or Go name, "-" skipped, the fields of
// untagged embedded structs promoted (the shallower field wins).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := jsonFieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	addJSONFields(m, t, map[reflect.Type]bool{})
	jsonFieldCache.Store(t, m)
	return m
}

func addJSONFields(m map[string]reflect.Type, t reflect.Type, visiting map[reflect.Type]bool) {
	if visiting[t] {
		return
	}
	visiting[t] = true
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	for _, et := range embedded { // after the direct fields, which win
		sub := map[string]reflect.Type{}
		addJSONFields(sub, et, visiting)
		for k, v := range sub {
			if _, ok := m[k]; !ok {
				m[k] = v
			}
		}
	}
}

// jsonError turns a decoder error into a message about the JSON (field
// path, expected and found kind), never about Go types.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		want := jsonKind(te.Type)
		if te.Field == "" {
			return errInvalidJSON.wrap("expected %s, got %s", want, te.Value)
		}
		return errInvalidJSON.wrap("field %q: expected %s, got %s", te.Field, want, te.Value)
	case errors.As(err, &se):
		return errInvalidJSON.wrap("syntax error at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errInvalidJSON.wrap("unexpected end of JSON input")
	}
	var ie *json.InvalidUnmarshalError
	if errors.As(err, &ie) {
		return err // a bug in the caller: a 500, not the client's fault
	}
	return errInvalidJSON.wrap("%s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names what a JSON value for t must be.
func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a JSON value"
}

// pathParam returns a path segment percent-decoded: full JIDs carry "/"
// and must be sent escaped (%2F), which chi hands over as is.
func pathParam(r *http.Request, name string) (string, error) {
	v, err := url.PathUnescape(chi.URLParam(r, name))
	if err != nil {
		return "", errInvalidParameter.wrap("path segment %s is not valid percent-encoding", name)
	}
	return v, nil
}

// jidParam parses the {jid} path segment.
func jidParam(r *http.Request) (jid.JID, error) {
	v, err := pathParam(r, "jid")
	if err != nil {
		return jid.JID{}, err
	}
	return gateway.ParseAddress(v)
}

// readJSON reads a required JSON body into v.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if isJSON, err := bodyKind(r); err != nil || !isJSON {
		return errUnsupportedMedia.wrap("send application/json")
	}
	return decodeJSON(body, v)
}

// optionalJSON reads a JSON body into v when there is one.
func (s *Server) optionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil || len(body) == 0 {
		return err
	}
	if isJSON, err := bodyKind(r); err != nil || !isJSON {
		return errUnsupportedMedia.wrap("send application/json")
	}
	return decodeJSON(body, v)
}
