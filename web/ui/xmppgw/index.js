// @xmppgw/client: a typed client for the xmppgw gateway (REST + SSE /
// WebSocket over XMPP), for browsers and Node >= 20, without dependencies.
export { login, Session } from './session.js';
export { Admin } from './admin.js';
export { EventStream } from './stream.js';
export { GatewayError } from './errors.js';
