import { basic, Http, seg } from './http.js';
import { Session } from './session.js';
/**
 * Admin is for middleware servers: it logs users in on their behalf (no
 * password; the gateway needs XMPPGW_XMPP_TOKEN_SECRET), lists and closes
 * streams, sends system notifications and manages fastpath workgroups.
 */
export class Admin {
    http;
    #auth;
    constructor(opts, creds) {
        this.http = new Http(opts);
        this.#auth = 'token' in creds ? `Bearer ${creds.token}` : basic(creds.username, creds.password);
    }
    #call(method, path, req = {}) {
        return this.http.call({ method, path, auth: this.#auth, ...req });
    }
    /** POST /chat/{username}/login without a password: a Session of that user. */
    async loginAs(username, opts = {}) {
        const res = await this.#call('POST', `chat/${seg(username)}/login`, {
            json: opts.resource ? { resource: opts.resource } : undefined, signal: opts.signal,
        });
        return new Session({ baseUrl: this.http.root, ...opts }, res, this.http);
    }
    /** GET /admin/streams: every stream. */
    streams(opts = {}) { return this.#call('GET', 'admin/streams', opts); }
    /** DELETE /admin/streams/{streamid}: logs a stream off and revokes its tokens. */
    async killStream(streamid, opts = {}) { await this.#call('DELETE', `admin/streams/${seg(streamid)}`, opts); }
    /** POST /admin/notifications/{username}: a system notification (a `system` event for them). */
    notify(username, req, opts = {}) {
        return this.#call('POST', `admin/notifications/${seg(username)}`, { json: req, ...opts });
    }
    /** GET /admin/workgroups. */
    workgroups(opts = {}) { return this.#call('GET', 'admin/workgroups', opts); }
    /** GET /admin/workgroups/{name}. */
    workgroup(name, opts = {}) { return this.#call('GET', `admin/workgroups/${seg(name)}`, opts); }
    /** POST /admin/workgroups. */
    createWorkgroup(wg, opts = {}) { return this.#call('POST', 'admin/workgroups', { json: wg, ...opts }); }
    /** PUT /admin/workgroups/{name}. */
    updateWorkgroup(name, wg, opts = {}) {
        return this.#call('PUT', `admin/workgroups/${seg(name)}`, { json: wg, ...opts });
    }
    /** DELETE /admin/workgroups/{name}. */
    async deleteWorkgroup(name, opts = {}) { await this.#call('DELETE', `admin/workgroups/${seg(name)}`, opts); }
}
