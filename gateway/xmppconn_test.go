package gateway

import (
	"encoding/xml"
	"net"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
	xmpp "github.com/xmppo/go-xmpp"
)

// TestTakeOver_MatchesGoXMPP guards the one place the gateway reaches
// into go-xmpp's internals: if an upgrade renames or retypes the fields,
// this fails before any login does.
func TestTakeOver_MatchesGoXMPP(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[xmpp.Client]()
	connField, ok := typ.FieldByName("conn")
	require.True(t, ok, "go-xmpp Client.conn is gone")
	require.Equal(t, reflect.TypeFor[net.Conn](), connField.Type)
	decField, ok := typ.FieldByName("p")
	require.True(t, ok, "go-xmpp Client.p is gone")
	require.Equal(t, reflect.TypeFor[*xml.Decoder](), decField.Type)

	_, err := takeOver(&xmpp.Client{})
	require.Error(t, err, "a client without a connection is refused, not dereferenced")
}
