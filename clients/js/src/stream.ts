// session.events(): one logical event stream over SSE or WebSocket that
// survives drops. The rules it follows:
//
//  * SSE goes over fetch() so the token travels in the Authorization header,
//    never in the URL. WebSocket cannot send headers, so it uses ?token=.
//  * After any drop it reconnects with exponential backoff (full jitter) and
//    resumes with Last-Event-ID (SSE) or ?last_event_id= (WebSocket); the
//    gateway replays exactly what was missed, or sends a `reset` event when
//    the id is older than its replay window. Overlapping replays are
//    deduplicated by id.
//  * The gateway ends a stream when the token that opened it expires, so when
//    the session refreshes its token the stream reconnects with the new one
//    at once (lossless, thanks to the id).
//  * 401 → refresh the token once and retry; 404 (stream gone), 410 (lost
//    with its cluster node) and a revoked token end the stream with a
//    GatewayError; 429/503 wait for Retry-After.
import { GatewayError } from './errors.js';
import type { EventOf, GatewayEvent, GatewayEventType } from './events.js';
import type { MessageRequest, PresenceRequest } from './types.js';
import type { Session } from './session.js';

/** How events() connects. */
export interface EventsOptions {
  /** "sse" (default) or "websocket". */
  transport?: 'sse' | 'websocket';
  /** Resume after this event id (e.g. one saved before a page reload). */
  lastEventId?: string;
  /** Closes the stream. */
  signal?: AbortSignal;
  /** First reconnect delay in ms (default 500); doubles per failed attempt. */
  minBackoff?: number;
  /** Upper bound of the reconnect delay in ms (default 30000). */
  maxBackoff?: number;
  /** Reconnect when nothing (not even a heartbeat, every 15 s) arrived for this long, in ms (default 45000). */
  idleTimeout?: number;
  /** Default timeout of WebSocket commands in ms (default 10000). */
  commandTimeout?: number;
  /** A WebSocket constructor (default globalThis.WebSocket; Node 20 needs --experimental-websocket). */
  WebSocket?: typeof WebSocket;
}

/** The connection state of an EventStream. */
export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A WebSocket command (api/ws.go); `id` is filled in by send(). */
export type WsCommand =
  | { type: 'message'; to: string; body?: string; message?: MessageRequest }
  | { type: 'room_message'; room: string; service?: string; body?: string; message?: MessageRequest }
  | { type: 'presence'; presence: PresenceRequest }
  | { type: 'chatstate'; to: string; state: string }
  | { type: 'marker'; to: string; marker: 'received' | 'displayed'; message_id: string; extraParams?: Record<string, unknown> }
  | { type: 'join'; room: string; service?: string; nick?: string; password?: string }
  | { type: 'leave'; room: string; service?: string }
  | { type: 'ping' };

/** The ok answer to a WebSocket command: {type:"ok", "reply-to", ...result}. */
export interface WsReply {
  type: 'ok';
  'reply-to': string;
  id?: string;
  [field: string]: unknown;
}

type Listener = (ev: GatewayEvent) => void;

interface Parsed { n: number; epoch: string }
function parseId(id: string): Parsed | null {
  const [num, epoch = ''] = id.split('.', 2);
  const n = Number(num);
  return Number.isFinite(n) && num !== '' ? { n, epoch } : null;
}

/** True when id is at or before last in the same life of the log: a duplicate. */
function seen(id: string, last: string): boolean {
  const a = parseId(id);
  const b = parseId(last);
  return !!a && !!b && a.epoch === b.epoch && a.n <= b.n;
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  if (signal.aborted) return resolve();
  const t = setTimeout(done, ms);
  function done() { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); }
  signal.addEventListener('abort', done, { once: true });
});

const isAbort = (err: unknown) => (err as { name?: string })?.name === 'AbortError';

let commandSeq = 0;

/**
 * EventStream is a session's event stream. Iterate it (`for await`), or
 * register handlers with on(); events are queued for iteration from the
 * moment an iterator is first asked for. It reconnects by itself until
 * close(), the signal, or a terminal error (which the iterator throws and
 * `closed` rejects with).
 */
