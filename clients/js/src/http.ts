import { errorFrom } from './errors.js';

/** How to reach a gateway. */
export interface ClientOptions {
  /**
   * The gateway's root URL, e.g. "https://chat.example.com/" (the client
   * appends "restapi/v1/..."). In a browser it may be relative to the page
   * ("." or "/gw/").
   */
  baseUrl: string | URL;
  /** A fetch to use instead of globalThis.fetch. */
  fetch?: typeof fetch;
}

/** Options every call takes. */
export interface CallOptions {
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** The request of one call, relative to restapi/v1/. */
export interface Request {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  text?: string;
  contentType?: string;
  /** The Authorization header value. */
  auth?: string;
  signal?: AbortSignal;
}

/** Resolves the gateway root: relative URLs against the page in a browser. */
export function rootUrl(base: string | URL): URL {
  const page = (globalThis as { document?: { baseURI?: string } }).document?.baseURI
    ?? (globalThis as { location?: { href?: string } }).location?.href;
  const u = new URL(String(base), page);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u;
}

/** Encodes one path segment (a JID, a room, an id). */
export const seg = (s: string | number): string => encodeURIComponent(String(s));

/** The low-level HTTP transport shared by sessions and the admin client. */
export class Http {
  readonly root: URL;
  readonly #fetch: typeof fetch;

  constructor(opts: ClientOptions) {
    this.root = rootUrl(opts.baseUrl);
    const f = opts.fetch ?? globalThis.fetch;
    if (!f) throw new Error('xmppgw client: no fetch (Node >= 20 or a browser needed)');
    this.#fetch = f.bind(globalThis);
  }

  url(path: string, query?: Request['query']): URL {
    const u = new URL(`restapi/v1/${path}`, this.root);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) u.searchParams.set(k, String(v));
    }
    return u;
  }

  /** Sends a request; resolves the raw response when it is 2xx, else throws GatewayError. */
  async send(req: Request, extraHeaders?: Record<string, string>): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json', ...extraHeaders };
    if (req.auth) headers.Authorization = req.auth;
    let body: string | undefined;
    if (req.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(req.json);
    } else if (req.text !== undefined) {
      headers['Content-Type'] = req.contentType ?? 'text/plain; charset=utf-8';
      body = req.text;
    }
    const res = await this.#fetch(this.url(req.path, req.query), { method: req.method, headers, body, signal: req.signal });
    if (!res.ok) throw await errorFrom(res);
    return res;
  }

  /** Sends a request and decodes its JSON answer (undefined for 204 or an empty body). */
  async call<T>(req: Request): Promise<T> {
    const res = await this.send(req);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (!text) return undefined as T;
    const type = res.headers.get('Content-Type') ?? '';
    return (type.includes('json') ? JSON.parse(text) : text) as T;
  }
}

/** The HTTP Basic header value. */
export function basic(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}
