// Package sse is the transport-agnostic Server-Sent Events hub of the gateway.
//
// It owns topics (opaque strings; the gateway uses a stream id), a bounded
// per-topic replay buffer for Last-Event-ID resumption, fan-out of every event
// to every subscriber of a topic, slow-subscriber eviction, heartbeats and the
// text/event-stream wire format defined by the WHATWG HTML standard, section
// "Server-sent events" (https://html.spec.whatwg.org/multipage/server-sent-events.html).
//
// Payloads are opaque JSON object bytes produced by the caller. This package
// must not import XMPP or authentication (JWT) code: callers translate their
// domain into topics, payloads and ServeOptions (Context, OnClose).
package sse
