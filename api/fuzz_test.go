package api

// Native fuzz targets for the request-side JSON paths: the presence request
// mapping and the strict JSON body decoder. They need no network (TestMain
// still starts the shared Prosody, which they never use). The seeds and the
// files under testdata/fuzz/ run as ordinary tests with plain `go test`;
// scripts/fuzz.sh fuzzes them for a bounded time.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppgw/xmppgw/gateway"
)

func FuzzPresenceRequest(f *testing.F) {
	shows := []string{"", "available", "offline", "away", "chat", "dnd", "xa", "busy", "Away", "offline\x00"}
	types := []string{"", "available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed",
		"probe", "error", "Available"}
	tos := []string{"", "bob@localhost", "Bob@LocalHost/Res", "user@münchen.example", `d\27artagnan@example.com`,
		"bob@local host", "@localhost", "bob@", "bob@localhost/\x00", "bob@localhost/" + strings.Repeat("r", 1100)}
	statuses := []string{"", "in a meeting", "a\r\nb\rc", "nul\x00", "bad\xff", "\ufffe", "😀", `</status><evil/>`,
		strings.Repeat("s", 64<<10)}
	for _, show := range shows {
		for _, typ := range types {
			f.Add(show, "", "", typ, 0)
			f.Add(show, "", "bob@localhost", typ, 0)
		}
	}
	for i, to := range tos {
		f.Add("", statuses[i%len(statuses)], to, "subscribe", 0)
	}
	for _, st := range statuses {
		f.Add("away", st, "", "", 5)
	}
	for _, prio := range []int{-129, -128, -1, 0, 127, 128, 1 << 40, -1 << 63} {
		f.Add("", "", "", "", prio)
	}
	f.Fuzz(func(t *testing.T, show, status, to, typ string, prio int) {
		for _, withPrio := range []bool{true, false} {
			req := PresenceRequest{Show: show, Status: status, To: to, Type: typ}
			if withPrio {
				req.Priority = &prio
			}
			p, err := req.toPresence()
			addr, addrErr := gateway.ParseAddress(to)
			offlineClash := show == "offline" && typ != "" && typ != "available" && typ != "unavailable"
			if err != nil {
				var ae *apiError
				switch {
				case errors.As(err, &ae):
					if ae.status != http.StatusBadRequest {
						t.Fatalf("%+v: apiError with status %d: %v", req, ae.status, err)
					}
				case errors.Is(err, gateway.ErrInvalidAddress):
					if to == "" || addrErr == nil {
						t.Fatalf("%+v: ErrInvalidAddress for a valid or absent to: %v", req, err)
					}
				default:
					t.Fatalf("%+v: error %v is neither a 400 apiError nor ErrInvalidAddress", req, err)
				}
				if got := toAPIError(err).status; got != http.StatusBadRequest {
					t.Fatalf("%+v: error %v maps to HTTP %d", req, err, got)
				}
				continue
			}
			if offlineClash {
				t.Fatalf("%+v: show=offline with type %q accepted", req, typ)
			}
			if to != "" && addrErr != nil {
				t.Fatalf("%+v: invalid to accepted", req)
			}
			// The mapping from the API vocabulary.
			wantType := typ
			if typ == "available" {
				wantType = ""
			}
			wantShow := show
			switch show {
			case "offline":
				wantType, wantShow = "unavailable", ""
			case "", "available":
				wantShow = ""
			}
			if p.Type != wantType || p.Show != wantShow {
				t.Fatalf("%+v: mapped to type %q show %q, want %q %q", req, p.Type, p.Show, wantType, wantShow)
			}
			if p.Status != status {
				t.Fatalf("%+v: status changed to %q", req, p.Status)
			}
			wantPrio := 0
			if withPrio {
				wantPrio = prio
			}
			if p.Priority != wantPrio {
				t.Fatalf("%+v: priority %d, want %d", req, p.Priority, wantPrio)
			}
			switch {
			case to == "" && !p.To.Equal(jid.JID{}):
				t.Fatalf("%+v: to %q invented", req, p.To)
			case to != "" && !p.To.Equal(addr):
				t.Fatalf("%+v: to %q, want %q", req, p.To, addr)
			}
			if p.To.Equal(jid.JID{}) && p.Type != "" && p.Type != "unavailable" {
				t.Fatalf("%+v: type %q without to accepted", req, p.Type)
			}
			if err := p.Validate(); err != nil {
				if !errors.Is(err, gateway.ErrInvalidInput) {
					t.Fatalf("%+v: Validate error %v does not wrap ErrInvalidInput", req, err)
				}
				if got := toAPIError(err).status; got != http.StatusBadRequest {
					t.Fatalf("%+v: Validate error %v maps to HTTP %d", req, err, got)
				}
				continue
			}
			// Valid, so the gateway will encode exactly this: the mapping
			// asserted above holds for what goes on the wire, and what
			// Validate let through is a legal RFC 6121 presence.
			if show == "offline" && p.Type != "unavailable" {
				t.Fatalf("%+v: offline encodes as type %q", req, p.Type)
			}
			if p.Priority < -128 || p.Priority > 127 {
				t.Fatalf("%+v: priority %d passed Validate", req, p.Priority)
			}
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"body":"hi"}`, ` {"body":"hi"} `, "{\"body\":\"a\\r\\nb\"}\n",
		`{"body":"</body><evil xmlns=\"x\"/>","type":"chat","id":"m-1","subject":"s","thread":"t"}`,
		`{"data":{"k":"<v>","n":[1,2.5,-0,1e999,null,true]}}`, `{"data":null}`, `{"data":"\u0000"}`, `{"data":"\ud800"}`,
		`{"body":"\u0000\u001f\ufffe\ud83d\ude00"}`, "{\"body\":\"bad\xff\"}", "{\"data\":\"bad\xff\"}", `{"BODY":"case"}`,
		`{"body":"a","body":"b"}`, `{"unknown":1}`, `{"body":1}`, `{} {}`, `{}x`, `{"body":"a"}  null`, `null`, `[]`, `"x"`,
		"", " ", "\ufeff{}", `{`, `{"data":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
		`{"data":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`,
		`{"body":"` + strings.Repeat("x", 64<<10) + `"}`, `{"id":"` + strings.Repeat("i", 129) + `"}`,
		`{"data":"\u2028\u2029<>&"}`,
		`{"body":"b","extraParams":{"save_to_history":1,"date_sent":1700000000,"silent":true,"dialog_id":"d1","x":-0,"y":1e308,"z":1e-7}}`,
		`{"extraParams":{"obj":{"a":1}}}`, `{"extraParams":{"n":null}}`, `{"extraParams":{}}`, `{"attachments":[]}`,
		`{"attachments":[{"type":"image","url":"https://x/y?a=1&b=2","size":123,"bogus":true}]}`, `{"attachments":[null]}`,
		`{"chatstate":"composing","markable":true,"destroy_after":30}`, `{"destroy_after":1.5}`, `{"markable":"yes"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req MessageRequest
		if err := decodeJSON(body, &req); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.code != errInvalidJSON.code || ae.status != http.StatusBadRequest {
				t.Fatalf("decodeJSON(%q) error %v is not the 40001 apiError", body, err)
			}
			return
		}
		// "trailing data after the JSON object" must be refused: what was
		// accepted is exactly one JSON value.
		if !json.Valid(body) {
			t.Fatalf("decodeJSON accepted %q, which is not exactly one JSON value", body)
		}
		out, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("decoded %+v does not marshal: %v", req, err)
		}
		var again MessageRequest
		if err := decodeJSON(out, &again); err != nil {
			t.Fatalf("re-marshalled %q does not decode: %v", out, err)
		}
		if !fuzzSameJSON(t, req.Data, again.Data) {
			t.Fatalf("round trip changed data: %q → %q", req.Data, again.Data)
		}
		a, b := req, again
		a.Data, b.Data = nil, nil
		for _, m := range []*MessageRequest{&a, &b} { // omitempty drops empty ones
			if len(m.ExtraParams) == 0 {
				m.ExtraParams = nil
			}
			if len(m.Attachments) == 0 {
				m.Attachments = nil
			}
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed fields: %+v → %q → %+v", req, out, again)
		}

		// The mapping onto the gateway's message.
		to := jid.MustParse("bob@localhost")
		m, err := req.outgoing(to)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest {
				t.Fatalf("outgoing(%+v) error %v is not a 400 apiError", req, err)
			}
			return
		}
		if !m.To.Equal(to) || m.Type != req.Type || m.ID != req.ID || m.Body != req.Body || m.Subject != req.Subject ||
			m.Thread != req.Thread || string(m.Data) != string(req.Data) || m.Markable != req.Markable ||
			m.ChatState != req.ChatState || m.DestroyAfter != req.DestroyAfter {
			t.Fatalf("outgoing(%+v) = %+v", req, m)
		}
		fuzzCheckStringMap(t, "extraParams", req.ExtraParams, m.ExtraParams)
		if len(m.Attachments) != len(req.Attachments) {
			t.Fatalf("%d attachments became %d", len(req.Attachments), len(m.Attachments))
		}
		for i := range req.Attachments {
			fuzzCheckStringMap(t, "attachment", req.Attachments[i], m.Attachments[i])
		}
	})
}

// fuzzCheckStringMap checks that JSON scalars became their text form.
func fuzzCheckStringMap(t *testing.T, what string, in map[string]any, out map[string]string) {
	t.Helper()
	if len(out) != len(in) {
		t.Fatalf("%s %v became %v", what, in, out)
	}
	for k, v := range in {
		var want string
		switch v := v.(type) {
		case string:
			want = v
		case bool:
			want = strconv.FormatBool(v)
		case float64:
			want = strconv.FormatFloat(v, 'f', -1, 64)
			if back, err := strconv.ParseFloat(out[k], 64); err != nil || back != v {
				t.Fatalf("%s.%s: number %v became %q, which does not read back", what, k, v, out[k])
			}
		default:
			t.Fatalf("%s.%s: %T accepted", what, k, v)
		}
		if got, ok := out[k]; !ok || got != want {
			t.Fatalf("%s.%s: %v became %q, want %q", what, k, v, got, want)
		}
	}
}

// fuzzSameJSON compares two JSON values by meaning (numbers as written).
func fuzzSameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	decode := func(raw json.RawMessage) any {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("data %q is not JSON: %v", raw, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}
