// Compile-time checks of the package's types (tsc --noEmit in make js-check):
// each @ts-expect-error must be an error, or the check fails — so types that
// decayed to `any` or lost their discriminant are caught.
import { login, GatewayError, type EventOf, type GatewayEvent, type HistoryPage, type LoginResponse } from '../src/index.js';

export async function check(): Promise<void> {
  const s = await login({ baseUrl: 'http://127.0.0.1:8080/' }, 'alice', 'demo');
  const stream = s.events();
  for await (const ev of stream) {
    const e: GatewayEvent = ev;
    switch (e.type) {
      case 'chat': {
        const body: string = e.body;
        const stamp: string = e.stamp;
        void body; void stamp;
        break;
      }
      case 'marker': {
        const m: string = e.marker;
        void m;
        // @ts-expect-error a marker has no body
        void e.body;
        break;
      }
      case 'reset': {
        const oldest: number = e.oldest_id;
        void oldest;
        break;
      }
      case 'presence': {
        // @ts-expect-error show is a string
        const n: number = e.show;
        void n;
        break;
      }
    }
    const id: string = ev.event_id;
    void id;
  }
  stream.on('edit', (e) => { const r: string = e.replace_id; void r; });
  // @ts-expect-error not an event type
  stream.on('nonsense', () => {});
  const sys: EventOf<'system'> = await stream.next('system');
  const params: Record<string, string> = sys.params;
  void params;

  // Request and response types come from the OpenAPI document.
  const r = await s.sendMessage('bob@localhost', { body: 'hi', markable: true });
  const id: string | undefined = r.id;
  void id;
  // @ts-expect-error not a field of MessageRequest
  await s.sendMessage('bob@localhost', { bdy: 'hi' });
  // @ts-expect-error limit is a number
  await s.history({ limit: '10' });
  const page: HistoryPage = await s.history({ with: 'bob@localhost', before: '' });
  for (const m of page.messages ?? []) { const b: string = m.body; void b; }
  // @ts-expect-error not a marker
  await s.sendMarker('bob@localhost', 'id', 'read');
  const t: LoginResponse = await s.refreshToken();
  void t;

  const ws = s.events({ transport: 'websocket' });
  const ok = await ws.send({ type: 'message', to: 'bob@localhost', body: 'x' });
  const reply: string = ok['reply-to'];
  void reply;
  // @ts-expect-error not a WebSocket command
  await ws.send({ type: 'shout' });

  try { await s.logoff(); } catch (err) {
    if (err instanceof GatewayError) {
      const status: number = err.status;
      const code: number = err.code;
      const retry: number | undefined = err.retryAfter;
      void status; void code; void retry;
    }
  }
}
