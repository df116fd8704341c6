package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
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

// decodeJSON strictly decodes one JSON object: unknown fields and trailing
// data are errors, so typos do not pass silently.
func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errInvalidJSON.wrap("%s", err.Error())
	}
	// More() does not see a stray "}" or "]" at the top level; only EOF
	// proves the body was exactly one value.
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errInvalidJSON.wrap("trailing data after the JSON value")
	}
	return nil
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
