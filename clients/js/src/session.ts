import { GatewayError } from './errors.js';
import type { MessageEvent, Occupant, PubSubItem } from './events.js';
import { basic, Http, seg, type CallOptions, type ClientOptions } from './http.js';
import { EventStream, type EventsOptions } from './stream.js';
import type {
  AcceptResponse, AffiliationRequest, AskRequest, AssistList, Bookmark, ChatState, CommandRequest, Contact,
  ContactRequest, CreateRoomRequest, CreateRoomResponse, DiscoItem, HistoryPage, HistoryQuery, JoinedRoom,
  JoinRequest, LoginResponse, Marker, MarkerRequest, MessageRequest, MessageResponse, PresenceRequest,
  PublishRequest, PublishResponse, PubSubSubscription, QueueList, ReasonRequest, RoleRequest,
  RoomHistoryQuery, RoomInfo, SubscribeRequest, TicketInfo, TranscriptQuery, VCard,
} from './types.js';

/** Options of login() and Session. */
export interface SessionOptions extends ClientOptions {
  /** The XMPP resource to bind (login with a password only). */
  resource?: string;
  /**
   * Refresh the token before it expires (default true): a minute early, or
   * at 80 % of its lifetime when that is shorter. Event streams move to the
   * new token.
   */
  autoRefresh?: boolean;
  signal?: AbortSignal;
}

/** Paging options of the history iterators. */
export interface PageOptions extends CallOptions {
  /** "backward" (default): newest page first, then older ones; "forward": from `after` on. */
  direction?: 'backward' | 'forward';
}

/**
 * Logs in and resolves to a Session.
 *
 *   login(opts, 'alice', 'secret')          password login (a new XMPP stream)
 *   login(opts, 'alice', { token })         resume the stream a saved token belongs to
 *                                           (the token is exchanged for a fresh one)
 *
 * Wrong credentials reject with GatewayError 401 (code 40104); too many
 * failed logins with 429 and `retryAfter`.
 */
export async function login(opts: SessionOptions | string, username: string, credential: string | { token: string }): Promise<Session> {
  const o: SessionOptions = typeof opts === 'string' ? { baseUrl: opts } : opts;
  const http = new Http(o);
  let res: LoginResponse;
  if (typeof credential === 'string') {
    res = await http.call<LoginResponse>({
      method: 'POST', path: `chat/${seg(username)}/login`,
      json: { password: credential, ...(o.resource ? { resource: o.resource } : {}) }, signal: o.signal,
    });
  } else {
    res = await http.call<LoginResponse>({ method: 'POST', path: 'chat/token', auth: `Bearer ${credential.token}`, signal: o.signal });
    if (username && res.jid && res.jid.split('@')[0] !== username.toLowerCase()) {
      throw new GatewayError(403, { code: 0, http: 403, error: `the token belongs to ${res.jid}, not ${username}` });
    }
  }
  return new Session(o, res, http);
}

/**
 * Session is one logged-in XMPP stream: typed methods for every route of
 * /restapi/v1/chat/{streamid}, and events().
 */
export class Session {
  readonly http: Http;
  readonly streamid: string;
  readonly jid: string;
  /** The current bearer token (changes on refresh). */
  token: string;
  /** When the token expires. */
  expiresAt: Date;

  readonly #tokenListeners = new Set<(s: Session) => void>();
  readonly #autoRefresh: boolean;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshing: Promise<LoginResponse> | null = null;
  #ended = false;

  constructor(opts: SessionOptions, login: LoginResponse, http?: Http) {
    this.http = http ?? new Http(opts);
    if (!login.streamid || !login.token) throw new Error('login response without streamid or token');
    this.streamid = login.streamid;
    this.jid = login.jid ?? '';
    this.token = login.token;
    this.expiresAt = new Date(login.expires_at ?? NaN);
    this.#autoRefresh = opts.autoRefresh ?? true;
    this.#schedule();
  }

  /** The bare JID (user@domain). */
  get bareJid(): string { return this.jid.split('/')[0] ?? ''; }

  /** What to persist to resume the session later with login(opts, user, {token}). */
  toJSON(): LoginResponse {
    return { streamid: this.streamid, jid: this.jid, token: this.token, expires_at: this.expiresAt.toISOString() };
  }

