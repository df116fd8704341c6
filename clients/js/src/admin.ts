import { basic, Http, seg, type CallOptions, type ClientOptions } from './http.js';
import { Session, type SessionOptions } from './session.js';
import type { LoginResponse, MessageResponse, NotificationRequest, StreamList, Workgroup, WorkgroupList } from './types.js';

/** Admin credentials: HTTP Basic (XMPPGW_ADMIN_USER/PASSWORD) or an admin token (xmppgw token --admin). */
export type AdminCredentials = { username: string; password: string } | { token: string };

/**
 * Admin is for middleware servers: it logs users in on their behalf (no
 * password; the gateway needs XMPPGW_XMPP_TOKEN_SECRET), lists and closes
 * streams, sends system notifications and manages fastpath workgroups.
 */
export class Admin {
  readonly http: Http;
  readonly #auth: string;

  constructor(opts: ClientOptions, creds: AdminCredentials) {
    this.http = new Http(opts);
    this.#auth = 'token' in creds ? `Bearer ${creds.token}` : basic(creds.username, creds.password);
  }

  #call<T>(method: string, path: string, req: { json?: unknown; query?: Record<string, string | undefined> } & CallOptions = {}): Promise<T> {
    return this.http.call<T>({ method, path, auth: this.#auth, ...req });
  }

  /** POST /chat/{username}/login without a password: a Session of that user. */
  async loginAs(username: string, opts: Omit<SessionOptions, 'baseUrl' | 'fetch'> = {}): Promise<Session> {
    const res = await this.#call<LoginResponse>('POST', `chat/${seg(username)}/login`, {
      json: opts.resource ? { resource: opts.resource } : undefined, signal: opts.signal,
    });
    return new Session({ baseUrl: this.http.root, ...opts }, res, this.http);
  }

  /** GET /admin/streams: every stream. */
  streams(opts: CallOptions = {}): Promise<StreamList> { return this.#call('GET', 'admin/streams', opts); }
  /** DELETE /admin/streams/{streamid}: logs a stream off and revokes its tokens. */
  async killStream(streamid: string, opts: CallOptions = {}): Promise<void> { await this.#call('DELETE', `admin/streams/${seg(streamid)}`, opts); }
  /** POST /admin/notifications/{username}: a system notification (a `system` event for them). */
  notify(username: string, req: NotificationRequest, opts: CallOptions = {}): Promise<MessageResponse> {
    return this.#call('POST', `admin/notifications/${seg(username)}`, { json: req, ...opts });
  }

  /** GET /admin/workgroups. */
  workgroups(opts: CallOptions = {}): Promise<WorkgroupList> { return this.#call('GET', 'admin/workgroups', opts); }
  /** GET /admin/workgroups/{name}. */
  workgroup(name: string, opts: CallOptions = {}): Promise<Workgroup> { return this.#call('GET', `admin/workgroups/${seg(name)}`, opts); }
  /** POST /admin/workgroups. */
  createWorkgroup(wg: Workgroup, opts: CallOptions = {}): Promise<Workgroup> { return this.#call('POST', 'admin/workgroups', { json: wg, ...opts }); }
  /** PUT /admin/workgroups/{name}. */
  updateWorkgroup(name: string, wg: Workgroup, opts: CallOptions = {}): Promise<Workgroup> {
    return this.#call('PUT', `admin/workgroups/${seg(name)}`, { json: wg, ...opts });
  }
  /** DELETE /admin/workgroups/{name}. */
  async deleteWorkgroup(name: string, opts: CallOptions = {}): Promise<void> { await this.#call('DELETE', `admin/workgroups/${seg(name)}`, opts); }
}
