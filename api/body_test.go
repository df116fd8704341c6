package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type strictInner struct {
	Deep string `json:"deep"`
}

type strictEmbedded struct {
	Promoted string `json:"promoted"`
	Shadowed string `json:"name"`
}

type strictTarget struct {
	strictEmbedded
	Name    string                 `json:"name"`
	NoTag   string                 // decoded as "NoTag"
	Skipped string                 `json:"-"`
	Inner   *strictInner           `json:"inner,omitempty"`
	List    []strictInner          `json:"list,omitempty"`
	Free    map[string]strictInner `json:"free,omitempty"`
	Any     any                    `json:"any,omitempty"`
	Raw     json.RawMessage        `json:"raw,omitempty"`
	When    time.Time              `json:"when,omitzero"`
}

// TestDecodeJSON_Strict checks the key walk and the text checks on their
// own: which keys a struct has (tags, Go names, "-", promoted fields), how
// deep the checks reach (structs, slices, maps, any, raw JSON) and the
// escape scanner.
func TestDecodeJSON_Strict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string // "" = accepted, else a part of the message
	}{
		{"exact names", `{"name":"a","NoTag":"b","promoted":"c","inner":{"deep":"d"}}`, ""},
		{"Go name in other case", `{"notag":"b"}`, `field "notag": unknown field (names are case-sensitive: "NoTag")`},
		{"skipped field", `{"Skipped":"x"}`, `field "Skipped": unknown field`},
		{"promoted field in other case", `{"Promoted":"c"}`, `"promoted"`},
		{"nested struct", `{"inner":{"Deep":"d"}}`, `field "inner.Deep"`},
		{"struct in a slice", `{"list":[{"deep":"d"},{"DEEP":"d"}]}`, `field "list[1].DEEP"`},
		{"struct in a map", `{"free":{"K":{"deep":"d","Deep":"e"}}}`, `field "free.K.Deep"`},
		{"map keys are free", `{"free":{"Any Key":{"deep":"d"}}}`, ""},
		{"any and raw keys are free", `{"any":{"X":1,"x":2},"raw":{"Y":[{"y":1}]}}`, ""},
		{"duplicate in any", `{"any":{"x":1,"x":2}}`, `field "any.x" given twice`},
		{"duplicate in raw array", `{"raw":[{"y":1,"y":1}]}`, `field "raw[0].y" given twice`},
		{"same key in sibling objects", `{"list":[{"deep":"a"},{"deep":"b"}]}`, ""},
		{"escaped backslash then u", `{"name":"\\ud800"}`, ""},
		{"escaped quote then surrogate", `{"name":"\"\ud800"}`, "surrogate"},
		{"surrogate pair", `{"name":"\ud83d\ude00"}`, ""},
		{"high surrogate at the end", `{"name":"\ud83d"}`, "surrogate"},
		{"surrogate in a key", `{"\udfff":1}`, "surrogate"},
		{"invalid UTF-8 in a key", "{\"na\xffme\":1}", "UTF-8"},
		{"syntax error", `{"name":}`, "syntax error"},
		{"trailing data", `{"name":"a"} {}`, "trailing data"},
		{"truncated", `{"name":"a"`, "unexpected end"},
		{"empty", ``, "unexpected end"},
		{"too deep", `{"any":` + strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1) + `}`, "nested"},
		{"deep but allowed", `{"any":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`, ""},
		{"wrong type nested", `{"list":[{"deep":5}]}`, `field "list[0].deep": expected a string, got number`},
		{"wrong type top level", `"x"`, "expected an object, got string"},
		{"bad time", `{"when":"yesterday"}`, `field "when": expected an RFC 3339 date-time string, got string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v strictTarget
			err := decodeJSON([]byte(tt.in), &v)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			var ae *apiError
			require.True(t, errors.As(err, &ae), "%v", err)
			require.Equal(t, errInvalidJSON.code, ae.code)
			require.Contains(t, ae.message, tt.want)
			for _, w := range goTypeWords {
				require.NotContains(t, ae.message, w)
			}
			require.NotContains(t, ae.message, "strictTarget")
			require.NotContains(t, ae.message, "strictInner")
		})
	}
	var v strictTarget
	require.NoError(t, decodeJSON([]byte(`{"name":"top","promoted":"p"}`), &v))
	require.Equal(t, "top", v.Name)
	require.Equal(t, "p", v.Promoted)
}