export class EventStream implements AsyncIterable<GatewayEvent> {
  /** The id of the last event delivered: save it to resume after a reload. */
  lastEventId: string;
  /** The connection state. */
  state: StreamState = 'connecting';
  /** Settles when the stream has ended: resolves on close(), rejects on a terminal error. */
  readonly closed: Promise<void>;
  /** Connections opened so far (1 + the reconnects). */
  connects = 0;

  readonly #session: Session;
  readonly #opts: Required<Omit<EventsOptions, 'lastEventId' | 'signal' | 'WebSocket'>> & Pick<EventsOptions, 'WebSocket'>;
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #stateListeners = new Set<(s: StreamState, err?: unknown) => void>();
  readonly #stop = new AbortController();
  #conn: AbortController | null = null;
  #queue: GatewayEvent[] | null = null;
  #waiters: { resolve: (r: IteratorResult<GatewayEvent>) => void; reject: (e: unknown) => void }[] = [];
  #error: unknown = null;
  #done = false;
  #resolveClosed!: () => void;
  #rejectClosed!: (e: unknown) => void;
  #ws: WebSocket | null = null;
  #wsOpen: { promise: Promise<void>; resolve: () => void; settled: boolean } | null = null;
  readonly #pending = new Map<string, { resolve: (r: WsReply) => void; reject: (e: unknown) => void; timer: ReturnType<typeof setTimeout>; sent: boolean }>();
  #reconnectNow = false;
  #unsubToken: () => void;

  constructor(session: Session, opts: EventsOptions = {}) {
    this.#session = session;
    this.lastEventId = opts.lastEventId ?? '';
    this.#opts = {
      transport: opts.transport ?? 'sse',
      minBackoff: opts.minBackoff ?? 500,
      maxBackoff: opts.maxBackoff ?? 30000,
      idleTimeout: opts.idleTimeout ?? 45000,
      commandTimeout: opts.commandTimeout ?? 10000,
      WebSocket: opts.WebSocket,
    };
    this.closed = new Promise<void>((resolve, reject) => { this.#resolveClosed = resolve; this.#rejectClosed = reject; });
    this.closed.catch(() => {}); // observed through the iterator or by the caller
    if (opts.signal) {
      if (opts.signal.aborted) queueMicrotask(() => this.close());
      else opts.signal.addEventListener('abort', () => this.close(), { once: true });
    }
    // A refreshed token: move the connection to it now, before the old one
    // expires and the gateway ends the stream.
    this.#unsubToken = session.onToken(() => {
      if (this.#done) return;
      this.#reconnectNow = true;
      this.#conn?.abort();
    });
    void this.#run();
  }

