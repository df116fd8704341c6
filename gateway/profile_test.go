package gateway

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The search request follows the directory's form (XEP-0055 §2 and §3).
// (The encoder repeats the data-forms namespace on children: same XML.)
func TestSearchQuery_FollowsTheDirectorysForm(t *testing.T) {
	tests := []struct {
		name, form, want string
		fails            bool
	}{
		{"no form at all: simple nick", "", `<query xmlns="jabber:iq:search"><nick xmlns="jabber:iq:search">a&lt;b</nick></query>`, false},
		{"simple fields", `<query xmlns="jabber:iq:search"><first/><last/><email/></query>`,
			`<query xmlns="jabber:iq:search"><first xmlns="jabber:iq:search">a&lt;b</first></query>`, false},
		{"ejabberd's data form", `<query xmlns="jabber:iq:search"><instructions>x</instructions><x xmlns="jabber:x:data" type="form">` +
			`<field var="user" type="text-single"/><field var="fn" type="text-single"/><field var="nick" type="text-single"/></x></query>`,
			`<query xmlns="jabber:iq:search"><x xmlns="jabber:x:data" type="submit"><field xmlns="jabber:x:data" var="nick"><value xmlns="jabber:x:data">a&lt;b</value></field></x></query>`, false},
		{"form with FORM_TYPE and no nick", `<query xmlns="jabber:iq:search"><x xmlns="jabber:x:data" type="form">` +
			`<field var="FORM_TYPE" type="hidden"><value>jabber:iq:search</value></field><field var="user" type="text-single"/></x></query>`,
			`<query xmlns="jabber:iq:search"><x xmlns="jabber:x:data" type="submit"><field xmlns="jabber:x:data" var="FORM_TYPE" type="hidden"><value xmlns="jabber:x:data">jabber:iq:search</value></field>` +
				`<field xmlns="jabber:x:data" var="user"><value xmlns="jabber:x:data">a&lt;b</value></field></x></query>`, false},
		{"form without a usable field", `<query xmlns="jabber:iq:search"><x xmlns="jabber:x:data" type="form"><field var="ctry" type="list-single"/></x></query>`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var form *xmlNode
			if tt.form != "" {
				n := parseNode(t, tt.form)
				form = &n
			}
			q, err := searchQuery(form, "a<b")
			if tt.fails {
				require.ErrorIs(t, err, ErrNoDirectory)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, q.xmlString())
		})
	}
}

func TestSearchResults_BothShapes(t *testing.T) {
	form := parseNode(t, `<query xmlns="jabber:iq:search"><x xmlns="jabber:x:data" type="result"><reported><field var="jid"/><field var="nick"/></reported>`+
		`<item><field var="jid"><value>bob@localhost</value></field><field var="nick"><value>Bob</value></field></item>`+
		`<item><field var="nick"><value>no jid</value></field></item></x></query>`)
	require.Equal(t, []map[string]string{{"jid": "bob@localhost", "nick": "Bob"}}, searchResults(&form))
	simple := parseNode(t, `<query xmlns="jabber:iq:search"><item jid="carol@localhost"><nick>C</nick><email>c@x</email></item></query>`)
	require.Equal(t, []map[string]string{{"jid": "carol@localhost", "nick": "C", "email": "c@x"}}, searchResults(&simple))
	require.Empty(t, searchResults(nil))
}
