// Browser tests of the demo chat page (/) and Swagger UI (/docs/), in
// headless Debian chromium against a real gateway and Prosody.
//   make test-e2e      (or: cd e2e && npm test)
// Screenshots and the servers' logs land in e2e/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, prerequisites, startProxy, startStack, watchPage } from './harness.mjs';

let stack;
let proxy;
let browser;

before(async () => {
  const chromium = await prerequisites();
  stack = await startStack();
  // Alice reaches the gateway through a proxy that can cut her connections.
  proxy = await startProxy(stack.addr);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await stack?.stop();
});

async function newPage(name, baseURL) {
  const ctx = await browser.newContext({ viewport: { width: 1180, height: 720 }, baseURL, locale: 'en-GB', timezoneId: 'UTC' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  const problems = watchPage(page, name);
  return { page, problems };
}

async function signIn(page, user) {
  await page.goto('/');
  await page.fill('#login-user', user);
  await page.fill('#login-pass', 'demo');
  await page.click('#login-submit');
  await page.waitForSelector('#chat-view:not([hidden])');
  await page.waitForSelector('#conn[data-state="live"]');
  // Optional features are discovered from the spec; wait until that is done.
  await page.waitForFunction(() => document.getElementById('features').textContent !== '');
}

const contact = (jid, show) => `#contact-list li[data-jid="${jid}"]${show ? `[data-show="${show}"]` : ''}`;
const bubbles = (page, dir) => page.locator(`#messages .msg.${dir} .bubble`).allTextContents();

async function send(page, text) {
  await page.fill('#compose-text', text);
  await page.press('#compose-text', 'Enter');
  // 202 from the gateway: the mark moves past "sending".
  await page.locator('#messages .msg.out', { hasText: text }).locator('.mark.sent, .mark.received, .mark.displayed').waitFor();
}

test('chat page: sign in, presence, messages both ways, recovery after the event stream is cut', async () => {
  const A = await newPage('alice', proxy.url);
  const B = await newPage('bob', stack.url);
  const alice = A.page;
  const bob = B.page;

  await signIn(alice, 'alice');
  await signIn(bob, 'bob');

  // Contacts: alice adds bob (asks for his presence), bob accepts and asks
  // back, alice's page approves that automatically. Both then see presence.
  await alice.fill('#add-contact-jid', 'bob');
  await alice.press('#add-contact-jid', 'Enter');
  await bob.click('#requests li[data-jid="alice@localhost"] .accept');
  await alice.waitForSelector(contact('bob@localhost', 'available'));
  await bob.waitForSelector(contact('alice@localhost', 'available'));

  await bob.selectOption('#my-show', 'away');
  await bob.fill('#my-status', 'making tea');
  await bob.press('#my-status', 'Enter');
  await alice.waitForSelector(contact('bob@localhost', 'away'));
  await alice.locator(contact('bob@localhost'), { hasText: 'making tea' }).waitFor();
  await bob.selectOption('#my-show', 'available');
  await alice.waitForSelector(contact('bob@localhost', 'available'));

  // alice -> bob (her chat with bob opened when she added him).
  await send(alice, 'Hi Bob!');
  await bob.locator(`${contact('alice@localhost')} .badge`, { hasText: '1' }).waitFor();
  await bob.click(contact('alice@localhost'));
  await bob.locator('#messages .msg.in .bubble', { hasText: 'Hi Bob!' }).waitFor();

  // bob -> alice, with the typing indicator where the gateway has chat states.
  const features = await alice.textContent('#features');
  if (features.includes('typing ✓')) {
    await bob.fill('#compose-text', 'Hel');
    await bob.type('#compose-text', 'l');
    await alice.waitForSelector('#typing:not([hidden])');
    await alice.screenshot({ path: path.join(ARTIFACTS, 'chat-typing.png') });
  }
  await send(bob, 'Hello Alice, how are you?');
  await alice.locator('#messages .msg.in .bubble', { hasText: 'Hello Alice, how are you?' }).waitFor();
  if (features.includes('typing ✓')) await alice.waitForSelector('#typing', { state: 'hidden' });
  if (features.includes('read marks ✓')) {
    // bob has alice's chat open, so her message is marked read.
    await alice.locator('#messages .msg.out', { hasText: 'Hi Bob!' }).locator('.mark.displayed').waitFor();
  }

  // Cut alice's event stream and keep her offline while bob writes: the
  // page must show that it is reconnecting, then recover every message
  // exactly once (Last-Event-ID replay).
  proxy.setDown(true);
  proxy.cut();
  await alice.waitForSelector('#conn[data-state="reconnecting"]');
  await alice.screenshot({ path: path.join(ARTIFACTS, 'chat-reconnecting.png') });
  const missed = ['While you were away (1)', 'While you were away (2)', 'While you were away (3)'];
  for (const text of missed) await send(bob, text);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await alice.locator('#messages .msg.in .bubble', { hasText: 'While you were away' }).count(), 0,
    'alice cannot have received anything while cut off');
  proxy.setDown(false);
  await alice.waitForSelector('#conn[data-state="live"]', { timeout: 30000 });
  await alice.locator('#messages .msg.in .bubble', { hasText: missed[2] }).waitFor();
  const got = await bubbles(alice, 'in');
  assert.deepEqual(got, ['Hello Alice, how are you?', ...missed], 'every message once, in order');

  // And the connection works again in both directions.
  await send(alice, 'Back online, got all three.');
  await bob.locator('#messages .msg.in .bubble', { hasText: 'Back online, got all three.' }).waitFor();
  await bob.waitForTimeout(300); // let the marks settle for the picture

  await alice.screenshot({ path: path.join(ARTIFACTS, 'chat-alice.png') });
  await bob.screenshot({ path: path.join(ARTIFACTS, 'chat-bob.png') });

  // Rooms, where the gateway has the rooms API: both join, talk, and the
  // room's reflection of one's own message is not shown twice.
  if (features.includes('rooms ✓')) {
    const room = '#room-list li[data-jid="lobby@conference.localhost"]';
    for (const p of [alice, bob]) {
      await p.fill('#join-room-name', 'lobby');
      await p.press('#join-room-name', 'Enter');
      await p.waitForSelector(`${room}.active`);
    }
    await send(alice, 'Hello, room!');
    await bob.locator('#messages .msg.in', { hasText: 'Hello, room!' }).locator('.nick', { hasText: 'alice' }).waitFor();
    await send(bob, 'Hi alice, bob here.');
    await alice.locator('#messages .msg.in .bubble', { hasText: 'Hi alice, bob here.' }).waitFor();
    await alice.waitForTimeout(300);
    assert.deepEqual(await bubbles(alice, 'out'), ['Hello, room!'], 'own room message once');
    await alice.screenshot({ path: path.join(ARTIFACTS, 'chat-room.png') });
  }

  // Reload keeps the conversation (history in sessionStorage, resume from
  // the last event id) and the presence (replayed events).
  await alice.reload();
  await alice.waitForSelector('#conn[data-state="live"]');
  await alice.click(contact('bob@localhost'));
  assert.deepEqual(await bubbles(alice, 'in'), ['Hello Alice, how are you?', ...missed], 'history survives a reload, no duplicates');
  await alice.waitForSelector(contact('bob@localhost', 'available'));

  // Logout ends the stream and returns to the sign-in form.
  await alice.click('#logout');
  await alice.waitForSelector('#login-view:not([hidden])');
  await bob.waitForSelector(contact('alice@localhost', 'offline'));
  await alice.screenshot({ path: path.join(ARTIFACTS, 'login.png') });

  assert.deepEqual([...A.problems, ...B.problems], [], 'no page errors, CSP violations or foreign requests');
});

test('Swagger UI: loads offline, lists every tag, Authorize + Try it out work', async () => {
  const { page, problems } = await newPage('docs', stack.url);
  const spec = await (await fetch(`${stack.url}/openapi/swagger.json`)).json();
  const tags = new Set();
  for (const ops of Object.values(spec.paths)) for (const op of Object.values(ops)) for (const t of op.tags || []) tags.add(t);
  assert.ok(tags.size >= 4, `expected several tags, got ${[...tags]}`);

  await page.goto('/docs/');
  await page.waitForSelector('.swagger-ui .info .title');
  for (const tag of tags) await page.waitForSelector(`.opblock-tag[data-tag="${tag}"]`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'swagger.png') });

  // Authorize with Basic (alice / demo).
  await page.click('.auth-wrapper .authorize');
  const basic = page.locator('.auth-container', { hasText: 'Basic authorization' });
  await basic.locator('input[type="text"]').fill('alice');
  await basic.locator('input[type="password"]').fill('demo');
  await basic.locator('button.authorize').click();
  await basic.locator('button', { hasText: 'Logout' }).waitFor();
  await page.click('.dialog-ux .close-modal');

  // Try it out: POST /restapi/v1/chat/{username}/login, credentials from Basic.
  const login = page.locator('.opblock-post', { has: page.locator('[data-path="/restapi/v1/chat/{username}/login"]') });
  await login.locator('.opblock-summary').click();
  await login.locator('.try-out__btn').click();
  await login.locator('tr[data-param-name="username"] input').fill('alice');
  await login.locator('textarea.body-param__text').fill('{}');
  await login.locator('.execute').click();
  const status = login.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor();
  assert.equal((await status.textContent()).trim(), '200');
  const body = JSON.parse(await login.locator('.live-responses-table .response-col_description pre.microlight').first().textContent());
  assert.ok(body.token && body.streamid, 'login answered a token and a stream id');
  await login.locator('.live-responses-table').scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(ARTIFACTS, 'swagger-try-it-out.png') });

  // Authorize with Bearer (the bare token: the page adds "Bearer ") and
  // refresh it: POST /restapi/v1/chat/token.
  await page.click('.auth-wrapper .authorize');
  await page.locator('.auth-container', { hasText: 'Basic authorization' }).locator('button', { hasText: 'Logout' }).click();
  const bearer = page.locator('.auth-container', { hasText: 'BearerAuth' });
  await bearer.locator('input#api_key_value').fill(body.token);
  await bearer.locator('button.authorize').click();
  await page.click('.dialog-ux .close-modal');
  const refresh = page.locator('.opblock-post', { has: page.locator('[data-path="/restapi/v1/chat/token"]') });
  if (await refresh.count()) {
    await refresh.locator('.opblock-summary').click();
    await refresh.locator('.try-out__btn').click();
    await refresh.locator('.execute').click();
  } else {
    const named = page.locator('.opblock-post', { has: page.locator('[data-path="/restapi/v1/chat/{streamid}/token"]') });
    await named.locator('.opblock-summary').click();
    await named.locator('.try-out__btn').click();
    await named.locator('tr[data-param-name="streamid"] input').fill(body.streamid);
    await named.locator('.execute').click();
  }
  const status2 = page.locator('.opblock-post.is-open .live-responses-table .response .response-col_status').last();
  await status2.waitFor();
  assert.equal((await status2.textContent()).trim(), '200', 'bearer-authorized call succeeded');

  assert.deepEqual(problems, [], 'no page errors, CSP violations or foreign requests');
});
