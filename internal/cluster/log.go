package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Event is one entry of a stream's event log.
type Event struct {
	// Offset is the event's position, 1, 2, 3, ... within Epoch: the
	// integer id SSE clients see, assigned in Redis so it keeps increasing
	// whichever node publishes.
	Offset uint64
	// Epoch names one life of the log. It is new when the log was first
	// created or recreated (Redis lost it, or it expired), so an (offset,
	// epoch) pair is never mistaken for a position in a different history.
	Epoch string
	// Payload is the event as the publisher framed it (opaque here).
	Payload []byte
	// Reset, only in Subscription output, marks a break in continuity: the
	// events between the subscriber's position and Offset are gone (beyond
	// the window, or the epoch changed). Payload is empty; what follows has
	// offsets above Offset. It is the gateway's SSE "reset" event.
	Reset bool
	// Synced, only in Subscription output and only once, follows the
	// history the Subscription started from: what comes after it is live.
	// It carries no payload. A mirror waits for it before serving.
	Synced bool
}

// History is what ReadAfter found.
type History struct {
	// Events are oldest first: those after the asked offset when Complete,
	// else every retained event.
	Events []Event
	// Epoch is the log's current epoch; "" when the stream has no log.
	Epoch string
	// Top is the offset of the newest event published in Epoch (0 = none).
	Top uint64
	// Complete is true when Events continue exactly after the asked
	// position: same epoch (or none asked with offset 0) and nothing after it
	// trimmed. False means the caller missed events and must be told (reset).
	Complete bool
}

// publishScript appends one event and notifies subscribers in one atomic
// step (Centrifugo's engine does the same), after checking the caller's
// lease fence so a replaced owner cannot publish (issue 18, split brain).
//
// A retry after a lost reply must not append the event twice: given the
// position the caller last saw (ARGV[8] offset, ARGV[9] epoch), a log whose
// next entry is already this payload answers that entry instead.
//
// KEYS: meta, events, record. ARGV: payload, window, ttl ms, fence node
// ("" = unfenced), fence epoch, epoch to use if the log is new, channel,
// last seen offset, last seen epoch ("" = none).
// MAXLEN is exact (no "~"): the window is the promised replay depth, and
// trimming one entry per XADD is cheap at these sizes.
var publishScript = redis.NewScript(`
if ARGV[4] ~= '' then
  local rec = redis.call('HMGET', KEYS[3], 'owner', 'epoch')
  if not rec[1] then return redis.error_reply('NOTREG stream is not registered') end
  if rec[1] ~= ARGV[4] or rec[2] ~= ARGV[5] then
    return redis.error_reply('FENCED owner ' .. rec[1] .. ' epoch ' .. tostring(rec[2]))
  end
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch and ARGV[9] == epoch then
  local next = tonumber(ARGV[8]) + 1
  if tonumber(redis.call('HGET', KEYS[1], 'top')) == next then
    local e = redis.call('XRANGE', KEYS[2], '0-' .. next, '0-' .. next)
    if #e == 1 and e[1][2][2] == ARGV[1] then return {next, epoch} end
  end
end
if not epoch then
  -- A new life of the log: drop entries a lost meta hash left behind, whose
  -- ids would be above the restarted offsets.
  epoch = ARGV[6]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '0-' .. top, 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[7], top .. ',' .. epoch .. ',' .. ARGV[1])
return {top, epoch}
`)

// readScript reads the log after an offset, deciding completeness against
// the same snapshot of meta and entries. KEYS: meta, events. ARGV: after,
// epoch. Returns {epoch, top, complete, entries}.
var readScript = redis.NewScript(`
local m = redis.call('HMGET', KEYS[1], 'epoch', 'top')
local epoch = m[1]
if not epoch then return {'', '0', 0, {}} end
local top = tonumber(m[2]) or 0
local after = tonumber(ARGV[1])
local oldest = top + 1
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first > 0 then oldest = tonumber(string.sub(first[1][1], 3)) end
local complete = 0
if ARGV[2] == '' and after == 0 then
  complete = 1
elseif ARGV[2] == epoch and after <= top and after + 1 >= oldest then
  complete = 1
end
local entries
if complete == 1 then
  entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[1], '+')
else
  entries = redis.call('XRANGE', KEYS[2], '-', '+')
end
return {epoch, tostring(top), complete, entries}
`)

// Publish appends payload to the stream's log and notifies its channel, as
// one Lua script: it checks fence against the stream's record (ErrFenced,
// ErrNotRegistered; a zero LeaseFence skips the check, for logs without an
// owning stream), creates the log with a random epoch on first use,
// assigns the next offset, trims to Config.ReplayWindow, renews the
// expiry (Config.HistoryTTL) and publishes. It returns the event's offset
// and the log's epoch.
func (c *Cluster) Publish(ctx context.Context, streamID string, payload []byte, fence LeaseFence) (offset uint64, epoch string, err error) {
	return c.publishAfter(ctx, streamID, payload, fence, 0, "")
}

