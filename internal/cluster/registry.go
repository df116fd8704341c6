package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// LeaseFence is an owner's proof of ownership: its node id and the lease
// epoch it got from Register or Claim. Every owner-side script compares it
// with the stream's record, so a node that was replaced (its lease lapsed
// and a survivor claimed the stream, issue 18) can no longer publish or
// change the stream. The zero LeaseFence means "unfenced".
type LeaseFence struct {
	Node  string
	Epoch uint64
}

// Opaque stream state fields the gateway fills for a takeover (issue 18);
// values are the gateway's own encoding.
const (
	StatePresence      = "presence" // the last presence the stream sent
	StateRooms         = "rooms"    // joined rooms with their nicks
	StateLastArchiveID = "mam_id"   // the last archived (XEP-0359 stanza-id) message published
)

// StreamRecord is a stream's registry entry.
type StreamRecord struct {
	ID       string
	Owner    string // node holding the XMPP connection
	Epoch    uint64 // lease epoch, raised by every Register/Claim
	JID      string // bare JID
	Resource string
	Created  time.Time
	OnBehalf bool // an admin opened it without the password
	// State holds the opaque takeover fields (State* names) set with SetState.
	State map[string]string
}

// Fence is the record's current LeaseFence.
func (r StreamRecord) Fence() LeaseFence { return LeaseFence{Node: r.Owner, Epoch: r.Epoch} }

// Caps are the cluster-wide stream limits Register enforces; 0 = no limit.
type Caps struct {
	PerUser int // XMPPGW_MAX_STREAMS_PER_USER
	Total   int // XMPPGW_MAX_STREAMS
}

// reserveScript checks both caps and adds the stream to the registry's
// sets in one step, so two nodes cannot both admit a user's last slot.
// KEYS: all, user, node. ARGV: stream id, per-user cap, total cap.
var reserveScript = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return redis.error_reply('EXISTS') end
local per, total = tonumber(ARGV[2]), tonumber(ARGV[3])
if per > 0 and redis.call('SCARD', KEYS[2]) >= per then return redis.error_reply('USERCAP') end
if total > 0 and redis.call('SCARD', KEYS[1]) >= total then return redis.error_reply('TOTALCAP') end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
`)

// createScript writes a new record with lease epoch 1. KEYS: record.
// ARGV: owner, jid, resource, created ms, on_behalf.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS') end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'jid', ARGV[2], 'resource', ARGV[3], 'created', ARGV[4], 'on_behalf', ARGV[5])
return redis.call('HINCRBY', KEYS[1], 'epoch', 1)
`)

// fenceCheck is the common head of the fenced scripts: KEYS[1] is the
// record, ARGV[1]/ARGV[2] the fence ("" node = unfenced).
const fenceCheck = `
local rec = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'jid')
if not rec[1] then return redis.error_reply('NOTREG') end
if ARGV[1] ~= '' and (rec[1] ~= ARGV[1] or rec[2] ~= ARGV[2]) then return redis.error_reply('FENCED') end
`

// deleteScript removes the record and the stream's log. KEYS: record,
// meta, events. Returns {owner, jid} for the registry cleanup.
var deleteScript = redis.NewScript(fenceCheck + `
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {rec[1], rec[3]}
`)

// setStateScript sets opaque state fields. KEYS: record. ARGV: fence, then
// field/value pairs (fields already prefixed).
var setStateScript = redis.NewScript(fenceCheck + `
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
return 1
`)

