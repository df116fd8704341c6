package sse

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Fixed protocol fragments. Lines starting with ':' are comments that the
// WHATWG event-stream parser ignores, which is what makes them usable as
// keep-alives; they are still bytes on the wire, so proxies see activity.
var (
	okComment        = []byte(":ok\n\n")
	heartbeatComment = []byte(": heartbeat\n\n")
)

// Frame encodes one event in the text/event-stream format: an "id:" line, one
// "data:" line per line of data, and a terminating blank line.
//
// No "event:" line is written, so every event is a "message" event and a
// browser's EventSource.onmessage sees all of them. The WHATWG spec treats CR,
// LF and CRLF all as line terminators, so a raw newline inside data would end
// the field early; data is therefore split on each of them and re-joined by
// the client with LF. JSON produced by an encoder contains no raw newlines, so
// this is purely defensive.
func Frame(id uint64, data []byte) []byte { return frame(id, "", data) }

// EventID is an event's id as clients see it ("id:" lines, Last-Event-ID,
// the WebSocket's event_id): the integer, followed by "." and the epoch
// when the topic's ids come from a log with one (cluster mode), so that a
// position in one life of the log is never taken for the same number in
// another.
func EventID(id uint64, epoch string) string {
	return string(appendEventID(nil, id, epoch))
}

func appendEventID(buf []byte, id uint64, epoch string) []byte {
	buf = strconv.AppendUint(buf, id, 10)
	if epoch != "" {
		buf = append(buf, '.')
		buf = append(buf, epoch...)
	}
	return buf
}

// parseEventID inverts EventID.
func parseEventID(s string) (id uint64, epoch string, err error) {
	num, epoch, _ := strings.Cut(s, ".")
	id, err = strconv.ParseUint(num, 10, 64)
	return id, epoch, err
}

func frame(id uint64, epoch string, data []byte) []byte {
	buf := make([]byte, 0, len(data)+32+len(epoch))
	buf = append(buf, "id: "...)
	buf = appendEventID(buf, id, epoch)
	buf = append(buf, '\n')
	for {
		i := bytes.IndexAny(data, "\r\n")
		line := data
		if i >= 0 {
			line = data[:i]
		}
		buf = append(buf, "data: "...)
		buf = append(buf, line...)
		buf = append(buf, '\n')
		if i < 0 {
			break
		}
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++ // CRLF is a single line break.
		}
		data = data[i+1:]
	}
	return append(buf, '\n')
}

// resetEvent is the payload telling a resuming client that events between its
// Last-Event-ID and the oldest retained event were lost, so it must resync its
// state from elsewhere instead of assuming a gapless stream.
type resetEvent struct {
	Type        string `json:"type"`
	LastEventID string `json:"last_event_id"`
	OldestID    uint64 `json:"oldest_id"`
	Reason      string `json:"reason"`
}

// resetFrame frames a reset event. Its id is the one just before the first
// replayed event, so the browser's last event ID stays consistent with what
// it has actually been sent if it reconnects mid-replay.
func resetFrame(id uint64, epoch, lastEventID string, oldest uint64) []byte {
	data, err := json.Marshal(resetEvent{Type: "reset", LastEventID: lastEventID, OldestID: oldest, Reason: "events missed"})
	if err != nil { // Unreachable: the struct only holds strings and integers.
		panic(err)
	}
	return frame(id, epoch, data)
}
