// Package cluster is the gateway's Redis engine for running several nodes
// as one (issue 17; takeover in issue 18). It owns, in Redis:
//
//   - the key layout: every key of one stream shares the hash tag
//     {streamid}, so a stream's scripts stay on one Redis Cluster slot;
//   - the per-stream event log (Centrifugo's model): a meta hash with a
//     random epoch and the top offset, a Redis Stream capped at the replay
//     window, and a pub/sub channel, all written by one Lua script per
//     publish so live delivery and history never disagree;
//   - the Hub, a node's single pub/sub connection, and Subscriptions that
//     subscribe first, read history second and drop duplicates by offset;
//   - the stream registry: node heartbeats (leases), stream records with an
//     owner and a fencing epoch, per-user and total caps counted
//     cluster-wide, and Claim for taking a dead node's stream over;
//   - the token revocation store and its broadcast.
//
// It knows nothing of XMPP or JWT and must not import go-xmpp, mellium or
// golang-jwt: payloads, presence and room state are opaque bytes the
// gateway fills, token ids are plain strings. Nothing in cmd/, api/,
// gateway/ or sse/ uses it yet; docs/cluster.md says what wires it.
package cluster