// claimScript moves ownership from one node to the caller and raises the
// lease epoch, only if the stream is still owned by that node: of several
// survivors racing for a dead node's stream exactly one wins. KEYS: record.
// ARGV: from node, new owner.
var claimScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return redis.error_reply('NOTREG') end
if owner ~= ARGV[1] then return redis.error_reply('CLAIMLOST') end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'epoch', 1)
`)

const statePrefix = "s:"

// Register records a new stream owned by this node, enforcing caps
// cluster-wide (ErrUserCap, ErrTotalCap; ErrStreamExists for a used id),
// and returns its LeaseFence. rec.ID, rec.JID are required; Owner and Epoch
// are set here; a zero Created means now.
//
// The caps and the registry's sets change in one script on the {registry}
// slot, the record in a second one on the stream's slot; if the second
// fails the reservation is undone. A node dying between the two leaves an
// id in the sets without a record, which List skips and Unregister or a
// takeover sweep removes.
func (c *Cluster) Register(ctx context.Context, rec StreamRecord, caps Caps) (LeaseFence, error) {
	if err := checkStreamID(rec.ID); err != nil {
		return LeaseFence{}, err
	}
	if rec.JID == "" {
		return LeaseFence{}, fmt.Errorf("cluster: register %s: empty JID", rec.ID)
	}
	if rec.Created.IsZero() {
		rec.Created = time.Now()
	}
	k, node := c.keys, c.cfg.Node
	regKeys := []string{k.AllStreams(), k.UserStreams(rec.JID), k.NodeStreams(node)}
	if err := reserveScript.Run(ctx, c.rdb, regKeys, rec.ID, caps.PerUser, caps.Total).Err(); err != nil {
		return LeaseFence{}, fmt.Errorf("cluster: register %s: %w", rec.ID, scriptError(err))
	}
	epoch, err := createScript.Run(ctx, c.rdb, []string{k.Record(rec.ID)},
		node, rec.JID, rec.Resource, rec.Created.UnixMilli(), boolArg(rec.OnBehalf)).Uint64()
	if err != nil {
		c.unindex(ctx, rec.ID, node, rec.JID)
		return LeaseFence{}, fmt.Errorf("cluster: register %s: %w", rec.ID, scriptError(err))
	}
	return LeaseFence{Node: node, Epoch: epoch}, nil
}

// unindex removes a stream id from the registry's sets.
func (c *Cluster) unindex(ctx context.Context, sid, node, jid string) {
	k := c.keys
	_, _ = c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, k.AllStreams(), sid)
		p.SRem(ctx, k.UserStreams(jid), sid)
		p.SRem(ctx, k.NodeStreams(node), sid)
		return nil
	})
}

// Unregister deletes the stream's record and event log if fence still
// holds (ErrFenced otherwise; the zero fence forces it, for admin removal
// of a dead node's stream) and removes it from the registry's sets.
func (c *Cluster) Unregister(ctx context.Context, streamID string, fence LeaseFence) error {
	if err := checkStreamID(streamID); err != nil {
		return err
	}
	k := c.keys
	res, err := deleteScript.Run(ctx, c.rdb,
		[]string{k.Record(streamID), k.Meta(streamID), k.Events(streamID)},
		fence.Node, fence.Epoch).StringSlice()
	if err != nil {
		return fmt.Errorf("cluster: unregister %s: %w", streamID, scriptError(err))
	}
	if len(res) != 2 {
		return fmt.Errorf("cluster: unregister %s: unexpected reply %v", streamID, res)
	}
	c.unindex(ctx, streamID, res[0], res[1])
	return nil
}

// Get returns the stream's record, or ErrNotRegistered.
func (c *Cluster) Get(ctx context.Context, streamID string) (StreamRecord, error) {
	if err := checkStreamID(streamID); err != nil {
		return StreamRecord{}, err
	}
	m, err := c.rdb.HGetAll(ctx, c.keys.Record(streamID)).Result()
	if err != nil {
		return StreamRecord{}, fmt.Errorf("cluster: get %s: %w", streamID, err)
	}
	if len(m) == 0 {
		return StreamRecord{}, fmt.Errorf("cluster: get %s: %w", streamID, ErrNotRegistered)
	}
	return parseRecord(streamID, m), nil
}

// listBatch is how many records List fetches per pipelined round trip.
const listBatch = 500

// List returns every registered stream of the cluster (GET /admin/streams),
// unordered. Ids whose record is gone are skipped.
func (c *Cluster) List(ctx context.Context) ([]StreamRecord, error) {
	var out []StreamRecord
	var cursor uint64
	for {
		ids, next, err := c.rdb.SScan(ctx, c.keys.AllStreams(), cursor, "", listBatch).Result()
		if err != nil {
			return nil, fmt.Errorf("cluster: list: %w", err)
		}
		recs, err := c.records(ctx, ids)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	// SSCAN may return an element more than once; keep one.
	seen := make(map[string]struct{}, len(out))
	uniq := out[:0]
	for _, r := range out {
		if _, dup := seen[r.ID]; !dup {
			seen[r.ID] = struct{}{}
			uniq = append(uniq, r)
		}
	}
	return uniq, nil
}

// NodeStreams returns the ids of the streams the registry lists for node
// (its own for a drain, a dead node's for a takeover).
func (c *Cluster) NodeStreams(ctx context.Context, node string) ([]string, error) {
	ids, err := c.rdb.SMembers(ctx, c.keys.NodeStreams(node)).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: streams of node %s: %w", node, err)
	}
	return ids, nil
}

func (c *Cluster) records(ctx context.Context, ids []string) ([]StreamRecord, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, c.keys.Record(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: list: %w", err)
	}
	out := make([]StreamRecord, 0, len(ids))
	for i, cmd := range cmds {
		if m := cmd.Val(); len(m) > 0 {
			out = append(out, parseRecord(ids[i], m))
		}
	}
	return out, nil
}

// SetState stores opaque takeover state (State* fields) on the stream's
// record, if fence still holds.
func (c *Cluster) SetState(ctx context.Context, streamID string, fence LeaseFence, fields map[string]string) error {
	if err := checkStreamID(streamID); err != nil {
		return err
	}
	args := []any{fence.Node, fence.Epoch}
	for f, v := range fields {
		args = append(args, statePrefix+f, v)
	}
	if err := setStateScript.Run(ctx, c.rdb, []string{c.keys.Record(streamID)}, args...).Err(); err != nil {
		return fmt.Errorf("cluster: set state of %s: %w", streamID, scriptError(err))
	}
	return nil
}

// Claim makes this node the stream's owner if fromNode still owns it, and
// returns the new LeaseFence (the old owner's is stale from then on). Of
// several nodes claiming the same stream one succeeds; the others get
// ErrClaimLost. Claim does not check that fromNode is dead: a takeover
// checks NodeAlive first, a graceful drain hands over a live node's stream.
func (c *Cluster) Claim(ctx context.Context, streamID, fromNode string) (LeaseFence, error) {
	if err := checkStreamID(streamID); err != nil {
		return LeaseFence{}, err
	}
	node := c.cfg.Node
	epoch, err := claimScript.Run(ctx, c.rdb, []string{c.keys.Record(streamID)}, fromNode, node).Uint64()
	if err != nil {
		return LeaseFence{}, fmt.Errorf("cluster: claim %s from %s: %w", streamID, fromNode, scriptError(err))
	}
	// The index follows; a failure here only delays a later takeover sweep,
	// the record (and so the fence) is already right.
	if err := c.rdb.SMove(ctx, c.keys.NodeStreams(fromNode), c.keys.NodeStreams(node), streamID).Err(); err != nil {
		return LeaseFence{Node: node, Epoch: epoch}, fmt.Errorf("cluster: claim %s: moving the index entry: %w", streamID, err)
	}
	return LeaseFence{Node: node, Epoch: epoch}, nil
}

func parseRecord(id string, m map[string]string) StreamRecord {
	r := StreamRecord{ID: id, Owner: m["owner"], JID: m["jid"], Resource: m["resource"], OnBehalf: m["on_behalf"] == "1"}
	r.Epoch, _ = strconv.ParseUint(m["epoch"], 10, 64)
	if ms, err := strconv.ParseInt(m["created"], 10, 64); err == nil {
		r.Created = time.UnixMilli(ms)
	}
	for f, v := range m {
		if name, ok := strings.CutPrefix(f, statePrefix); ok {
			if r.State == nil {
				r.State = map[string]string{}
			}
			r.State[name] = v
		}
	}
	return r
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
