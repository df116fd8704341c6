// The demo page's glue to the gateway: a thin adapter over the typed
// client package (clients/js, built into ui/xmppgw/ by `make js-build`), so
// the page exercises exactly what applications get. What the package does:
//
//  * fetch() carries the token as "Authorization: Bearer <token>", the event
//    stream included (SSE over fetch, so the token never goes in a URL).
//  * The event stream reconnects with backoff and Last-Event-ID; the gateway
//    replays exactly what was missed (or sends a typed `reset`).
//  * Tokens expire: the session refreshes before that and moves the event
//    stream to the new token without losing anything.
//
// Every URL is relative to the page, so it also works behind a path prefix.
import * as gw from './xmppgw/index.js';

/** An error answer of the gateway: status, code (stable), requestId, retryAfter. */
export const ApiError = gw.GatewayError;

const options = () => ({ baseUrl: new URL('.', document.baseURI) });

/** Logs in with a password; resolves to {streamid, jid, token, expires_at}. */
export async function login(username, password, resource = 'web') {
  const s = await gw.login({ ...options(), resource, autoRefresh: false }, username, password);
  return s.toJSON();
}

export const bare = (jid) => String(jid || '').split('/')[0];

/**
 * One logged-in stream: REST calls with its token and its event stream.
 * Dispatches 'state' ({state}), 'event' ({event, id, replayed}), 'saved'
 * (the session changed: persist it) and 'ended' ({reason}).
 *
 * state: connecting | live | reconnecting | ended
 */
export class Session extends EventTarget {
  #s;
  #events = null;
  #resumeFrom = 0;

  /** @param saved {streamid, jid, token, expires_at, lastEventId?} */
  constructor(saved) {
    super();
    this.#s = new gw.Session(options(), saved);
    this.streamid = saved.streamid;
    this.jid = saved.jid;
    this.lastEventId = saved.lastEventId || '';
    this.state = 'connecting';
    this.#s.onToken(() => this.dispatchEvent(new Event('saved')));
  }

  get bareJid() { return bare(this.jid); }
  get token() { return this.#s.token; }
  /** The package's typed Session (every route as a method). */
  get client() { return this.#s; }

  toJSON() {
    return { ...this.#s.toJSON(), lastEventId: this.lastEventId };
  }

  /** A REST call on this stream: path is relative to /chat/{streamid}. */
  async call(method, path, { json, text, query } = {}) {
    try {
      return await this.#s.call(method, path, { json, text, query });
    } catch (err) {
      // 401: token revoked or expired; 40401: the stream is gone (logoff,
      // admin kill, idle expiry). Either way this session is over.
      if (err.status === 401 || err.code === 40401) this.#end('expired');
      throw err;
    }
  }

  sendMessage(to, fields) { return this.#s.sendMessage(to, fields); }

  setPresence(fields) { return this.#s.setPresence(fields); }

  /**
   * Opens the event stream. After a page reload, pass resumeFrom = the last
   * event id already shown: the stream's retained events are replayed from
   * the start (so presence is rebuilt) and the ones up to resumeFrom are
   * flagged as replayed (so messages are not shown twice).
   */
  connect({ resumeFrom } = {}) {
    if (resumeFrom) { this.#resumeFrom = Number(String(resumeFrom).split('.')[0]); this.lastEventId = ''; }
    this.#events?.close();
    const events = this.#s.events({ lastEventId: this.lastEventId || undefined, maxBackoff: 15000 });
    this.#events = events;
    events.onState((st, err) => {
      if (events !== this.#events) return;
      if (st === 'open') this.#setState('live');
      else if (st === 'reconnecting') this.#setState('reconnecting');
      else if (st === 'closed' && err) this.#end('expired');
    });
    events.on('*', (event) => {
      const id = event.event_id;
      const replayed = Boolean(this.#resumeFrom && id && Number(id.split('.')[0]) <= this.#resumeFrom);
      if (id) this.lastEventId = id;
      this.dispatchEvent(new CustomEvent('event', { detail: { event, id, replayed } }));
      if (event.type === 'stream' && event.state === 'offline') this.#end('offline');
      this.dispatchEvent(new Event('saved'));
    });
  }

  /** Trades the token for a fresh one; the event stream moves to it by itself. */
  async refresh() {
    await this.#s.refreshToken();
  }

  async logoff() {
    try { await this.#s.logoff(); } finally { this.#end('logoff'); }
  }

  close() {
    this.#events?.close();
    this.#events = null;
    this.#s.close();
  }

  #setState(state) {
    if (this.state === state || this.state === 'ended') return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state } }));
  }

  #end(reason) {
    if (this.state === 'ended') return;
    this.close();
    this.#setState('ended');
    this.dispatchEvent(new CustomEvent('ended', { detail: { reason } }));
  }
}

/**
 * Optional features, discovered from the gateway's own OpenAPI document so
 * the page works against gateways with and without them: typing (XEP-0085
 * chat states), delivered/read markers (XEP-0333) and rooms (XEP-0045).
 * Each entry is an operation {method, path, op} or null.
 */
export async function discoverFeatures() {
  const none = { chatstate: null, marker: null, roster: null, roomJoin: null, roomLeave: null, roomSend: null, messageFields: new Set(['body']) };
  let spec;
  try {
    const res = await fetch('openapi/swagger.json');
    if (!res.ok) return none;
    spec = await res.json();
  } catch {
    return none;
  }
  const ops = [];
  for (const [path, methods] of Object.entries(spec.paths || {})) {
    for (const [method, op] of Object.entries(methods)) {
      if (path.includes('{streamid}')) ops.push({ method: method.toUpperCase(), path, op, spec });
    }
  }
  const find = (method, re) => ops.find((o) => o.method === method && re.test(o.path)) || null;
  const send = find('POST', /\/messages\/\{[^}]+\}$/);
  return {
    // e.g. POST …/chatstate/{state}/{jid}
    chatstate: find('POST', /\/(chatstates?|typing)(\/|$)/),
    // e.g. POST …/messages/{jid}/{id}/{marker}
    marker: find('POST', /\/(markers?|receipts?|displayed)(\/|$)|\{marker\}/),
    // e.g. GET …/roster: the contact list with presence, when the gateway has one
    roster: find('GET', /\/(roster|contacts)$/),
    roomJoin: find('PUT', /\/rooms\/\{[^}]+\}$/) || find('POST', /\/rooms\/\{[^}]+\}\/join$/),
    roomLeave: find('DELETE', /\/rooms\/\{[^}]+\}$/) || find('POST', /\/rooms\/\{[^}]+\}\/leave$/),
    roomSend: find('POST', /\/rooms\/\{[^}]+\}(\/messages)?$/),
    messageFields: new Set(bodyFields(send) || ['body']),
  };
}

