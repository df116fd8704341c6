import { GatewayError } from './errors.js';
import { basic, Http, seg } from './http.js';
import { EventStream } from './stream.js';
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
export async function login(opts, username, credential) {
    const o = typeof opts === 'string' ? { baseUrl: opts } : opts;
    const http = new Http(o);
    let res;
    if (typeof credential === 'string') {
        res = await http.call({
            method: 'POST', path: `chat/${seg(username)}/login`,
            json: { password: credential, ...(o.resource ? { resource: o.resource } : {}) }, signal: o.signal,
        });
    }
    else {
        res = await http.call({ method: 'POST', path: 'chat/token', auth: `Bearer ${credential.token}`, signal: o.signal });
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
    http;
    streamid;
    jid;
    /** The current bearer token (changes on refresh). */
    token;
    /** When the token expires. */
    expiresAt;
    #tokenListeners = new Set();
    #autoRefresh;
    #refreshTimer;
    #refreshing = null;
    #ended = false;
    constructor(opts, login, http) {
        this.http = http ?? new Http(opts);
        if (!login.streamid || !login.token)
            throw new Error('login response without streamid or token');
        this.streamid = login.streamid;
        this.jid = login.jid ?? '';
        this.token = login.token;
        this.expiresAt = new Date(login.expires_at ?? NaN);
        this.#autoRefresh = opts.autoRefresh ?? true;
        this.#schedule();
    }
    /** The bare JID (user@domain). */
    get bareJid() { return this.jid.split('/')[0] ?? ''; }
    /** What to persist to resume the session later with login(opts, user, {token}). */
    toJSON() {
        return { streamid: this.streamid, jid: this.jid, token: this.token, expires_at: this.expiresAt.toISOString() };
    }
    /** Calls fn after every token refresh; returns the unsubscribe function. */
    onToken(fn) {
        this.#tokenListeners.add(fn);
        return () => this.#tokenListeners.delete(fn);
    }
    /** A call on this stream; path is relative to /chat/{streamid}/. */
    call(method, path, req = {}) {
        return this.http.call({ method, path: `chat/${seg(this.streamid)}${path}`, auth: `Bearer ${this.token}`, ...req });
    }
    // --- token, logoff ---
    /** POST /chat/{streamid}/token: a fresh token (the old one lives until it expires). Concurrent calls share one request. */
    refreshToken(opts = {}) {
        if (!this.#refreshing) {
            this.#refreshing = this.call('POST', '/token', opts).then((r) => {
                this.token = r.token ?? this.token;
                this.expiresAt = new Date(r.expires_at ?? NaN);
                this.#schedule();
                for (const fn of this.#tokenListeners)
                    fn(this);
                return r;
            }).finally(() => { this.#refreshing = null; });
        }
        return this.#refreshing;
    }
    /** DELETE /chat/token: revokes the current token (its event streams end). */
    async revokeToken(opts = {}) {
        await this.http.call({ method: 'DELETE', path: 'chat/token', auth: `Bearer ${this.token}`, ...opts });
        this.#stopTimer();
    }
    /** POST /chat/{streamid}/logoff: ends the XMPP stream and revokes its tokens. */
    async logoff(opts = {}) {
        try {
            await this.call('POST', '/logoff', opts);
        }
        finally {
            this.close();
        }
    }
    /** Stops the refresh timer (the stream stays logged in on the gateway). */
    close() {
        this.#ended = true;
        this.#stopTimer();
    }
    #stopTimer() { clearTimeout(this.#refreshTimer); this.#refreshTimer = undefined; }
    #schedule() {
        this.#stopTimer();
        if (!this.#autoRefresh || this.#ended)
            return;
        const left = this.expiresAt.getTime() - Date.now();
        if (!Number.isFinite(left))
            return;
        // A minute early, or at 80 % of the lifetime for short-lived tokens.
        const wait = Math.max(1000, left - Math.min(60000, left * 0.2));
        const t = setTimeout(() => { this.refreshToken().catch(() => { }); }, Math.min(wait, 2 ** 31 - 1));
        t.unref?.(); // never keeps a Node process alive
        this.#refreshTimer = t;
    }
    // --- events ---
    /** The event stream (SSE by default; {transport: "websocket"} for commands with replies). */
    events(opts = {}) { return new EventStream(this, opts); }
    // --- messages ---
    /** POST …/messages/{jid}: sends a message; resolves to {id} (the stanza id). */
    sendMessage(to, message, opts = {}) {
        return this.call('POST', `/messages/${seg(to)}`, { ...body(message), ...opts });
    }
    /** PUT …/messages/{jid}/{id}: corrects message id (XEP-0308). */
    editMessage(to, id, message, opts = {}) {
        return this.call('PUT', `/messages/${seg(to)}/${seg(id)}`, { ...body(message), ...opts });
    }
    /** DELETE …/messages/{jid}/{id}: deletes (retracts) message id. */
    deleteMessage(to, id, req = {}, opts = {}) {
        return this.call('DELETE', `/messages/${seg(to)}/${seg(id)}`, { json: req, ...opts });
    }
    /** POST …/messages/{jid}/{id}/{marker}: an XEP-0333 marker. */
    sendMarker(to, id, marker, req = {}, opts = {}) {
        return this.call('POST', `/messages/${seg(to)}/${seg(id)}/${marker}`, { json: req, ...opts });
    }
    /** POST …/chatstate/{state}/{jid}: typing notifications (XEP-0085). */
    async sendChatState(to, state, opts = {}) {
        await this.call('POST', `/chatstate/${state}/${seg(to)}`, opts);
    }
    /** GET …/messages: one history page (XEP-0313 + RSM). */
    history(query = {}, opts = {}) {
        return this.call('GET', '/messages', { query, ...opts });
    }
    /** Every history page, newest first (or oldest first with direction "forward"). */
    historyPages(query = {}, opts = {}) {
        return pages((q) => this.history(q, opts), query, opts.direction);
    }
    /** Every archived message, page by page (newest page first, messages oldest first within a page). */
    async *historyMessages(query = {}, opts = {}) {
        for await (const p of this.historyPages(query, opts))
            yield* p.messages ?? [];
    }
    // --- commands, raw XMPP ---
    /** POST …/commands/{jid}: an x:oob service command. */
    sendCommand(to, cmd, opts = {}) {
        return this.call('POST', `/commands/${seg(to)}`, { json: cmd, ...opts });
    }
    /** POST …/xmpp: one raw stanza (validated and re-encoded by the gateway). */
    async sendRaw(stanza, opts = {}) {
        await this.call('POST', '/xmpp', { text: stanza, contentType: 'text/xml; charset=utf-8', ...opts });
    }
    // --- presence, contacts ---
    /** POST …/presence: own presence, or a directed/subscription presence with `to` and `type`. */
    async setPresence(req, opts = {}) {
        await this.call('POST', '/presence', { json: req, ...opts });
    }
    /** GET …/contacts: the roster with presence. */
    contacts(opts = {}) { return this.call('GET', '/contacts', opts); }
    /** POST …/contacts/{jid}: adds a contact (and asks for their presence unless told not to). */
    async addContact(jid, req = {}, opts = {}) {
        await this.call('POST', `/contacts/${seg(jid)}`, { json: req, ...opts });
    }
    /** PUT …/contacts/{jid}: renames or regroups a contact. */
    async updateContact(jid, req, opts = {}) {
        await this.call('PUT', `/contacts/${seg(jid)}`, { json: req, ...opts });
    }
    /** DELETE …/contacts/{jid}. */
    async removeContact(jid, opts = {}) { await this.call('DELETE', `/contacts/${seg(jid)}`, opts); }
    /** POST …/contacts/{jid}/approve: accepts a subscription request. */
    async approveContact(jid, opts = {}) { await this.call('POST', `/contacts/${seg(jid)}/approve`, opts); }
    /** POST …/contacts/{jid}/deny: refuses a subscription request. */
    async denyContact(jid, opts = {}) { await this.call('POST', `/contacts/${seg(jid)}/deny`, opts); }
    // --- rooms (XEP-0045) ---
    /** GET /chat/rooms: the public rooms of a MUC service. */
    publicRooms(service, opts = {}) {
        return this.http.call({ method: 'GET', path: 'chat/rooms', query: { service }, auth: `Bearer ${this.token}`, ...opts });
    }
    /** GET /chat/rooms/{room}: a room's disco#info. */
    roomInfo(room, service, opts = {}) {
        return this.http.call({ method: 'GET', path: `chat/rooms/${seg(room)}`, query: { service }, auth: `Bearer ${this.token}`, ...opts });
    }
    /** GET …/rooms: the rooms this stream is in. */
    joinedRooms(opts = {}) { return this.call('GET', '/rooms', opts); }
    /** POST …/rooms: creates (and joins) a room. */
    createRoom(req, opts = {}) { return this.call('POST', '/rooms', { json: req, ...opts }); }
    /** PUT …/rooms/{room}: joins a room. */
    async joinRoom(room, req = {}, service, opts = {}) {
        await this.call('PUT', `/rooms/${seg(room)}`, { json: req, query: { service }, ...opts });
    }
    /** DELETE …/rooms/{room}: leaves a room. */
    async leaveRoom(room, service, opts = {}) {
        await this.call('DELETE', `/rooms/${seg(room)}`, { query: { service }, ...opts });
    }
    /** POST …/rooms/{room}: a groupchat message. */
    sendRoomMessage(room, message, service, opts = {}) {
        return this.call('POST', `/rooms/${seg(room)}`, { ...body(message), query: { service }, ...opts });
    }
    /** POST …/rooms/{room}/{jid}: invites jid (mediated, or direct XEP-0249 with direct). */
    async inviteToRoom(room, jid, req = {}, o = {}) {
        await this.call('POST', `/rooms/${seg(room)}/${seg(jid)}`, { json: req, query: { service: o.service, direct: o.direct }, signal: o.signal });
    }
    /** PUT …/rooms/{room}/subject. */
    async setRoomSubject(room, subject, service, opts = {}) {
        await this.call('PUT', `/rooms/${seg(room)}/subject`, { json: { subject }, query: { service }, ...opts });
    }
    /** GET …/rooms/{room}/occupants. */
    occupants(room, service, opts = {}) {
        return this.call('GET', `/rooms/${seg(room)}/occupants`, { query: { service }, ...opts });
    }
    /** GET …/rooms/{room}/config: the room's configuration form as {field: value}. */
    roomConfig(room, service, opts = {}) {
        return this.call('GET', `/rooms/${seg(room)}/config`, { query: { service }, ...opts });
    }
    /** PUT …/rooms/{room}/config. */
    async setRoomConfig(room, config, service, opts = {}) {
        await this.call('PUT', `/rooms/${seg(room)}/config`, { json: config, query: { service }, ...opts });
    }
    /** POST …/rooms/{room}/destroy. */
    async destroyRoom(room, req = {}, service, opts = {}) {
        await this.call('POST', `/rooms/${seg(room)}/destroy`, { json: req, query: { service }, ...opts });
    }
    /** PUT …/rooms/{room}/affiliations/{jid}. */
    async setAffiliation(room, jid, req, service, opts = {}) {
        await this.call('PUT', `/rooms/${seg(room)}/affiliations/${seg(jid)}`, { json: req, query: { service }, ...opts });
    }
    /** PUT …/rooms/{room}/roles/{nick}. */
    async setRole(room, nick, req, service, opts = {}) {
        await this.call('PUT', `/rooms/${seg(room)}/roles/${seg(nick)}`, { json: req, query: { service }, ...opts });
    }
    /** GET …/rooms/{room}/messages: one page of the room's archive. */
    roomHistory(room, query = {}, opts = {}) {
        return this.call('GET', `/rooms/${seg(room)}/messages`, { query, ...opts });
    }
    /** Every page of the room's archive. */
    roomHistoryPages(room, query = {}, opts = {}) {
        return pages((q) => this.roomHistory(room, q, opts), query, opts.direction);
    }
    // --- users, private storage ---
    /** GET /chat/users?search=: the server's user directory. */
    searchUsers(search, opts = {}) {
        return this.http.call({ method: 'GET', path: 'chat/users', query: { search }, auth: `Bearer ${this.token}`, ...opts });
    }
    /** GET …/users/properties: the user's private properties. */
    properties(opts = {}) { return this.call('GET', '/users/properties', opts); }
    /** POST …/users/{property}. */
    async setProperty(name, value, opts = {}) {
        await this.call('POST', `/users/${seg(name)}`, { text: value, ...opts });
    }
    /** DELETE …/users/{property}. */
    async deleteProperty(name, opts = {}) { await this.call('DELETE', `/users/${seg(name)}`, opts); }
    /** GET …/bookmarks (XEP-0402/0048). */
    bookmarks(opts = {}) { return this.call('GET', '/bookmarks', opts); }
    /** PUT …/bookmarks. */
    async setBookmarks(list, opts = {}) { await this.call('PUT', '/bookmarks', { json: list, ...opts }); }
    // --- vcard ---
    /** GET …/vcard[/{jid}]: own vCard, or jid's. */
    vcard(jid, opts = {}) {
        return this.call('GET', jid ? `/vcard/${seg(jid)}` : '/vcard', opts);
    }
    /** PUT …/vcard. */
    async setVCard(v, opts = {}) { await this.call('PUT', '/vcard', { json: v, ...opts }); }
    // --- pubsub (XEP-0060); service = own bare JID for PEP ---
    pubsub = {
        /** GET …/pubsub/{service}/{node}/subscriptions. */
        subscriptions: (service, node, opts = {}) => this.call('GET', `/pubsub/${seg(service)}/${seg(node)}/subscriptions`, opts),
        /** POST …/subscriptions: subscribes (or renews); state "pending" when the owner must approve. */
        subscribe: (service, node, req = {}, opts = {}) => this.call('POST', `/pubsub/${seg(service)}/${seg(node)}/subscriptions`, { json: req, ...opts }),
        /** DELETE …/subscriptions/{subid}. */
        unsubscribe: async (service, node, subid, opts = {}) => {
            await this.call('DELETE', `/pubsub/${seg(service)}/${seg(node)}/subscriptions/${seg(subid)}`, opts);
        },
        /** POST …/items: publishes (payload XML or payload_json). */
        publish: (service, node, req, opts = {}) => this.call('POST', `/pubsub/${seg(service)}/${seg(node)}/items`, { json: req, ...opts }),
        /** GET …/items. */
        items: (service, node, max, opts = {}) => this.call('GET', `/pubsub/${seg(service)}/${seg(node)}/items`, { query: { max }, ...opts }),
        /** GET …/items/{id}. */
        item: (service, node, id, opts = {}) => this.call('GET', `/pubsub/${seg(service)}/${seg(node)}/items/${seg(id)}`, opts),
        /** DELETE …/items/{id}: retracts. */
        retract: async (service, node, id, opts = {}) => {
            await this.call('DELETE', `/pubsub/${seg(service)}/${seg(node)}/items/${seg(id)}`, opts);
        },
    };
    // --- fastpath: expert queues ---
    fastpath = {
        /** GET …/assists: the workgroups this agent is online in, and its chats. */
        assists: (opts = {}) => this.call('GET', '/assists', opts),
        /** GET …/assists/queues: the queues of the agent's workgroups. */
        queues: (opts = {}) => this.call('GET', '/assists/queues', opts),
        /** POST …/assists/{workgroup}: go online as an agent. */
        online: async (workgroup, opts = {}) => { await this.call('POST', `/assists/${seg(workgroup)}`, opts); },
        /** DELETE …/assists/{workgroup}: go offline. */
        offline: async (workgroup, opts = {}) => { await this.call('DELETE', `/assists/${seg(workgroup)}`, opts); },
        /** PUT …/assists/{workgroup}/{offerId}: accepts an offerReceived. */
        accept: (workgroup, offerId, opts = {}) => this.call('PUT', `/assists/${seg(workgroup)}/${seg(offerId)}`, opts),
        /** DELETE …/assists/{workgroup}/{offerId}: rejects it. */
        reject: async (workgroup, offerId, opts = {}) => {
            await this.call('DELETE', `/assists/${seg(workgroup)}/${seg(offerId)}`, opts);
        },
        /** POST …/offer/{offerId}: accepts an offer (the ancestor's form of accept). */
        acceptOffer: (offerId, opts = {}) => this.call('POST', `/offer/${seg(offerId)}`, opts),
        /** DELETE …/offer/{offerId}: rejects an offer (the ancestor's form of reject). */
        rejectOffer: async (offerId, opts = {}) => {
            await this.call('DELETE', `/offer/${seg(offerId)}`, opts);
        },
        /** POST /ask?streamid=: asks a workgroup for an expert; the queue events follow on this stream. */
        ask: (req, opts = {}) => this.http.call({ method: 'POST', path: 'ask', query: { streamid: this.streamid }, json: req, auth: `Bearer ${this.token}`, ...opts }),
        /** GET /ask/{ticket}. */
        ticket: (ticket, opts = {}) => this.http.call({ method: 'GET', path: `ask/${seg(ticket)}`, auth: `Bearer ${this.token}`, ...opts }),
        /** DELETE /ask/{ticket}: leaves the queue. */
        cancel: async (ticket, opts = {}) => {
            await this.http.call({ method: 'DELETE', path: `ask/${seg(ticket)}`, auth: `Bearer ${this.token}`, ...opts });
        },
        /** GET /ask/{ticket}/transcript. */
        transcript: (ticket, query = {}, opts = {}) => this.http.call({ method: 'GET', path: `ask/${seg(ticket)}/transcript`, query: { streamid: this.streamid, ...query }, auth: `Bearer ${this.token}`, ...opts }),
    };
}
function body(m) {
    return typeof m === 'string' ? { text: m } : { json: m };
}
/** Walks RSM pages: backward from the newest (before=""), or forward from query.after. */
async function* pages(get, query, direction = 'backward') {
    let q = direction === 'backward' ? { ...query, before: query.before ?? '' } : { ...query };
    for (;;) {
        const page = await get(q);
        yield page;
        const cursor = direction === 'backward' ? page.first : page.last;
        if (page.complete || !cursor || !(page.messages?.length))
            return;
        q = direction === 'backward' ? { ...query, after: undefined, before: cursor } : { ...query, before: undefined, after: cursor };
    }
}
export { basic };
