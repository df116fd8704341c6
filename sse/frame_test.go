package sse

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   uint64
		data string
		want string
	}{
		{"single line", 1, `{"a":1}`, "id: 1\ndata: {\"a\":1}\n\n"},
		{"LF", 2, "a\nb", "id: 2\ndata: a\ndata: b\n\n"},
		{"CR", 3, "a\rb", "id: 3\ndata: a\ndata: b\n\n"},
		{"CRLF is one break", 4, "a\r\nb", "id: 4\ndata: a\ndata: b\n\n"},
		{"LFCR is two breaks", 5, "a\n\rb", "id: 5\ndata: a\ndata: \ndata: b\n\n"},
		{"trailing newline", 6, "a\n", "id: 6\ndata: a\ndata: \n\n"},
		{"empty data", 7, "", "id: 7\ndata: \n\n"},
		{"unicode and emoji", 8, `{"m":"héllo 😀 世界"}`, "id: 8\ndata: {\"m\":\"héllo 😀 世界\"}\n\n"},
		{"script unchanged", 9, `{"m":"</script><script>x()</script>"}`, "id: 9\ndata: {\"m\":\"</script><script>x()</script>\"}\n\n"},
		{"max id", 18446744073709551615, "{}", "id: 18446744073709551615\ndata: {}\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, string(Frame(tc.id, []byte(tc.data))))
		})
	}
}

func TestResetFrame(t *testing.T) {
	t.Parallel()
	got := string(resetFrame(4, "", `x"<y`, 5))
	require.Equal(t, "id: 4\ndata: {\"type\":\"reset\",\"last_event_id\":\"x\\\"\\u003cy\",\"oldest_id\":5,\"reason\":\"events missed\"}\n\n", got)
}
