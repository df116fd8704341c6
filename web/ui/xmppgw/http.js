import { errorFrom } from './errors.js';
/** Resolves the gateway root: relative URLs against the page in a browser. */
export function rootUrl(base) {
    const page = globalThis.document?.baseURI
        ?? globalThis.location?.href;
    const u = new URL(String(base), page);
    if (!u.pathname.endsWith('/'))
        u.pathname += '/';
    return u;
}
/** Encodes one path segment (a JID, a room, an id). */
export const seg = (s) => encodeURIComponent(String(s));
/** The low-level HTTP transport shared by sessions and the admin client. */
export class Http {
    root;
    #fetch;
    constructor(opts) {
        this.root = rootUrl(opts.baseUrl);
        const f = opts.fetch ?? globalThis.fetch;
        if (!f)
            throw new Error('xmppgw client: no fetch (Node >= 20 or a browser needed)');
        this.#fetch = f.bind(globalThis);
    }
    url(path, query) {
        const u = new URL(`restapi/v1/${path}`, this.root);
        for (const [k, v] of Object.entries(query ?? {})) {
            if (v !== undefined)
                u.searchParams.set(k, String(v));
        }
        return u;
    }
    /** Sends a request; resolves the raw response when it is 2xx, else throws GatewayError. */
    async send(req, extraHeaders) {
        const headers = { Accept: 'application/json', ...extraHeaders };
        if (req.auth)
            headers.Authorization = req.auth;
        let body;
        if (req.json !== undefined) {
            headers['Content-Type'] = 'application/json';
            body = JSON.stringify(req.json);
        }
        else if (req.text !== undefined) {
            headers['Content-Type'] = req.contentType ?? 'text/plain; charset=utf-8';
            body = req.text;
        }
        const res = await this.#fetch(this.url(req.path, req.query), { method: req.method, headers, body, signal: req.signal });
        if (!res.ok)
            throw await errorFrom(res);
        return res;
    }
    /** Sends a request and decodes its JSON answer (undefined for 204 or an empty body). */
    async call(req) {
        const res = await this.send(req);
        if (res.status === 204)
            return undefined;
        const text = await res.text();
        if (!text)
            return undefined;
        const type = res.headers.get('Content-Type') ?? '';
        return (type.includes('json') ? JSON.parse(text) : text);
    }
}
/** The HTTP Basic header value. */
export function basic(username, password) {
    const bytes = new TextEncoder().encode(`${username}:${password}`);
    let bin = '';
    for (const b of bytes)
        bin += String.fromCharCode(b);
    return `Basic ${btoa(bin)}`;
}
