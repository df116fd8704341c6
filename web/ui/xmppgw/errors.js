/**
 * GatewayError is every error answer of the gateway: the HTTP status, the
 * gateway's stable error code (HTTP status × 100 + n, see api/errors.go:
 * 40101 invalid token, 40102 expired, 40103 revoked, 40104 wrong
 * credentials, 40401 stream not found, ...), its request id and, on 429 and
 * 503, Retry-After in seconds. A WebSocket command answered with an error
 * frame, or not answered in time (status 0, code 0), is one as well.
 */
export class GatewayError extends Error {
    /** The HTTP status; 0 for a WebSocket command that timed out or whose socket closed. */
    status;
    /** The gateway's stable error code; 0 when the answer carried none. */
    code;
    /** The gateway's request id, to find the request in its log. */
    requestId;
    /** Seconds to wait before trying again (Retry-After), when the gateway said. */
    retryAfter;
    /** The error body as sent. */
    body;
    constructor(status, body, retryAfter, message) {
        super(message ?? body?.error ?? `HTTP ${status}`);
        this.name = 'GatewayError';
        this.status = status;
        this.code = body?.code ?? 0;
        this.requestId = body?.request_id;
        this.retryAfter = retryAfter;
        this.body = body;
    }
}
/** Parses a Retry-After header (seconds or an HTTP date) into seconds. */
export function parseRetryAfter(value) {
    if (!value)
        return undefined;
    if (/^\d+$/.test(value.trim()))
        return Number(value.trim());
    const at = Date.parse(value);
    return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
/** Turns a non-2xx response into a GatewayError. */
export async function errorFrom(res) {
    let body;
    const type = res.headers.get('Content-Type') ?? '';
    try {
        if (type.includes('json'))
            body = (await res.json());
        else
            await res.body?.cancel();
    }
    catch {
        body = undefined;
    }
    return new GatewayError(res.status, body, parseRetryAfter(res.headers.get('Retry-After')));
}