// Parameter names an operation may use for the same value.
const ALIASES = {
  to: ['to', 'jid', 'contact', 'with'],
  state: ['state', 'chatstate', 'chat_state'],
  marker: ['marker', 'type', 'kind'],
  id: ['id', 'messageid', 'message_id', 'msgid', 'stanza_id'],
  room: ['room', 'roomname', 'room_name', 'roomjid', 'name'],
  nick: ['nick', 'nickname'],
  body: ['body', 'text', 'message'],
};

function valueFor(name, values) {
  const n = name.toLowerCase();
  for (const [key, names] of Object.entries(ALIASES)) {
    if (names.includes(n) && values[key] !== undefined) return values[key];
  }
  return values[n];
}

function bodyFields(o) {
  const p = o && (o.op.parameters || []).find((x) => x.in === 'body');
  const ref = p && p.schema && p.schema.$ref;
  if (!ref) return null;
  const def = o.spec.definitions && o.spec.definitions[ref.split('/').pop()];
  return def && def.properties ? Object.keys(def.properties) : null;
}

/**
 * Calls a discovered operation, filling its path, query and JSON body
 * parameters from values by name (see ALIASES). Only the fields the
 * operation's schema declares are sent.
 */
export function callOperation(session, o, values) {
  const prefix = `/restapi/v1/chat/{streamid}`;
  let path = o.path.startsWith(prefix) ? o.path.slice(prefix.length) : o.path;
  path = path.replace(/\{([^}]+)\}/g, (_, name) => encodeURIComponent(valueFor(name, values) ?? ''));
  const query = {};
  const opts = {};
  for (const p of o.op.parameters || []) {
    if (p.in === 'query') {
      const v = valueFor(p.name, values);
      if (v !== undefined) query[p.name] = v;
    } else if (p.in === 'body') {
      const fields = bodyFields(o);
      if (fields) {
        opts.json = {};
        for (const f of fields) {
          const v = valueFor(f, values);
          if (v !== undefined) opts.json[f] = v;
        }
      } else if (values.body !== undefined) {
        opts.text = values.body;
      }
    }
  }
  return session.call(o.method, path, { ...opts, query });
}
