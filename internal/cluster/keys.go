package cluster

import (
	"fmt"
	"strings"
)

// Keys is the key layout under one cluster name (the prefix p):
//
//	p:{sid}:events          Redis Stream: the stream's event log, entry ids 0-<offset>
//	p:{sid}:meta            hash: epoch (random), top (last offset)
//	p:{sid}:stream          hash: the stream's registry record (owner, lease epoch, ...)
//	p:{sid}:ch              pub/sub channel: "<offset>,<epoch>,<payload>"
//	p:{sid}:watchers        sorted set: nodes serving the stream's events, scored by expiry (unix ms)
//	p:node:<node>           string with PX TTL: the node's heartbeat (lease)
//	p:{registry}:streams    set: every registered stream id (total cap, List)
//	p:{registry}:user:<jid> set: one bare JID's stream ids (per-user cap)
//	p:{registry}:node:<id>  set: the stream ids a node owns (takeover, drain)
//	p:revoked:<jti>         string with PXAT: a revoked token, until its expiry
//	p:revocations           pub/sub channel: "<jti>,<until unix ms>"
//
// The {sid} hash tag puts all keys of one stream on one Redis Cluster slot,
// so its scripts (publish, claim, fenced updates) are single-slot. The
// registry's sets share the {registry} tag for the same reason: the cap
// check and the set updates are one script.
type Keys struct{ prefix string }

// Prefix is the cluster name every key starts with.
func (k Keys) Prefix() string { return k.prefix }

func (k Keys) stream(sid, suffix string) string { return k.prefix + ":{" + sid + "}:" + suffix }

// Events is the Redis Stream holding the stream's event log.
func (k Keys) Events(sid string) string { return k.stream(sid, "events") }

// Meta is the log's meta hash (epoch, top offset).
func (k Keys) Meta(sid string) string { return k.stream(sid, "meta") }

// Record is the stream's registry record hash.
func (k Keys) Record(sid string) string { return k.stream(sid, "stream") }

// Channel is the stream's pub/sub channel.
func (k Keys) Channel(sid string) string { return k.stream(sid, "ch") }

// Watchers is the sorted set of nodes with subscribers to the stream's
// events (a Relay mirrors it), each scored with the unix ms it expires at.
func (k Keys) Watchers(sid string) string { return k.stream(sid, "watchers") }

// Node is a node's heartbeat key.
func (k Keys) Node(node string) string { return k.prefix + ":node:" + node }

// FastpathLeader is the workgroup queues' lease, "<node> <epoch>
// <address>" (FastpathLeader); the three fastpath keys share a slot.
func (k Keys) FastpathLeader() string { return k.prefix + ":{fastpath}:leader" }

// FastpathEpoch counts the fastpath leaders (the lease's fence).
func (k Keys) FastpathEpoch() string { return k.prefix + ":{fastpath}:epoch" }

// FastpathState is the engine's state as JSON (fastpath.State).
func (k Keys) FastpathState() string { return k.prefix + ":{fastpath}:state" }

// Incarnation is a key without expiry holding a random value: it changes
// only when Redis lost its data, which is how a node whose lease expired
// tells that from a plain expiry (Heartbeat).
func (k Keys) Incarnation() string { return k.prefix + ":incarnation" }

// AllStreams is the set of every registered stream id.
func (k Keys) AllStreams() string { return k.prefix + ":{registry}:streams" }

// UserStreams is the set of one bare JID's stream ids.
func (k Keys) UserStreams(bareJID string) string { return k.prefix + ":{registry}:user:" + bareJID }

// NodeStreams is the set of stream ids a node owns.
func (k Keys) NodeStreams(node string) string { return k.prefix + ":{registry}:node:" + node }

// Revoked is a revoked token's key.
func (k Keys) Revoked(jti string) string { return k.prefix + ":revoked:" + jti }

// Revocations is the revocation broadcast channel.
func (k Keys) Revocations() string { return k.prefix + ":revocations" }

// checkStreamID rejects ids that would break the hash tag or the channel
// framing; the gateway's ids (base64url) always pass.
func checkStreamID(sid string) error {
	if sid == "" || len(sid) > 256 || strings.ContainsAny(sid, "{}") {
		return fmt.Errorf("cluster: invalid stream id %q", sid)
	}
	return nil
}
