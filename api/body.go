package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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
//
// The rules are go-json-experiment/json's defaults (the package that became
// encoding/json/v2) plus RejectUnknownMembers; this function only turns its
// errors into messages about the JSON.
func decodeJSON(b []byte, v any) error {
	if err := checkJSONText(b); err != nil {
		return err
	}
	d := jsontext.NewDecoder(bytes.NewReader(b))
	value, err := d.ReadValue()
	if err != nil {
		return jsonError(err)
	}
	value = value.Clone() // the decoder reuses its buffer on the next read
	if _, err := d.ReadToken(); !errors.Is(err, io.EOF) {
		return errInvalidJSON.wrap("trailing data after the JSON value")
	}
	err = jsonv2.Unmarshal(value, v, jsonv2.RejectUnknownMembers(true))
	var se *jsonv2.SemanticError
	if errors.As(err, &se) && errors.Is(se.Err, jsonv2.ErrUnknownName) {
		return unknownField(value, v, se.JSONPointer)
	}
	return jsonError(err)
}

// checkJSONText refuses invalid UTF-8 and \u escapes of lone surrogates
// before the decoder does, for a message that shows the escape. It only
// tracks string boundaries and escapes; the grammar is the decoder's job.
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

// maxJSONDepth is jsontext's nesting limit, named for the tests.
const maxJSONDepth = 10000

// fieldName renders a JSON Pointer (RFC 6901) as "data.k" or
// "attachments[0].url". A token of digits under an array is an index; one
// under an object (a map key "0") reads the same, which is clear enough.
func fieldName(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			fmt.Fprintf(&b, "[%s]", tok)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// unknownField names a key the target does not have, with the right
// spelling when only its case (or a Unicode fold) differs. The spelling is
// found without reading the Go type: decode once more matching names
// case-insensitively, encode the result, and look for the key that folds
// to the unknown one in the same object.
func unknownField(value jsontext.Value, v any, at jsontext.Pointer) error {
	name := fieldName(at)
	key := at.LastToken()
	if jsonv2.Unmarshal(value, v, jsonv2.MatchCaseInsensitiveNames(true)) == nil {
		if out, err := jsonv2.Marshal(v); err == nil {
			for _, k := range objectKeys(out, at.Parent()) {
				if k != key && strings.EqualFold(k, key) {
					return errInvalidJSON.wrap("field %q: unknown field (names are case-sensitive: %q)", name, k)
				}
			}
		}
	}
	return errInvalidJSON.wrap("field %q: unknown field", name)
}

// objectKeys lists the member names of the object at p in JSON text b
// (none when p is not an object there).
func objectKeys(b []byte, p jsontext.Pointer) []string {
	d := jsontext.NewDecoder(bytes.NewReader(b))
	var keys []string
	for {
		tok, err := d.ReadToken()
		if err != nil {
			return keys
		}
		// Inside an object, tokens alternate name, value: a string read as
		// the object's odd-numbered token is a name, and the decoder's
		// pointer then ends with it.
		depth := d.StackDepth()
		if kind, n := d.StackIndex(depth); tok.Kind() == '"' && kind == '{' && n%2 == 1 {
			if d.StackPointer().Parent() == p {
				keys = append(keys, tok.String())
			}
		}
	}
}

// jsonError turns a decoder error into a message about the JSON (field
// path, expected and found kind), never about Go types.
func jsonError(err error) error {
	var se *jsonv2.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syn):
		field := fieldName(syn.JSONPointer)
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return errInvalidJSON.wrap("field %q given twice", field)
		case errors.Is(syn.Err, io.ErrUnexpectedEOF):
			return errInvalidJSON.wrap("unexpected end of JSON input")
		case strings.Contains(syn.Err.Error(), "exceeded max depth"):
			return errInvalidJSON.wrap("nested deeper than %d levels", maxJSONDepth)
		}
		return errInvalidJSON.wrap("syntax error at byte %d: %s", syn.ByteOffset, syn.Err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errInvalidJSON.wrap("unexpected end of JSON input")
	case errors.As(err, &se) && se.GoType != nil:
		want := jsonKind(se.GoType.Kind().String(), se.GoType.String())
		got := foundKind(se.JSONKind)
		if len(se.JSONPointer) == 0 {
			return errInvalidJSON.wrap("expected %s, got %s", want, got)
		}
		return errInvalidJSON.wrap("field %q: expected %s, got %s", fieldName(se.JSONPointer), want, got)
	case errors.As(err, &se):
		return errInvalidJSON.wrap("field %q: %s", fieldName(se.JSONPointer), se.Err)
	}
	return err // not about the JSON: a bug in the caller, a 500
}

// jsonKind names what a JSON value for a Go kind must be; kind is the
// kind's name as the decoder's error gives it, typeName tells []byte (a
// base64 string in JSON) from other slices.
func jsonKind(kind, typeName string) string {
	switch {
	case typeName == "time.Time":
		return "an RFC 3339 date-time string"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer in range"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case typeName == "[]uint8":
		return "a base64 string"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "map", kind == "struct":
		return "an object"
	}
	return "a JSON value"
}

// foundKind names the JSON kind a client sent.
func foundKind(k jsontext.Kind) string {
	switch k {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 0:
		return "a value out of range"
	}
	return k.String()
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
