// A small client for xmppgw's REST + Server-Sent Events API, written to be
// read. The rules it shows:
//
//  * fetch() carries the token as "Authorization: Bearer <token>".
//  * EventSource cannot send headers, so the events URL carries ?token=.
//    (Alternatively log in with ?cookie=true and let the HttpOnly cookie do it.)
//  * EventSource reconnects by itself and sends Last-Event-ID; the gateway
//    replays exactly what was missed. When the browser gives up (an HTTP
//    error such as 401), or when we switch to a refreshed token, we open a new
//    EventSource with ?last_event_id= so nothing is lost either way.
//  * Tokens expire: refresh before that with POST /chat/{streamid}/token and
//    reopen the event stream with the new token.
//
// Every URL is relative to the page, so it also works behind a path prefix.

export const API = 'restapi/v1/chat';

/** An error answer of the gateway: {code, http, error, request_id}. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.requestId = body && body.request_id;
  }
}

async function parse(res) {
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  const body = type.includes('json') ? await res.json().catch(() => null) : null;
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

/** Logs in with a password; resolves to {streamid, jid, token, expires_at}. */
export async function login(username, password, resource = 'web') {
  const res = await fetch(`${API}/${encodeURIComponent(username)}/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ password, resource }),
  });
  return parse(res);
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
  #es = null;
  #retries = 0;
  #reopenTimer = 0;
  #refreshTimer = 0;
  #resumeFrom = 0;

  /** @param saved {streamid, jid, token, expires_at, lastEventId?} */
  constructor(saved) {
    super();
    Object.assign(this, saved);
    this.lastEventId = saved.lastEventId || '';
    this.state = 'connecting';
  }

  get bareJid() { return bare(this.jid); }

  toJSON() {
    const { streamid, jid, token, expires_at, lastEventId } = this;
    return { streamid, jid, token, expires_at, lastEventId };
  }

  /** A REST call on this stream: path is relative to /chat/{streamid}. */
  async call(method, path, { json, text, query } = {}) {
    const url = new URL(`${API}/${this.streamid}${path}`, document.baseURI);
    for (const [k, v] of Object.entries(query || {})) url.searchParams.set(k, v);
    const headers = { Authorization: `Bearer ${this.token}` };
    let body;
    if (json !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
    else if (text !== undefined) { headers['Content-Type'] = 'text/plain; charset=utf-8'; body = text; }
    const res = await fetch(url, { method, headers, body });
    try {
      return await parse(res);
    } catch (err) {
      // 401: token revoked or expired; 40401: the stream is gone (logoff,
      // admin kill, idle expiry). Either way this session is over.
      if (err.status === 401 || err.code === 40401) this.#end('expired');
      throw err;
    }
  }

  sendMessage(to, fields) {
    return this.call('POST', `/messages/${encodeURIComponent(to)}`, { json: fields });
  }

  setPresence(fields) { return this.call('POST', '/presence', { json: fields }); }

  /**
   * Opens the event stream. After a page reload, pass resumeFrom = the last
   * event id already shown: the stream's retained events are replayed from
   * the start (so presence is rebuilt) and the ones up to resumeFrom are
   * flagged as replayed (so messages are not shown twice).
   */
  connect({ resumeFrom } = {}) {
    if (resumeFrom) { this.#resumeFrom = Number(resumeFrom); this.lastEventId = ''; }
    this.#open();
    this.#scheduleRefresh();
  }

  #open() {
    this.#es?.close();
    const q = new URLSearchParams({ token: this.token });
    if (this.lastEventId) q.set('last_event_id', this.lastEventId);
    const es = new EventSource(`${API}/${this.streamid}/events?${q}`);
    this.#es = es;
    es.onopen = () => { this.#retries = 0; this.#setState('live'); };
    es.onmessage = (e) => this.#onMessage(e);
    es.onerror = () => {
      if (es !== this.#es || this.state === 'ended') return;
      if (es.readyState === EventSource.CONNECTING) {
        // The browser retries by itself, sending Last-Event-ID.
        this.#setState('reconnecting');
        return;
      }
      // CLOSED: the browser gave up (an HTTP error: 401 after the token
      // expired or was revoked, 429 too many subscribers, ...). Get a fresh
      // token and reopen with ?last_event_id=.
      es.close();
      this.#setState('reconnecting');
      this.#scheduleReopen();
    };
  }

  #onMessage(e) {
    const id = e.lastEventId;
    let event;
    try { event = JSON.parse(e.data); } catch { return; }
    // Ids are increasing per stream: anything at or below the last one seen
    // is a duplicate from overlapping reconnects.
    if (id && this.lastEventId && event.type !== 'reset' && Number(id) <= Number(this.lastEventId)) return;
    const replayed = Boolean(this.#resumeFrom && id && Number(id) <= this.#resumeFrom);
    if (id) this.lastEventId = id;
    this.dispatchEvent(new CustomEvent('event', { detail: { event, id, replayed } }));
    if (event.type === 'stream' && event.state === 'offline') this.#end('offline');
    this.dispatchEvent(new Event('saved'));
  }

  #scheduleReopen() {
    clearTimeout(this.#reopenTimer);
    const delay = Math.min(15000, 1000 * 2 ** this.#retries++) + Math.random() * 250;
    this.#reopenTimer = setTimeout(async () => {
      try {
        await this.refresh(false);
        this.#open();
      } catch (err) {
        if (this.state !== 'ended') this.#scheduleReopen(); // network down: try again later
      }
    }, delay);
  }

  /** Trades the token for a fresh one, then (by default) reopens the events. */
  async refresh(reopen = true) {
    const r = await this.call('POST', '/token');
    this.token = r.token;
    this.expires_at = r.expires_at;
    this.dispatchEvent(new Event('saved'));
    this.#scheduleRefresh();
    // An EventSource ends when the token that opened it expires, so move
    // it to the new token now; Last-Event-ID makes the switch lossless.
    if (reopen && this.state !== 'ended') this.#open();
  }

  #scheduleRefresh() {
    clearTimeout(this.#refreshTimer);
    const left = new Date(this.expires_at).getTime() - Date.now();
    if (!Number.isFinite(left)) return;
    // Well before expiry: at 80% of what is left, and at least a minute early.
    const wait = Math.max(1000, Math.min(left * 0.8, left - 60000));
    this.#refreshTimer = setTimeout(() => this.refresh().catch(() => {}), Math.min(wait, 2 ** 31 - 1));
  }

  async logoff() {
    try { await this.call('POST', '/logoff'); } finally { this.#end('logoff'); }
  }

  close() {
    clearTimeout(this.#reopenTimer);
    clearTimeout(this.#refreshTimer);
    this.#es?.close();
    this.#es = null;
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