  /** Calls fn after every token refresh; returns the unsubscribe function. */
  onToken(fn: (s: Session) => void): () => void {
    this.#tokenListeners.add(fn);
    return () => this.#tokenListeners.delete(fn);
  }

  /** A call on this stream; path is relative to /chat/{streamid}/. */
  call<T>(method: string, path: string, req: { query?: Record<string, string | number | boolean | undefined>; json?: unknown; text?: string; contentType?: string } & CallOptions = {}): Promise<T> {
    return this.http.call<T>({ method, path: `chat/${seg(this.streamid)}${path}`, auth: `Bearer ${this.token}`, ...req });
  }

  // --- token, logoff ---

  /** POST /chat/{streamid}/token: a fresh token (the old one lives until it expires). Concurrent calls share one request. */
  refreshToken(opts: CallOptions = {}): Promise<LoginResponse> {
    if (!this.#refreshing) {
      this.#refreshing = this.call<LoginResponse>('POST', '/token', opts).then((r) => {
        this.token = r.token ?? this.token;
        this.expiresAt = new Date(r.expires_at ?? NaN);
        this.#schedule();
        for (const fn of this.#tokenListeners) fn(this);
        return r;
      }).finally(() => { this.#refreshing = null; });
    }
    return this.#refreshing;
  }

  /** DELETE /chat/token: revokes the current token (its event streams end). */
  async revokeToken(opts: CallOptions = {}): Promise<void> {
    await this.http.call({ method: 'DELETE', path: 'chat/token', auth: `Bearer ${this.token}`, ...opts });
    this.#stopTimer();
  }

  /** POST /chat/{streamid}/logoff: ends the XMPP stream and revokes its tokens. */
  async logoff(opts: CallOptions = {}): Promise<void> {
    try { await this.call('POST', '/logoff', opts); } finally { this.close(); }
  }

  /** Stops the refresh timer (the stream stays logged in on the gateway). */
  close(): void {
    this.#ended = true;
    this.#stopTimer();
  }

  #stopTimer() { clearTimeout(this.#refreshTimer); this.#refreshTimer = undefined; }

  #schedule() {
    this.#stopTimer();
    if (!this.#autoRefresh || this.#ended) return;
    const left = this.expiresAt.getTime() - Date.now();
    if (!Number.isFinite(left)) return;
    // A minute early, or at 80 % of the lifetime for short-lived tokens.
    const wait = Math.max(1000, left - Math.min(60000, left * 0.2));
    const t = setTimeout(() => { this.refreshToken().catch(() => { /* events() sees the 401 */ }); }, Math.min(wait, 2 ** 31 - 1));
    (t as { unref?: () => void }).unref?.(); // never keeps a Node process alive
    this.#refreshTimer = t;
  }

  // --- events ---

  /** The event stream (SSE by default; {transport: "websocket"} for commands with replies). */
  events(opts: EventsOptions = {}): EventStream { return new EventStream(this, opts); }

  // --- messages ---

  /** POST …/messages/{jid}: sends a message; resolves to {id} (the stanza id). */
  sendMessage(to: string, message: string | MessageRequest, opts: CallOptions = {}): Promise<MessageResponse> {
    return this.call('POST', `/messages/${seg(to)}`, { ...body(message), ...opts });
  }
  /** PUT …/messages/{jid}/{id}: corrects message id (XEP-0308). */
  editMessage(to: string, id: string, message: string | MessageRequest, opts: CallOptions = {}): Promise<MessageResponse> {
    return this.call('PUT', `/messages/${seg(to)}/${seg(id)}`, { ...body(message), ...opts });
  }
  /** DELETE …/messages/{jid}/{id}: deletes (retracts) message id. */
  deleteMessage(to: string, id: string, req: MarkerRequest = {}, opts: CallOptions = {}): Promise<MessageResponse> {
    return this.call('DELETE', `/messages/${seg(to)}/${seg(id)}`, { json: req, ...opts });
  }
  /** POST …/messages/{jid}/{id}/{marker}: an XEP-0333 marker. */
  sendMarker(to: string, id: string, marker: Marker, req: MarkerRequest = {}, opts: CallOptions = {}): Promise<MessageResponse> {
    return this.call('POST', `/messages/${seg(to)}/${seg(id)}/${marker}`, { json: req, ...opts });
  }
  /** POST …/chatstate/{state}/{jid}: typing notifications (XEP-0085). */
  async sendChatState(to: string, state: ChatState, opts: CallOptions = {}): Promise<void> {
    await this.call('POST', `/chatstate/${state}/${seg(to)}`, opts);
  }
  /** GET …/messages: one history page (XEP-0313 + RSM). */
  history(query: HistoryQuery = {}, opts: CallOptions = {}): Promise<HistoryPage> {
    return this.call('GET', '/messages', { query, ...opts });
  }
  /** Every history page, newest first (or oldest first with direction "forward"). */
  historyPages(query: HistoryQuery = {}, opts: PageOptions = {}): AsyncIterable<HistoryPage> {
    return pages((q) => this.history(q, opts), query, opts.direction);
  }
  /** Every archived message, page by page (newest page first, messages oldest first within a page). */
  async *historyMessages(query: HistoryQuery = {}, opts: PageOptions = {}): AsyncIterable<MessageEvent> {
    for await (const p of this.historyPages(query, opts)) yield* p.messages ?? [];
  }

  // --- commands, raw XMPP ---

  /** POST …/commands/{jid}: an x:oob service command. */
  sendCommand(to: string, cmd: CommandRequest, opts: CallOptions = {}): Promise<MessageResponse> {
    return this.call('POST', `/commands/${seg(to)}`, { json: cmd, ...opts });
  }
  /** POST …/xmpp: one raw stanza (validated and re-encoded by the gateway). */
  async sendRaw(stanza: string, opts: CallOptions = {}): Promise<void> {
    await this.call('POST', '/xmpp', { text: stanza, contentType: 'text/xml; charset=utf-8', ...opts });
  }

  // --- presence, contacts ---

  /** POST …/presence: own presence, or a directed/subscription presence with `to` and `type`. */
  async setPresence(req: PresenceRequest, opts: CallOptions = {}): Promise<void> {
    await this.call('POST', '/presence', { json: req, ...opts });
  }
  /** GET …/contacts: the roster with presence. */
  contacts(opts: CallOptions = {}): Promise<Contact[]> { return this.call('GET', '/contacts', opts); }
  /** POST …/contacts/{jid}: adds a contact (and asks for their presence unless told not to). */
  async addContact(jid: string, req: ContactRequest = {}, opts: CallOptions = {}): Promise<void> {
    await this.call('POST', `/contacts/${seg(jid)}`, { json: req, ...opts });
  }
  /** PUT …/contacts/{jid}: renames or regroups a contact. */
  async updateContact(jid: string, req: ContactRequest, opts: CallOptions = {}): Promise<void> {
    await this.call('PUT', `/contacts/${seg(jid)}`, { json: req, ...opts });
  }
  /** DELETE …/contacts/{jid}. */
  async removeContact(jid: string, opts: CallOptions = {}): Promise<void> { await this.call('DELETE', `/contacts/${seg(jid)}`, opts); }
  /** POST …/contacts/{jid}/approve: accepts a subscription request. */
  async approveContact(jid: string, opts: CallOptions = {}): Promise<void> { await this.call('POST', `/contacts/${seg(jid)}/approve`, opts); }
  /** POST …/contacts/{jid}/deny: refuses a subscription request. */
  async denyContact(jid: string, opts: CallOptions = {}): Promise<void> { await this.call('POST', `/contacts/${seg(jid)}/deny`, opts); }

  // --- rooms (XEP-0045) ---

  /** GET /chat/rooms: the public rooms of a MUC service. */
  publicRooms(service?: string, opts: CallOptions = {}): Promise<DiscoItem[]> {
    return this.http.call({ method: 'GET', path: 'chat/rooms', query: { service }, auth: `Bearer ${this.token}`, ...opts });
  }
  /** GET /chat/rooms/{room}: a room's disco#info. */
  roomInfo(room: string, service?: string, opts: CallOptions = {}): Promise<RoomInfo> {
    return this.http.call({ method: 'GET', path: `chat/rooms/${seg(room)}`, query: { service }, auth: `Bearer ${this.token}`, ...opts });
  }
  /** GET …/rooms: the rooms this stream is in. */
  joinedRooms(opts: CallOptions = {}): Promise<JoinedRoom[]> { return this.call('GET', '/rooms', opts); }
  /** POST …/rooms: creates (and joins) a room. */
  createRoom(req: CreateRoomRequest, opts: CallOptions = {}): Promise<CreateRoomResponse> { return this.call('POST', '/rooms', { json: req, ...opts }); }
  /** PUT …/rooms/{room}: joins a room. */
  async joinRoom(room: string, req: JoinRequest = {}, service?: string, opts: CallOptions = {}): Promise<void> {
    await this.call('PUT', `/rooms/${seg(room)}`, { json: req, query: { service }, ...opts });
  }
  /** DELETE …/rooms/{room}: leaves a room. */
  async leaveRoom(room: string, service?: string, opts: CallOptions = {}): Promise<void> {
    await this.call('DELETE', `/rooms/${seg(room)}`, { query: { service }, ...opts });
  }
  /** POST …/rooms/{room}: a groupchat message. */
  sendRoomMessage(room: string, message: string | MessageRequest, service?: string, opts: CallOptions = {}): Promise<MessageResponse> {
    return this.call('POST', `/rooms/${seg(room)}`, { ...body(message), query: { service }, ...opts });
  }
  /** POST …/rooms/{room}/{jid}: invites jid (mediated, or direct XEP-0249 with direct). */
  async inviteToRoom(room: string, jid: string, req: ReasonRequest = {}, o: { service?: string; direct?: boolean } & CallOptions = {}): Promise<void> {
    await this.call('POST', `/rooms/${seg(room)}/${seg(jid)}`, { json: req, query: { service: o.service, direct: o.direct }, signal: o.signal });
  }
  /** PUT …/rooms/{room}/subject. */
  async setRoomSubject(room: string, subject: string, service?: string, opts: CallOptions = {}): Promise<void> {
    await this.call('PUT', `/rooms/${seg(room)}/subject`, { json: { subject }, query: { service }, ...opts });
  }
  /** GET …/rooms/{room}/occupants. */
  occupants(room: string, service?: string, opts: CallOptions = {}): Promise<Occupant[]> {
    return this.call('GET', `/rooms/${seg(room)}/occupants`, { query: { service }, ...opts });
  }
  /** GET …/rooms/{room}/config: the room's configuration form as {field: value}. */
  roomConfig(room: string, service?: string, opts: CallOptions = {}): Promise<Record<string, unknown>> {
    return this.call('GET', `/rooms/${seg(room)}/config`, { query: { service }, ...opts });
  }
  /** PUT …/rooms/{room}/config. */
  async setRoomConfig(room: string, config: Record<string, unknown>, service?: string, opts: CallOptions = {}): Promise<void> {
    await this.call('PUT', `/rooms/${seg(room)}/config`, { json: config, query: { service }, ...opts });
  }
  /** POST …/rooms/{room}/destroy. */
  async destroyRoom(room: string, req: ReasonRequest = {}, service?: string, opts: CallOptions = {}): Promise<void> {
    await this.call('POST', `/rooms/${seg(room)}/destroy`, { json: req, query: { service }, ...opts });
  }
  /** PUT …/rooms/{room}/affiliations/{jid}. */
  async setAffiliation(room: string, jid: string, req: AffiliationRequest, service?: string, opts: CallOptions = {}): Promise<void> {
    await this.call('PUT', `/rooms/${seg(room)}/affiliations/${seg(jid)}`, { json: req, query: { service }, ...opts });
  }
  /** PUT …/rooms/{room}/roles/{nick}. */
  async setRole(room: string, nick: string, req: RoleRequest, service?: string, opts: CallOptions = {}): Promise<void> {
    await this.call('PUT', `/rooms/${seg(room)}/roles/${seg(nick)}`, { json: req, query: { service }, ...opts });
  }
  /** GET …/rooms/{room}/messages: one page of the room's archive. */
  roomHistory(room: string, query: RoomHistoryQuery = {}, opts: CallOptions = {}): Promise<HistoryPage> {
    return this.call('GET', `/rooms/${seg(room)}/messages`, { query, ...opts });
  }
  /** Every page of the room's archive. */
  roomHistoryPages(room: string, query: RoomHistoryQuery = {}, opts: PageOptions = {}): AsyncIterable<HistoryPage> {
    return pages((q) => this.roomHistory(room, q, opts), query, opts.direction);
  }

  // --- users, private storage ---

  /** GET /chat/users?search=: the server's user directory. */
  searchUsers(search: string, opts: CallOptions = {}): Promise<unknown[]> {
    return this.http.call({ method: 'GET', path: 'chat/users', query: { search }, auth: `Bearer ${this.token}`, ...opts });
  }
  /** GET …/users/properties: the user's private properties. */
  properties(opts: CallOptions = {}): Promise<Record<string, string>> { return this.call('GET', '/users/properties', opts); }
  /** POST …/users/{property}. */
  async setProperty(name: string, value: string, opts: CallOptions = {}): Promise<void> {
    await this.call('POST', `/users/${seg(name)}`, { text: value, ...opts });
  }
  /** DELETE …/users/{property}. */
  async deleteProperty(name: string, opts: CallOptions = {}): Promise<void> { await this.call('DELETE', `/users/${seg(name)}`, opts); }
  /** GET …/bookmarks (XEP-0402/0048). */
  bookmarks(opts: CallOptions = {}): Promise<Bookmark[]> { return this.call('GET', '/bookmarks', opts); }
  /** PUT …/bookmarks. */
  async setBookmarks(list: Bookmark[], opts: CallOptions = {}): Promise<void> { await this.call('PUT', '/bookmarks', { json: list, ...opts }); }

  // --- vcard ---

  /** GET …/vcard[/{jid}]: own vCard, or jid's. */
  vcard(jid?: string, opts: CallOptions = {}): Promise<VCard> {
    return this.call('GET', jid ? `/vcard/${seg(jid)}` : '/vcard', opts);
  }
  /** PUT …/vcard. */
  async setVCard(v: VCard, opts: CallOptions = {}): Promise<void> { await this.call('PUT', '/vcard', { json: v, ...opts }); }

  // --- pubsub (XEP-0060); service = own bare JID for PEP ---

  readonly pubsub = {
    /** GET …/pubsub/{service}/{node}/subscriptions. */
    subscriptions: (service: string, node: string, opts: CallOptions = {}): Promise<PubSubSubscription[]> =>
      this.call('GET', `/pubsub/${seg(service)}/${seg(node)}/subscriptions`, opts),
    /** POST …/subscriptions: subscribes (or renews); state "pending" when the owner must approve. */
    subscribe: (service: string, node: string, req: SubscribeRequest = {}, opts: CallOptions = {}): Promise<PubSubSubscription> =>
      this.call('POST', `/pubsub/${seg(service)}/${seg(node)}/subscriptions`, { json: req, ...opts }),
    /** DELETE …/subscriptions/{subid}. */
    unsubscribe: async (service: string, node: string, subid: string, opts: CallOptions = {}): Promise<void> => {
      await this.call('DELETE', `/pubsub/${seg(service)}/${seg(node)}/subscriptions/${seg(subid)}`, opts);
    },
    /** POST …/items: publishes (payload XML or payload_json). */
    publish: (service: string, node: string, req: PublishRequest, opts: CallOptions = {}): Promise<PublishResponse> =>
      this.call('POST', `/pubsub/${seg(service)}/${seg(node)}/items`, { json: req, ...opts }),
    /** GET …/items. */
    items: (service: string, node: string, max?: number, opts: CallOptions = {}): Promise<PubSubItem[]> =>
      this.call('GET', `/pubsub/${seg(service)}/${seg(node)}/items`, { query: { max }, ...opts }),
    /** GET …/items/{id}. */
    item: (service: string, node: string, id: string, opts: CallOptions = {}): Promise<PubSubItem> =>
      this.call('GET', `/pubsub/${seg(service)}/${seg(node)}/items/${seg(id)}`, opts),
    /** DELETE …/items/{id}: retracts. */
    retract: async (service: string, node: string, id: string, opts: CallOptions = {}): Promise<void> => {
      await this.call('DELETE', `/pubsub/${seg(service)}/${seg(node)}/items/${seg(id)}`, opts);
    },
  };

  // --- fastpath: expert queues ---

  readonly fastpath = {
    /** GET …/assists: the workgroups this agent is online in, and its chats. */
    assists: (opts: CallOptions = {}): Promise<AssistList> => this.call('GET', '/assists', opts),
    /** GET …/assists/queues: the queues of the agent's workgroups. */
    queues: (opts: CallOptions = {}): Promise<QueueList> => this.call('GET', '/assists/queues', opts),
    /** POST …/assists/{workgroup}: go online as an agent. */
    online: async (workgroup: string, opts: CallOptions = {}): Promise<void> => { await this.call('POST', `/assists/${seg(workgroup)}`, opts); },
    /** DELETE …/assists/{workgroup}: go offline. */
    offline: async (workgroup: string, opts: CallOptions = {}): Promise<void> => { await this.call('DELETE', `/assists/${seg(workgroup)}`, opts); },
    /** PUT …/assists/{workgroup}/{offerId}: accepts an offerReceived. */
    accept: (workgroup: string, offerId: string, opts: CallOptions = {}): Promise<AcceptResponse> =>
      this.call('PUT', `/assists/${seg(workgroup)}/${seg(offerId)}`, opts),
    /** DELETE …/assists/{workgroup}/{offerId}: rejects it. */
    reject: async (workgroup: string, offerId: string, opts: CallOptions = {}): Promise<void> => {
      await this.call('DELETE', `/assists/${seg(workgroup)}/${seg(offerId)}`, opts);
    },
    /** POST …/offer/{offerId}: accepts an offer (the ancestor's form of accept). */
    acceptOffer: (offerId: string, opts: CallOptions = {}): Promise<AcceptResponse> =>
      this.call('POST', `/offer/${seg(offerId)}`, opts),
    /** DELETE …/offer/{offerId}: rejects an offer (the ancestor's form of reject). */
    rejectOffer: async (offerId: string, opts: CallOptions = {}): Promise<void> => {
      await this.call('DELETE', `/offer/${seg(offerId)}`, opts);
    },
    /** POST /ask?streamid=: asks a workgroup for an expert; the queue events follow on this stream. */
    ask: (req: AskRequest, opts: CallOptions = {}): Promise<TicketInfo> =>
      this.http.call({ method: 'POST', path: 'ask', query: { streamid: this.streamid }, json: req, auth: `Bearer ${this.token}`, ...opts }),
    /** GET /ask/{ticket}. */
    ticket: (ticket: string, opts: CallOptions = {}): Promise<TicketInfo> =>
      this.http.call({ method: 'GET', path: `ask/${seg(ticket)}`, auth: `Bearer ${this.token}`, ...opts }),
    /** DELETE /ask/{ticket}: leaves the queue. */
    cancel: async (ticket: string, opts: CallOptions = {}): Promise<void> => {
      await this.http.call({ method: 'DELETE', path: `ask/${seg(ticket)}`, auth: `Bearer ${this.token}`, ...opts });
    },
    /** GET /ask/{ticket}/transcript. */
    transcript: (ticket: string, query: TranscriptQuery = {}, opts: CallOptions = {}): Promise<HistoryPage> =>
      this.http.call({ method: 'GET', path: `ask/${seg(ticket)}/transcript`, query: { streamid: this.streamid, ...query }, auth: `Bearer ${this.token}`, ...opts }),
  };
}

function body(m: string | MessageRequest): { json?: MessageRequest; text?: string } {
  return typeof m === 'string' ? { text: m } : { json: m };
}

/** Walks RSM pages: backward from the newest (before=""), or forward from query.after. */
async function* pages<Q extends { after?: string; before?: string }>(get: (q: Q) => Promise<HistoryPage>, query: Q, direction: 'backward' | 'forward' = 'backward'): AsyncIterable<HistoryPage> {
  let q: Q = direction === 'backward' ? { ...query, before: query.before ?? '' } : { ...query };
  for (;;) {
    const page = await get(q);
    yield page;
    const cursor = direction === 'backward' ? page.first : page.last;
    if (page.complete || !cursor || !(page.messages?.length)) return;
    q = direction === 'backward' ? { ...query, after: undefined, before: cursor } : { ...query, before: undefined, after: cursor };
  }
}

export { basic };