  /** The transport in use. */
  get transport(): 'sse' | 'websocket' { return this.#opts.transport; }

  /** Calls fn for every event of that type ('*': all); returns the unsubscribe function. */
  on<T extends GatewayEventType>(type: T, fn: (ev: EventOf<T>) => void): () => void;
  on(type: '*', fn: (ev: GatewayEvent) => void): () => void;
  on(type: string, fn: Listener): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Calls fn on every state change (with the error when the stream ends on one). */
  onState(fn: (s: StreamState, err?: unknown) => void): () => void {
    this.#stateListeners.add(fn);
    return () => this.#stateListeners.delete(fn);
  }

  /** Resolves with the next event matching pred (default: any); rejects on timeout or end. */
  next<T extends GatewayEventType>(type: T, pred?: (ev: EventOf<T>) => boolean, opts?: { timeout?: number; signal?: AbortSignal }): Promise<EventOf<T>> {
    return new Promise((resolve, reject) => {
      const off = this.on(type, ((ev: EventOf<T>) => {
        if (pred && !pred(ev)) return;
        cleanup();
        resolve(ev);
      }) as never);
      const timer = opts?.timeout ? setTimeout(() => { cleanup(); reject(new GatewayError(0, undefined, undefined, `no ${type} event within ${opts.timeout} ms`)); }, opts.timeout) : null;
      const onEnd = () => { cleanup(); reject(this.#error ?? new GatewayError(0, undefined, undefined, 'event stream closed')); };
      const offState = this.onState((s) => { if (s === 'closed') onEnd(); });
      const onAbort = () => { cleanup(); reject(opts?.signal?.reason); };
      opts?.signal?.addEventListener('abort', onAbort, { once: true });
      function cleanup() { off(); offState(); if (timer) clearTimeout(timer); opts?.signal?.removeEventListener('abort', onAbort); }
    });
  }

  /**
   * Sends a WebSocket command; resolves with the gateway's ok answer,
   * rejects with a GatewayError (its error frame; status 0 on timeout or
   * when the socket closed before the answer). Waits for the socket to be
   * open, within the timeout.
   */
  async send(cmd: WsCommand, opts: { timeout?: number; signal?: AbortSignal } = {}): Promise<WsReply> {
    if (this.#opts.transport !== 'websocket') throw new Error('send() needs events({transport: "websocket"})');
    const timeout = opts.timeout ?? this.#opts.commandTimeout;
    const id = `c${++commandSeq}.${Math.random().toString(36).slice(2, 8)}`;
    return new Promise<WsReply>((resolve, reject) => {
      const fail = (e: unknown) => { clearTimeout(timer); this.#pending.delete(id); opts.signal?.removeEventListener('abort', onAbort); reject(e); };
      const timer = setTimeout(() => fail(new GatewayError(0, undefined, undefined, `no answer to ${cmd.type} within ${timeout} ms`)), timeout);
      const onAbort = () => fail(opts.signal?.reason);
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        resolve: (r) => { clearTimeout(timer); opts.signal?.removeEventListener('abort', onAbort); this.#pending.delete(id); resolve(r); },
        reject: fail,
        timer,
        sent: false,
      });
      const write = () => {
        const p = this.#pending.get(id);
        if (!p) return;
        if (!this.#ws || this.#ws.readyState !== 1) { void this.#whenOpen().then(write); return; }
        this.#ws.send(JSON.stringify({ ...cmd, id }));
        p.sent = true;
      };
      write();
    });
  }

  /** Ends the stream for good. */
  close(): void { this.#finish(null); }

  [Symbol.asyncIterator](): AsyncIterator<GatewayEvent> {
    if (!this.#queue) this.#queue = [];
    return {
      next: () => {
        if (this.#queue!.length) return Promise.resolve({ value: this.#queue!.shift()!, done: false });
        if (this.#error) return Promise.reject(this.#error);
        if (this.#done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
      },
      return: () => { this.close(); return Promise.resolve({ value: undefined, done: true }); },
    };
  }

  #setState(s: StreamState, err?: unknown) {
    if (this.state === s) return;
    this.state = s;
    for (const fn of this.#stateListeners) fn(s, err);
  }

  #finish(err: unknown) {
    if (this.#done) return;
    this.#done = true;
    this.#error = err;
    this.#unsubToken();
    this.#stop.abort();
    this.#conn?.abort();
    this.#failPending(new GatewayError(0, undefined, undefined, 'event stream closed'));
    // close() drops what was not read yet; after an error the queued events
    // are still handed out before the iterator throws.
    if (!err && this.#queue) this.#queue.length = 0;
    for (const w of this.#waiters.splice(0)) {
      if (err) w.reject(err); else w.resolve({ value: undefined, done: true });
    }
    this.#setState('closed', err ?? undefined);
    if (err) this.#rejectClosed(err); else this.#resolveClosed();
  }

  /** Rejects the commands waiting for an answer (onlySent: not those still waiting for a socket). */
  #failPending(err: GatewayError, onlySent = false) {
    for (const p of [...this.#pending.values()]) if (p.sent || !onlySent) p.reject(err);
  }

  #deliver(ev: GatewayEvent) {
    if (ev.event_id) {
      if (ev.type !== 'reset' && this.lastEventId && seen(ev.event_id, this.lastEventId)) return;
      this.lastEventId = ev.event_id;
    }
    if (this.#queue) {
      const w = this.#waiters.shift();
      if (w) w.resolve({ value: ev, done: false }); else this.#queue.push(ev);
    }
    for (const key of [ev.type, '*']) {
      for (const fn of this.#listeners.get(key) ?? []) {
        try { fn(ev); } catch (e) { queueMicrotask(() => { throw e; }); }
      }
    }
  }

  async #run() {
    let attempt = 0;
    let refreshed = false;
    while (!this.#done) {
      const conn = new AbortController();
      this.#conn = conn;
      let opened = false;
      let wait = 0;
      const markOpen = () => { opened = true; this.connects++; refreshed = false; this.#setState('open'); };
      try {
        if (this.#opts.transport === 'websocket') await this.#websocket(conn.signal, markOpen, attempt);
        else await this.#sse(conn.signal, markOpen);
      } catch (err) {
        if (this.#done) break;
        if (err instanceof GatewayError) {
          const terminal = err.status === 404 || err.status === 410 || err.status === 403 || err.code === 40103 ||
            (err.status === 401 && refreshed);
          if (terminal) { this.#finish(err); break; }
          if (err.status === 401) {
            // Expired (or a socket whose handshake failed): one refresh, then retry at once.
            refreshed = true;
            try {
              await this.#session.refreshToken({ signal: this.#stop.signal });
              this.#reconnectNow = true;
            } catch (e) {
              if (this.#done) break;
              if (e instanceof GatewayError && e.status >= 400 && e.status < 500 && e.status !== 429) { this.#finish(e); break; }
            }
          } else if (err.retryAfter !== undefined) {
            wait = err.retryAfter * 1000;
          }
        } else if (!isAbort(err)) {
          // network error: back off below
        }
      }
      if (this.#done) break;
      if (opened) attempt = 0;
      this.#setState('reconnecting');
      if (this.#reconnectNow) {
        this.#reconnectNow = false;
        continue;
      }
      const cap = Math.min(this.#opts.maxBackoff, this.#opts.minBackoff * 2 ** attempt++);
      // "Equal jitter": half fixed, half random, so a restarted gateway is not hit by every client at once.
      await sleep(Math.max(wait, cap / 2 + Math.random() * cap / 2), this.#stop.signal);
    }
  }

  async #sse(signal: AbortSignal, markOpen: () => void) {
    const s = this.#session;
    // Only headers the gateway's CORS setup allows (Authorization, Last-Event-ID).
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
    const res = await s.http.send({ method: 'GET', path: `chat/${encodeURIComponent(s.streamid)}/events`, auth: `Bearer ${s.token}`, signal }, headers);
    if (!res.body) throw new Error('event stream without a body');
    markOpen();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let idle: ReturnType<typeof setTimeout> | undefined;
    const kick = () => { clearTimeout(idle); idle = setTimeout(() => reader.cancel().catch(() => {}), this.#opts.idleTimeout); };
    const onAbort = () => { reader.cancel().catch(() => {}); };
    signal.addEventListener('abort', onAbort, { once: true });
    // WHATWG event-stream parsing: fields up to a blank line form one event.
    let buf = '';
    let data: string[] = [];
    let id = '';
    try {
      kick();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        kick();
        buf += value;
        let nl: number;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          if (buf[nl] === '\r' && nl === buf.length - 1) break; // maybe CRLF split across chunks
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (data.length) this.#onFrame(data.join('\n'), id);
            data = [];
            continue;
          }
          if (line.startsWith(':')) continue;
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          let v = c < 0 ? '' : line.slice(c + 1);
          if (v.startsWith(' ')) v = v.slice(1);
          if (field === 'data') data.push(v);
          else if (field === 'id' && !v.includes('\0')) id = v;
        }
      }
    } finally {
      clearTimeout(idle);
      signal.removeEventListener('abort', onAbort);
    }
  }

  #onFrame(data: string, id: string) {
    let ev: GatewayEvent;
    try { ev = JSON.parse(data); } catch { return; }
    if (!ev || typeof ev !== 'object' || typeof ev.type !== 'string') return;
    ev.event_id = id;
    this.#deliver(ev);
  }

  /**
   * Resolves when a socket is open. Never an already-resolved promise for a
   * socket that is closing: send() would spin on it in microtasks and starve
   * the event loop (the close event could then never arrive).
   */
  #whenOpen(): Promise<void> {
    if (!this.#wsOpen || (this.#wsOpen.settled && this.#ws?.readyState !== 1)) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => { resolve = r; });
      this.#wsOpen = { promise, resolve, settled: false };
    }
    return this.#wsOpen.promise;
  }

  async #websocket(signal: AbortSignal, markOpen: () => void, attempt: number) {
    const WS = this.#opts.WebSocket ?? globalThis.WebSocket;
    if (!WS) throw new Error('no WebSocket: pass events({WebSocket}) or run Node with --experimental-websocket (Node 20) / Node >= 22');
    const s = this.#session;
    if (attempt >= 2) {
      // A failed handshake hides its HTTP status; after two, ask the REST
      // side, which answers 401/404 for a dead token or stream (and
      // refreshes the token when it is merely old).
      await s.refreshToken({ signal });
      // The refresh moved every stream to the new token, this one included.
      if (signal.aborted) return;
    }
    const url = s.http.url(`chat/${encodeURIComponent(s.streamid)}/ws`, { token: s.token, last_event_id: this.lastEventId || undefined });
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WS(url.toString());
    this.#ws = ws;
    await new Promise<void>((resolve, reject) => {
      let open = false;
      let idle: ReturnType<typeof setTimeout> | undefined;
      let last = Date.now();
      const kick = () => { last = Date.now(); clearTimeout(idle); idle = setTimeout(() => ws.close(4000, 'idle'), this.#opts.idleTimeout); };
      // Pages cannot see WebSocket pings, so a quiet socket is probed with
      // the gateway's ping command; its answer counts as traffic.
      const probe = setInterval(() => {
        if (open && ws.readyState === 1 && Date.now() - last >= this.#opts.idleTimeout / 3) this.send({ type: 'ping' }, { timeout: this.#opts.idleTimeout }).catch(() => {});
      }, this.#opts.idleTimeout / 3);
      const onAbort = () => ws.close(1000, 'closed by client');
      signal.addEventListener('abort', onAbort, { once: true });
      ws.onopen = () => {
        open = true;
        kick();
        markOpen();
        this.#whenOpen();
        this.#wsOpen!.resolve();
        this.#wsOpen!.settled = true;
      };
      ws.onmessage = (m: MessageEvent) => {
        kick();
        let obj: Record<string, unknown>;
        try { obj = JSON.parse(String(m.data)); } catch { return; }
        if (!obj || typeof obj.type !== 'string') return;
        if (obj.event_id === undefined && (obj.type === 'ok' || obj.type === 'error')) {
          const p = this.#pending.get(String(obj['reply-to'] ?? ''));
          if (!p) return;
          if (obj.type === 'ok') p.resolve(obj as WsReply);
          else p.reject(new GatewayError(Number(obj.http ?? 0), obj as never));
          return;
        }
        this.#deliver({ ...obj, event_id: String(obj.event_id ?? '') } as GatewayEvent);
      };
      ws.onerror = () => { /* the close event follows */ };
      ws.onclose = (c: CloseEvent) => {
        clearTimeout(idle);
        clearInterval(probe);
        signal.removeEventListener('abort', onAbort);
        this.#ws = null;
        if (this.#wsOpen?.settled) this.#wsOpen = null; // an unsettled one waits for the next socket
        this.#failPending(new GatewayError(0, undefined, undefined, `websocket closed (${c.code}) before the answer`), true);
        if (c.code === 4401) reject(new GatewayError(401, { code: 40103, http: 401, error: c.reason || 'token revoked' }));
        else if (c.code === 4402) reject(new GatewayError(401, { code: 40102, http: 401, error: c.reason || 'token expired' }));
        else if (!open) reject(new Error(`websocket handshake failed (${c.code})`));
        else resolve();
      };
    });
  }
}
