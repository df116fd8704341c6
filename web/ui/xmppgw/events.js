// Event payloads of the gateway's event stream (SSE and WebSocket).
//
// Written by hand: the OpenAPI document describes the REST routes but not
// the JSON objects inside the event stream. Every interface below mirrors a
// Go type, named in its comment (gateway/events.go, gateway/muc.go,
// gateway/pubsub.go, gateway/roster.go, fastpath/fastpath.go, sse/frame.go);
// a field the Go type marks omitempty is optional here.
export {};