// publishAfter is Publish by a writer that last saw the log at (last,
// lastEpoch): if the log's next entry already is payload (an earlier try
// whose reply was lost), that entry's offset is returned instead of a
// second copy.
func (c *Cluster) publishAfter(ctx context.Context, streamID string, payload []byte, fence LeaseFence, last uint64, lastEpoch string) (offset uint64, epoch string, err error) {
	if err := checkStreamID(streamID); err != nil {
		return 0, "", err
	}
	k := c.keys
	res, err := publishScript.Run(ctx, c.rdb,
		[]string{k.Meta(streamID), k.Events(streamID), k.Record(streamID)},
		payload, c.cfg.ReplayWindow, c.cfg.HistoryTTL.Milliseconds(),
		fence.Node, fence.Epoch, randomHex(8), k.Channel(streamID), last, lastEpoch).Slice()
	if err != nil {
		return 0, "", fmt.Errorf("cluster: publish to %s: %w", streamID, scriptError(err))
	}
	if len(res) != 2 {
		return 0, "", fmt.Errorf("cluster: publish: unexpected reply %v", res)
	}
	top, ok1 := res[0].(int64)
	epoch, ok2 := res[1].(string)
	if !ok1 || !ok2 || top <= 0 {
		return 0, "", fmt.Errorf("cluster: publish: unexpected reply %v", res)
	}
	return uint64(top), epoch, nil
}

// ReadAfter reads the stream's log after offset after of epoch (see
// History for what comes back). after 0 with epoch "" asks for everything
// retained and is always complete; an offset without its epoch cannot be
// checked and is reported incomplete, as is any offset from another epoch,
// one beyond the top, or one whose successors were trimmed.
func (c *Cluster) ReadAfter(ctx context.Context, streamID string, after uint64, epoch string) (History, error) {
	if err := checkStreamID(streamID); err != nil {
		return History{}, err
	}
	res, err := readScript.Run(ctx, c.rdb, []string{c.keys.Meta(streamID), c.keys.Events(streamID)},
		strconv.FormatUint(after, 10), epoch).Slice()
	if err != nil {
		return History{}, fmt.Errorf("cluster: read %s: %w", streamID, err)
	}
	h, err := parseHistory(res)
	if err != nil {
		return History{}, fmt.Errorf("cluster: read %s: %w", streamID, err)
	}
	if h.Epoch == "" {
		h.Complete = after == 0
	}
	return h, nil
}

func parseHistory(res []any) (History, error) {
	bad := func() (History, error) { return History{}, fmt.Errorf("unexpected reply %v", res) }
	if len(res) != 4 {
		return bad()
	}
	epoch, ok1 := res[0].(string)
	topS, ok2 := res[1].(string)
	complete, ok3 := res[2].(int64)
	entries, ok4 := res[3].([]any)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return bad()
	}
	top, err := strconv.ParseUint(topS, 10, 64)
	if err != nil {
		return bad()
	}
	h := History{Epoch: epoch, Top: top, Complete: complete == 1, Events: make([]Event, 0, len(entries))}
	for _, e := range entries {
		ev, err := parseEntry(e, epoch)
		if err != nil {
			return History{}, err
		}
		h.Events = append(h.Events, ev)
	}
	return h, nil
}

// parseEntry reads one XRANGE entry: [id "0-<offset>", [field, value, ...]].
func parseEntry(e any, epoch string) (Event, error) {
	pair, ok := e.([]any)
	if !ok || len(pair) != 2 {
		return Event{}, fmt.Errorf("unexpected stream entry %v", e)
	}
	id, _ := pair[0].(string)
	fields, _ := pair[1].([]any)
	off, err := strconv.ParseUint(strings.TrimPrefix(id, "0-"), 10, 64)
	if err != nil || !strings.HasPrefix(id, "0-") {
		return Event{}, fmt.Errorf("unexpected stream entry id %q", id)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		if f, _ := fields[i].(string); f == "d" {
			v, _ := fields[i+1].(string)
			return Event{Offset: off, Epoch: epoch, Payload: []byte(v)}, nil
		}
	}
	return Event{}, fmt.Errorf("stream entry %s has no payload", id)
}

var errBadFrame = errors.New("cluster: malformed channel message")

// parseFrame reads a channel message "<offset>,<epoch>,<payload>": offset
// and epoch never contain a comma, so the payload is everything after the
// second one, whatever bytes it holds.
func parseFrame(msg string) (Event, error) {
	b := []byte(msg)
	i := bytes.IndexByte(b, ',')
	if i <= 0 {
		return Event{}, errBadFrame
	}
	j := bytes.IndexByte(b[i+1:], ',')
	if j <= 0 {
		return Event{}, errBadFrame
	}
	off, err := strconv.ParseUint(msg[:i], 10, 64)
	if err != nil || off == 0 {
		return Event{}, errBadFrame
	}
	return Event{Offset: off, Epoch: msg[i+1 : i+1+j], Payload: b[i+2+j:]}, nil
}
