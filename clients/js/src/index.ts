// @xmppgw/client: a typed client for the xmppgw gateway (REST + SSE /
// WebSocket over XMPP), for browsers and Node >= 20, without dependencies.
export { login, Session, type SessionOptions, type PageOptions } from './session.js';
export { Admin, type AdminCredentials } from './admin.js';
export { EventStream, type EventsOptions, type StreamState, type WsCommand, type WsReply } from './stream.js';
export { GatewayError } from './errors.js';
export type { ClientOptions, CallOptions } from './http.js';
export type * from './events.js';
export type * from './types.js';
export type { components, paths } from './generated/openapi.js';
