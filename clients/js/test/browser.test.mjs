// The client package in headless Debian chromium, loaded from the gateway's
// own demo-page assets (/ui/xmppgw/, the checked-in build): the SSE path
// (fetch with the token in a header, reconnect + replay through a proxy
// that cuts connections) and the WebSocket path (commands with reply-to).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CHROMIUM, CHROMIUM_ARGS, prerequisites, startProxy, startStack, watchPage } from '../../../e2e/harness.mjs';
import { USERS, clientStackEnv } from './helpers.mjs';

let stack;
let proxy;
let browser;
let page;
let problems;
const requests = [];
const sockets = [];

before(async () => {
  const chromium = await prerequisites();
  stack = await startStack({ users: USERS, env: clientStackEnv({ tokenTTL: '1h' }), logPrefix: 'js-browser-' });
  proxy = await startProxy(stack.addr);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const ctx = await browser.newContext({ baseURL: proxy.url });
  page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  problems = watchPage(page, 'client');
  page.on('request', (r) => requests.push({ url: r.url(), headers: r.headers() }));
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto('/');
  // The page's module graph includes the package; load it for the tests.
  await page.evaluate(async () => { window.gw = await import('/ui/xmppgw/index.js'); });
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await stack?.stop();
});

test('SSE from a page: typed events with the token in a header, replay after the connection is cut', async () => {
  await page.evaluate(async () => {
    const opts = { baseUrl: location.origin };
    window.alice = await window.gw.login(opts, 'alice', 'demo');
    window.bob = await window.gw.login(opts, 'bob', 'demo');
    window.got = [];
    window.states = [];
    window.bobEvents = window.bob.events({ minBackoff: 200, maxBackoff: 1000 });
    window.bobEvents.on('*', (e) => window.got.push(e));
    window.bobEvents.onState((s) => window.states.push(s));
  });
  const t = Date.now();
  const step = (what) => console.log(`${what}: ${Date.now() - t} ms`);
  await page.waitForFunction(() => window.bobEvents.state === 'open');
  step('open');
  const id = await page.evaluate(async () => (await window.alice.sendMessage('bob@localhost', 'hello from the page')).id);
  await page.waitForFunction((id) => window.got.some((e) => e.type === 'chat' && e.id === id), id);

  step('first message');
  const sse = requests.filter((r) => r.url.includes('/events'));
  assert.ok(sse.length >= 1, 'the page opened an event stream');
  for (const r of sse) {
    assert.ok(!/[?&]token=/.test(r.url), `no token in the URL: ${r.url}`);
    assert.match(r.headers.authorization ?? '', /^Bearer \S+/);
  }

  // Cut the page's connections; alice writes meanwhile (from Node, directly).
  proxy.setDown(true);
  proxy.cut();
  await page.waitForFunction(() => window.bobEvents.state === 'reconnecting');
  step('reconnecting');
  const { login } = await import('../dist/index.js');
  const alice = await login({ baseUrl: stack.url }, 'alice', 'demo');
  const missed = [];
  for (const b of ['cut 1', 'cut 2']) missed.push((await alice.sendMessage('bob@localhost', b)).id);
  const t0 = Date.now();
  proxy.setDown(false);
  await page.waitForFunction((ids) => ids.every((id) => window.got.some((e) => e.id === id)), missed, { timeout: 20000 });
  console.log(`replayed ${Date.now() - t0} ms after the proxy came back; states ${await page.evaluate(() => window.states.join(','))}`);
  const chats = await page.evaluate(() => window.got.filter((e) => e.type === 'chat').map((e) => e.body));
  assert.deepEqual(chats.slice(chats.indexOf('hello from the page')), ['hello from the page', 'cut 1', 'cut 2'], 'each once, in order');
  assert.ok((await page.evaluate(() => window.states)).includes('reconnecting'));
  await page.evaluate(() => window.bobEvents.close());
  alice.close();
  assert.deepEqual(problems, []);
});

test('WebSocket from a page: commands resolved by reply-to, events arriving typed, error frames as GatewayError', async () => {
  const result = await page.evaluate(async () => {
    const ws = window.alice.events({ transport: 'websocket' });
    const bobEvents = window.bob.events();
    const seen = [];
    bobEvents.on('chat', (e) => seen.push(e));
    await new Promise((r) => { const off = ws.onState((s) => { if (s === 'open') { off(); r(); } }); });
    const ok = await ws.send({ type: 'message', to: 'bob@localhost', body: 'over the socket' });
    const deadline = Date.now() + 10000;
    while (!seen.some((e) => e.id === ok.id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const bad = await ws.send({ type: 'marker', to: 'bob@localhost', marker: 'nonsense', message_id: 'x' }).catch((e) => e);
    // next() sees only later events: ask before sending.
    const next = ws.next('chat', (e) => e.body === 'to the page socket', { timeout: 10000 });
    const m = await window.bob.sendMessage('alice@localhost', 'to the page socket');
    const ev = await next;
    ws.close();
    bobEvents.close();
    return {
      ok, delivered: seen.some((e) => e.id === ok.id && e.body === 'over the socket'),
      bad: { name: bad.name, isGatewayError: bad instanceof window.gw.GatewayError, status: bad.status, code: bad.code },
      ev: { type: ev.type, body: ev.body, event_id: ev.event_id, sameId: ev.id === m.id },
    };
  });
  assert.equal(result.ok.type, 'ok');
  assert.match(result.ok.id, /\S+/);
  assert.ok(result.delivered, 'bob got the message sent over the socket');
  assert.equal(result.bad.isGatewayError, true);
  assert.equal(result.bad.status, 400);
  assert.ok(result.bad.code >= 40000);
  assert.equal(result.ev.body, 'to the page socket');
  assert.ok(result.ev.sameId);
  assert.match(result.ev.event_id, /^\d+/);
  assert.ok(sockets.some((u) => u.startsWith('ws://') && u.includes('/ws?')), `a WebSocket was opened (${sockets})`);
  assert.deepEqual(problems, []);
});
