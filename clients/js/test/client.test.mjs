// The client against a real gateway and Prosody (started by e2e/harness.mjs):
// every Session and Admin method at least once, typed events over SSE and
// WebSocket, reconnects with Last-Event-ID replay, token refresh, errors.
//   make test-js     (or: cd clients/js && node --experimental-websocket --test test/)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { startProxy, startStack } from '../../../e2e/harness.mjs';
import { ADMIN, USERS, clientPrerequisites, clientStackEnv, until, within } from './helpers.mjs';

let gw; // the client module
let stack;
let proxy;
let env;
const sessions = [];
const streams = [];
const opts = () => ({ baseUrl: stack.url });

before(async () => {
  gw = await clientPrerequisites();
  env = clientStackEnv();
  stack = await startStack({ users: USERS, env, logPrefix: 'js-' });
  proxy = await startProxy(stack.addr);
});

after(async () => {
  for (const s of streams) s.close();
  for (const s of sessions) s.close();
  await proxy?.close();
  await stack?.stop();
});

async function loginAs(user, o = {}) {
  const s = await gw.login({ ...opts(), ...o }, user, 'demo');
  sessions.push(s);
  return s;
}

/**
 * session.events(o), recording every event from the start, so that
 * stream.seen(type, pred, {timeout}) also finds an event that arrived before
 * it was called (a REST call's answer may come after the event it caused).
 */
function events(session, o) {
  const stream = session.events(o);
  streams.push(stream);
  const log = [];
  const waiters = new Set();
  stream.on('*', (ev) => {
    log.push(ev);
    for (const w of waiters) w(ev);
  });
  stream.seen = (type, pred = () => true, { timeout = 10000 } = {}) => new Promise((resolve, reject) => {
    const match = (ev) => ev.type === type && pred(ev);
    const hit = log.find(match);
    if (hit) return resolve(hit);
    const w = (ev) => { if (match(ev)) { clearTimeout(t); waiters.delete(w); resolve(ev); } };
    const t = setTimeout(() => { waiters.delete(w); reject(new Error(`no matching ${type} event within ${timeout} ms; got: ${log.map((e) => e.type).join(',')}`)); }, timeout);
    waiters.add(w);
  });
  return stream;
}

/** Collects a stream's events into an array as they arrive. */
function collect(stream) {
  const got = [];
  stream.on('*', (ev) => got.push(ev));
  return got;
}

test('login: a typed Session; wrong credentials and too many failures are GatewayErrors (401, then 429 with retryAfter)', async () => {
  const s = await loginAs('alice');
  assert.match(s.streamid, /\S{16,}/);
  assert.equal(s.bareJid, 'alice@localhost');
  assert.ok(s.expiresAt.getTime() > Date.now(), 'expiresAt in the future');

  const wrong = await gw.login(opts(), 'dave', 'nope').catch((e) => e);
  assert.ok(wrong instanceof gw.GatewayError, `a GatewayError, got ${wrong}`);
  assert.equal(wrong.status, 401);
  assert.equal(wrong.code, 40104);
  assert.match(wrong.requestId, /\S+/);

  // XMPPGW_LOGIN_FAILURES_PER_USER=2: the third failure in a minute is 429.
  let limited;
  for (let i = 0; i < 4 && !limited; i++) {
    const e = await gw.login(opts(), 'dave', 'nope').catch((err) => err);
    assert.ok(e instanceof gw.GatewayError);
    if (e.status === 429) limited = e;
  }
  assert.ok(limited, 'a 429 after repeated failures');
  assert.equal(Math.floor(limited.code / 100), 429);
  assert.ok(limited.retryAfter > 0, `retryAfter set (${limited.retryAfter})`);

  // Resuming with a token: exchanged for a fresh one on the same stream.
  const resumed = await gw.login(opts(), 'alice', { token: s.token });
  sessions.push(resumed);
  assert.equal(resumed.streamid, s.streamid);
  const bad = await gw.login(opts(), 'alice', { token: 'not-a-token' }).catch((e) => e);
  assert.equal(bad.status, 401);
});

test('messages over SSE: send, edit, delete, markers, chat states arrive as typed events', async () => {
  const alice = await loginAs('alice');
  const bob = await loginAs('bob');
  const bobEvents = events(bob);
  const aliceEvents = events(alice);
  await until(() => bobEvents.state === 'open' && aliceEvents.state === 'open', 10000, 'streams open');
  const it = bobEvents[Symbol.asyncIterator]();

  const sent = await alice.sendMessage('bob@localhost', { body: 'hello bob', markable: true, data: { n: 1 } });
  assert.match(sent.id, /\S+/);
  let first;
  for (;;) {
    const { value } = await it.next();
    if (value.type === 'chat' && value.body === 'hello bob') { first = value; break; }
  }
  assert.equal(first.id, sent.id);
  assert.equal(first.from.split('/')[0], 'alice@localhost');
  assert.deepEqual(first.data, { n: 1 });
  assert.equal(first.markable, true);
  assert.match(first.event_id, /^\d+/);
  assert.ok(!Number.isNaN(Date.parse(first.stamp)));

  const plain = await alice.sendMessage('bob@localhost', 'plain text');
  const plainEv = await bobEvents.seen('chat', (e) => e.id === plain.id);
  assert.equal(plainEv.body, 'plain text');

  await bob.sendMarker(alice.jid.split('/')[0], sent.id, 'received');
  const marker = await aliceEvents.seen('marker', (e) => e.id === sent.id);
  assert.equal(marker.marker, 'received');
  await bob.sendMarker('alice@localhost', sent.id, 'displayed', { extraParams: { dialog_id: 'd1' } });
  const displayed = await aliceEvents.seen('marker', (e) => e.marker === 'displayed');
  assert.equal(displayed.id, sent.id);

  await alice.editMessage('bob@localhost', sent.id, { body: 'hello bob (edited)' });
  const edit = await bobEvents.seen('edit', (e) => e.replace_id === sent.id);
  assert.equal(edit.body, 'hello bob (edited)');

  await alice.deleteMessage('bob@localhost', sent.id);
  const del = await bobEvents.seen('delete', (e) => e.id === sent.id);
  assert.equal(del.from.split('/')[0], 'alice@localhost');

  await alice.sendChatState('bob@localhost', 'composing');
  const cs = await bobEvents.seen('chatstate', (e) => e.state === 'composing');
  assert.equal(cs.from.split('/')[0], 'alice@localhost');

  // A raw stanza and a service command.
  await alice.sendRaw("<message to='bob@localhost' type='chat'><body>raw hello</body></message>");
  await bobEvents.seen('chat', (e) => e.body === 'raw hello');
  const cmd = await alice.sendCommand('bob@localhost', { type: 'cmd_get_channels', action: 'list', payload: { page: 1 } });
  assert.match(cmd.id, /\S+/);
  const cmdEv = await bobEvents.seen('command', (e) => e.command === 'cmd_get_channels');
  assert.equal(cmdEv.action, 'list');
  assert.deepEqual(cmdEv.payload, { page: 1 });

  // Ids only go up: nothing was delivered twice.
  const got = collect(bobEvents);
  await alice.sendMessage('bob@localhost', 'last one');
  await until(() => got.some((e) => e.body === 'last one'), 10000, 'last one');
  bobEvents.close();
  aliceEvents.close();
  await within(bobEvents.closed, 15000, 'bobEvents to end');
  assert.equal(bobEvents.state, 'closed');
  assert.deepEqual(await it.next(), { value: undefined, done: true });
});

test('history: async iteration over RSM pages', async () => {
  const alice = await loginAs('alice');
  const carol = await loginAs('carol');
  const tag = `h${Date.now()}`;
  for (let i = 0; i < 5; i++) await alice.sendMessage('carol@localhost', `${tag} ${i}`);
  await until(async () => {
    const p = await carol.history({ with: 'alice@localhost', before: '', limit: 10 });
    return (p.messages ?? []).filter((m) => m.body.startsWith(tag)).length === 5;
  }, 10000, 'the archive to hold 5 messages');

  const pages = [];
  for await (const page of carol.historyPages({ with: 'alice@localhost', limit: 2 })) {
    pages.push(page);
    if (pages.length > 50) break;
  }
  assert.ok(pages.length >= 3, `at least 3 pages of 2, got ${pages.length}`);
  assert.equal(pages.at(-1).complete, true, 'the last page is complete');
  const bodies = pages.flatMap((p) => p.messages.map((m) => m.body)).filter((b) => b.startsWith(tag));
  // Newest page first, each page oldest first.
  assert.deepEqual(bodies.sort(), [0, 1, 2, 3, 4].map((i) => `${tag} ${i}`));

  const forward = [];
  for await (const m of carol.historyMessages({ with: 'alice@localhost', limit: 2 }, { direction: 'forward' })) forward.push(m.body);
  assert.deepEqual(forward.filter((b) => b.startsWith(tag)), [0, 1, 2, 3, 4].map((i) => `${tag} ${i}`), 'forward: oldest first');

  const ac = new AbortController();
  ac.abort();
  const aborted = await carol.history({}, { signal: ac.signal }).catch((e) => e);
  assert.equal(aborted.name, 'AbortError');
});

test('presence and contacts: subscribe, approve, deny, presence events, update, remove', async () => {
  const alice = await loginAs('alice');
  const erin = await loginAs('erin');
  const carol = await loginAs('carol');
  const ae = events(alice);
  const ee = events(erin);
  await until(() => ae.state === 'open' && ee.state === 'open');

  await alice.addContact('erin@localhost', { name: 'Erin', groups: ['friends'] });
  const req = await ee.seen('subscription', (e) => e.action === 'subscribe');
  assert.equal(req.from.split('/')[0], 'alice@localhost');
  await erin.approveContact('alice@localhost');
  await erin.addContact('alice@localhost');
  await ae.seen('subscription', (e) => e.action === 'subscribe');
  await alice.approveContact('erin@localhost');
  await ae.seen('roster', (e) => e.item.jid === 'erin@localhost');

  await erin.setPresence({ show: 'away', status: 'lunch' });
  const pres = await ae.seen('presence', (e) => e.from.startsWith('erin@localhost') && e.show === 'away');
  assert.equal(pres.status, 'lunch');
  assert.equal(pres.presence_type, 'available');

  const list = await until(async () => {
    const l = await alice.contacts();
    const e = l.find((c) => c.jid === 'erin@localhost');
    return e && e.subscription === 'both' ? l : null;
  }, 10000, 'erin in alice\'s contacts with subscription both');
  assert.deepEqual(list.find((c) => c.jid === 'erin@localhost').groups, ['friends']);

  await alice.updateContact('erin@localhost', { name: 'Erin E.', groups: ['work'] });
  await until(async () => (await alice.contacts()).find((c) => c.jid === 'erin@localhost')?.name === 'Erin E.', 10000, 'rename');

  // carol asks alice, alice says no.
  await carol.addContact('alice@localhost');
  await ae.seen('subscription', (e) => e.from.startsWith('carol@localhost') && e.action === 'subscribe');
  await alice.denyContact('carol@localhost');

  await alice.removeContact('erin@localhost');
  await until(async () => !(await alice.contacts()).some((c) => c.jid === 'erin@localhost'), 10000, 'removal');
  ae.close();
  ee.close();
});

test('vcard, private properties, bookmarks, user search', async () => {
  const alice = await loginAs('alice');
  const bob = await loginAs('bob');
  await alice.setVCard({ fn: 'Alice Liddell', nickname: 'al', desc: '{"k":"v"}' });
  const own = await alice.vcard();
  assert.equal(own.fn, 'Alice Liddell');
  const seen = await bob.vcard('alice@localhost');
  assert.equal(seen.nickname, 'al');
  assert.deepEqual(seen.desc_json, { k: 'v' });

  await alice.setProperty('theme', 'dark');
  assert.equal((await alice.properties()).theme, 'dark');
  await alice.deleteProperty('theme');
  assert.equal((await alice.properties()).theme, undefined);

  await alice.setBookmarks([{ room: 'lobby@conference.localhost', name: 'Lobby', autojoin: false, nick: 'al' }]);
  const bm = await alice.bookmarks();
  assert.equal(bm[0].room, 'lobby@conference.localhost');

  // The dev Prosody has no user directory (JUD): the gateway says so with its error shape.
  const found = await alice.searchUsers('bob').catch((e) => e);
  if (found instanceof Error) {
    assert.ok(found instanceof gw.GatewayError, String(found));
    assert.ok(found.status >= 400 && found.code >= 40000, `an API error (${found.status} ${found.code})`);
  } else {
    assert.ok(Array.isArray(found));
  }
});

test('pubsub on a PEP node: publish, items, item, subscribe, notifications, unsubscribe, retract', async () => {
  const alice = await loginAs('alice');
  const ev = events(alice);
  await until(() => ev.state === 'open');
  const node = `urn:xmppgw:test:${Date.now()}`;
  const pub = await alice.pubsub.publish('alice@localhost', node, { id: 'i1', payload_json: { hello: 'world' }, access_model: 'open' });
  assert.equal(pub.id, 'i1');
  const items = await alice.pubsub.items('alice@localhost', node, 10);
  assert.ok(items.some((i) => i.id === 'i1'));
  const item = await alice.pubsub.item('alice@localhost', node, 'i1');
  assert.deepEqual(item.payload_json, { hello: 'world' });

  const sub = await alice.pubsub.subscribe('alice@localhost', node);
  assert.equal(sub.state, 'subscribed');
  const subs = await alice.pubsub.subscriptions('alice@localhost', node);
  assert.ok(subs.length >= 1);
  await alice.pubsub.publish('alice@localhost', node, { id: 'i2', payload_json: { n: 2 } });
  const note = await ev.seen('pubsub', (e) => e.node === node && e.items.some((i) => i.id === 'i2'));
  assert.equal(note.service, 'alice@localhost');
  await alice.pubsub.retract('alice@localhost', node, 'i2');
  await until(async () => !(await alice.pubsub.items('alice@localhost', node)).some((i) => i.id === 'i2'), 10000, 'retraction');
  const subid = subs[0].subid;
  await alice.pubsub.unsubscribe('alice@localhost', node, subid || '-');
  ev.close();
});

test('rooms: create, join, message, subject, occupants, config, invite, history, leave, destroy', async () => {
  const alice = await loginAs('alice');
  const bob = await loginAs('bob');
  const ae = events(alice);
  const be = events(bob);
  await until(() => ae.state === 'open' && be.state === 'open');
  const name = `r${Date.now()}`;
  const created = await alice.createRoom({ room: name, nick: 'alice' });
  assert.match(created.room, new RegExp(`^${name}@`));
  const room = created.room;
  const service = room.split('@')[1];

  assert.ok((await alice.joinedRooms()).some((r) => r.room === room));
  const info = await alice.roomInfo(name, service);
  assert.equal(info.jid, room);
  assert.ok(info.features.includes('http://jabber.org/protocol/muc'), `MUC features: ${info.features}`);
  const pub = await alice.publicRooms(service);
  assert.ok(Array.isArray(pub), `public rooms: ${JSON.stringify(pub)}`);

  const sent = await alice.sendRoomMessage(room, 'hi room');
  assert.match(sent.id, /\S+/);
  const gc = await ae.seen('groupchat', (e) => e.body === 'hi room');
  assert.equal(gc.room, room);

  await alice.setRoomSubject(room, 'testing');
  const subj = await ae.seen('subject', (e) => e.subject === 'testing');
  assert.equal(subj.room, room);

  const occ = await alice.occupants(room);
  assert.ok(occ.some((o) => o.nick === 'alice'));
  const cfg = await alice.roomConfig(room);
  assert.equal(typeof cfg, 'object');
  await alice.setRoomConfig(room, { 'muc#roomconfig_roomdesc': 'a test room' });
  const cfg2 = JSON.stringify(await alice.roomConfig(room));
  assert.ok(cfg2.includes('a test room'), `the new description in ${cfg2.slice(0, 300)}`);

  await alice.inviteToRoom(room, 'bob@localhost', { reason: 'join us' });
  const inv = await be.seen('invitation', (e) => e.room === room);
  assert.equal(inv.reason, 'join us');
  await bob.joinRoom(room, { nick: 'bob' });
  await ae.seen('occupant', (e) => e.room === room && e.nick === 'bob' && e.available);
  await alice.setAffiliation(room, 'bob@localhost', { affiliation: 'member' });
  await alice.setRole(room, 'bob', { role: 'visitor' });
  await ae.seen('occupant', (e) => e.nick === 'bob' && e.role === 'visitor');

  const hist = await until(async () => {
    const p = await alice.roomHistory(room, { before: '', limit: 10 });
    return (p.messages ?? []).some((m) => m.body === 'hi room') ? p : null;
  }, 10000, 'room archive');
  assert.ok(hist.messages.length >= 1);
  let pages = 0;
  for await (const p of alice.roomHistoryPages(room, { limit: 5 })) { pages++; assert.ok(Array.isArray(p.messages ?? [])); }
  assert.ok(pages >= 1);

  await bob.leaveRoom(room);
  await ae.seen('occupant', (e) => e.nick === 'bob' && !e.available);
  await alice.destroyRoom(room, { reason: 'done' });
  ae.close();
  be.close();
});

test('fastpath: agent online, ask, offer, accept, ticket, transcript, reject, cancel', async () => {
  const bob = await loginAs('bob'); // member of "support" (workgroups file)
  const carol = await loginAs('carol');
  const be = events(bob);
  const ce = events(carol);
  await until(() => be.state === 'open' && ce.state === 'open');
  await bob.fastpath.online('support');
  assert.deepEqual((await bob.fastpath.assists()).workgroup, ['support']);
  const queues = await bob.fastpath.queues();
  assert.equal(queues.queue.find((q) => q.name === 'support')?.status, 'open');

  // First request: rejected by the agent, then cancelled by the user.
  const t1 = await carol.fastpath.ask({ workgroup: 'support', question: 'first?', nickname: 'carol', emailAddress: 'carol@example.com' });
  assert.match(t1.ticket, /\S+/);
  const offer1 = await be.seen('offerReceived', (e) => e.workgroup === 'support');
  await bob.fastpath.reject('support', offer1.id);
  assert.equal((await carol.fastpath.ticket(t1.ticket)).ticket, t1.ticket);
  await carol.fastpath.cancel(t1.ticket);
  const left = await carol.fastpath.ticket(t1.ticket).catch((e) => e);
  assert.ok(left instanceof gw.GatewayError ? left.status === 404 : left.state !== 'queued', `the ticket left the queue (${JSON.stringify(left)})`);

  // Second: accepted; the user is offered the room.
  const t2 = await carol.fastpath.ask({ workgroup: 'support', question: 'second?', nickname: 'carol', emailAddress: 'carol@example.com' });
  const offer2 = await be.seen('offerReceived', (e) => e.id !== offer1.id, { timeout: 15000 });
  const acc = await bob.fastpath.accept('support', offer2.id);
  assert.match(acc.room, /@/);
  const offered = await ce.seen('offer', (e) => e.ticket === t2.ticket);
  assert.equal(offered.mucRoom, acc.room);
  const transcript = await carol.fastpath.transcript(t2.ticket).catch((e) => e);
  assert.ok(!(transcript instanceof Error), String(transcript));
  assert.ok(Array.isArray(transcript.messages));
  assert.equal(transcript.complete, true);
  // The ancestor's offer routes: reject one request, accept another.
  const t3 = await carol.fastpath.ask({ workgroup: 'support', question: 'third?', nickname: 'carol', emailAddress: 'carol@example.com' });
  const offer3 = await be.seen('offerReceived', (e) => ![offer1.id, offer2.id].includes(e.id));
  await bob.fastpath.rejectOffer(offer3.id);
  await carol.fastpath.cancel(t3.ticket);
  const erin = await loginAs('erin');
  const t4 = await erin.fastpath.ask({ workgroup: 'support', question: 'fourth?', nickname: 'erin', emailAddress: 'erin@example.com' });
  const offer4 = await be.seen('offerReceived', (e) => ![offer1.id, offer2.id, offer3.id].includes(e.id), { timeout: 15000 });
  const acc4 = await bob.fastpath.acceptOffer(offer4.id);
  assert.equal(acc4.ticket, t4.ticket);
  assert.match(acc4.room, /@/);
  await bob.fastpath.offline('support');
  be.close();
  ce.close();
});

test('admin (Basic and admin token): streams, on-behalf login, notifications, workgroups, kill', async () => {
  const admin = new gw.Admin(opts(), ADMIN);
  const bob = await loginAs('bob');
  const be = events(bob);
  await until(() => be.state === 'open');

  const { streams } = await admin.streams();
  assert.ok(streams.some((s) => s.streamid === bob.streamid));

  const n = await admin.notify('bob', { body: 'maintenance at 6', params: { level: 'info' } });
  assert.match(n.id, /\S+/);
  const sys = await be.seen('system', (e) => e.body === 'maintenance at 6');
  assert.deepEqual(sys.params.level, 'info');

  // On-behalf login: no password, a working session.
  const carol = await admin.loginAs('carol', { resource: 'middleware' });
  sessions.push(carol);
  assert.equal(carol.bareJid, 'carol@localhost');
  const m = await carol.sendMessage('bob@localhost', 'sent by the middleware');
  await be.seen('chat', (e) => e.id === m.id);

  await admin.createWorkgroup({ name: 'sales', members: ['carol@localhost'] });
  assert.equal((await admin.workgroup('sales')).name, 'sales');
  await admin.updateWorkgroup('sales', { name: 'sales', members: ['carol@localhost', 'bob@localhost'] });
  const wgs = (await admin.workgroups()).workgroups;
  assert.deepEqual(wgs.find((w) => w.name === 'sales')?.members, ['carol@localhost', 'bob@localhost']);
  await admin.deleteWorkgroup('sales');
  assert.equal((await admin.workgroup('sales').catch((e) => e)).status, 404);

  // An admin token (xmppgw token --admin) works as well.
  const token = execFileSync(path.join(stack.dir, 'xmppgw'), ['token', '--admin', '--ttl', '10m'], {
    env: { ...process.env, XMPPGW_JWT_SECRET: env.XMPPGW_JWT_SECRET, XMPPGW_ADMIN_USER: ADMIN.username, XMPPGW_ADMIN_PASSWORD: ADMIN.password },
  }).toString().trim();
  const byToken = new gw.Admin(opts(), { token });
  assert.ok((await byToken.streams()).streams.length >= 1);
  const wrong = await new gw.Admin(opts(), { username: 'admin', password: 'wrong-password!' }).streams().catch((e) => e);
  assert.equal(wrong.status, 401);

  // Killing carol's stream: her events end with a GatewayError.
  const ce = events(carol, { minBackoff: 50, maxBackoff: 200 });
  await until(() => ce.state === 'open');
  await admin.killStream(carol.streamid);
  const err = await within(ce.closed, 15000, 'ce to end').then(() => null, (e) => e);
  assert.ok(err instanceof gw.GatewayError, `ended with ${err}`);
  assert.ok([401, 404].includes(err.status), `401/404, got ${err.status}`);
  be.close();
});

test('token refresh: the session refreshes before expiry and the event stream moves to the new token without loss', async () => {
  const alice = await loginAs('alice');
  const bob = await loginAs('bob');
  const be = events(bob);
  const got = collect(be);
  await until(() => be.state === 'open');
  const firstToken = bob.token;
  const firstExpiry = bob.expiresAt.getTime();
  const refreshed = [];
  bob.onToken((s) => refreshed.push(s.token));
  const bodies = [];
  // XMPPGW_TOKEN_TTL=6s: over 9 s the token is refreshed at least once.
  for (let i = 0; i < 9; i++) {
    const body = `tick ${i}`;
    bodies.push(body);
    await alice.sendMessage('bob@localhost', body);
    await new Promise((r) => setTimeout(r, 1000));
  }
  await until(() => got.filter((e) => e.type === 'chat' && e.body.startsWith('tick ')).length >= 9, 10000, 'every tick');
  assert.ok(refreshed.length >= 1, 'refreshed at least once');
  assert.notEqual(bob.token, firstToken);
  assert.ok(bob.expiresAt.getTime() > firstExpiry);
  assert.ok(be.connects >= 2, `the stream reconnected with the new token (connects=${be.connects})`);
  assert.deepEqual(got.filter((e) => e.type === 'chat' && e.body.startsWith('tick ')).map((e) => e.body), bodies, 'each once, in order');
  // The old token still works until it expires; a manual refresh too.
  const r = await bob.refreshToken();
  assert.equal(r.streamid, bob.streamid);
  be.close();
});

test('SSE reconnect: connection cut, messages sent meanwhile are replayed with Last-Event-ID, none lost or doubled', async () => {
  const alice = await loginAs('alice');
  const bob = await gw.login({ baseUrl: proxy.url }, 'bob', 'demo');
  sessions.push(bob);
  const be = events(bob, { minBackoff: 200, maxBackoff: 1000 });
  const got = collect(be);
  const states = [];
  be.onState((s) => states.push(s));
  await until(() => be.state === 'open');
  await alice.sendMessage('bob@localhost', 'before the cut');
  await until(() => got.some((e) => e.body === 'before the cut'));

  proxy.setDown(true);
  proxy.cut();
  await until(() => be.state === 'reconnecting', 5000, 'reconnecting');
  const missed = ['missed 1', 'missed 2', 'missed 3'];
  for (const b of missed) await alice.sendMessage('bob@localhost', b);
  await new Promise((r) => setTimeout(r, 600));
  assert.ok(!got.some((e) => e.body?.startsWith('missed')), 'nothing while cut off');
  proxy.setDown(false);
  await until(() => got.filter((e) => e.body?.startsWith('missed')).length === 3, 15000, 'the replay');
  await alice.sendMessage('bob@localhost', 'after');
  await until(() => got.some((e) => e.body === 'after'));
  const chats = got.filter((e) => e.type === 'chat').map((e) => e.body);
  const from = chats.indexOf('before the cut');
  assert.deepEqual(chats.slice(from), ['before the cut', ...missed, 'after']);
  assert.ok(states.includes('reconnecting') && be.state === 'open');
  const ids = got.map((e) => Number(e.event_id));
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'ids increase');
  assert.equal(new Set(ids).size, ids.length, 'no id twice');
  be.close();
});

test('429 on sends (retryAfter), and reset: resuming from an id older than the replay window yields a typed reset first', async () => {
  const alice = await loginAs('alice');
  const bob = await loginAs('bob');
  const be1 = events(bob);
  await until(() => be1.state === 'open');
  await alice.sendMessage('bob@localhost', 'mark');
  const L = (await be1.seen('chat', (e) => e.body === 'mark')).event_id;
  be1.close();

  // 40 sends at once while bob is away: over XMPPGW_SENDS_PER_SECOND (10, burst 20), so
  // some are refused with 429 and Retry-After; those are sent again later.
  const bodies = Array.from({ length: 40 }, (_, i) => `flood ${i}`);
  const results = await Promise.all(bodies.map((b) => alice.sendMessage('bob@localhost', b).then(() => null, (e) => e)));
  const limited = results.map((e, i) => [e, bodies[i]]).filter(([e]) => e);
  assert.ok(limited.length > 0, 'some sends were over the limit');
  for (const [e] of limited) {
    assert.ok(e instanceof gw.GatewayError, String(e));
    assert.equal(e.status, 429);
    assert.equal(Math.floor(e.code / 100), 429);
    assert.ok(e.retryAfter >= 1, `retryAfter (${e.retryAfter})`);
  }
  // Sent again after Retry-After, then at the allowed rate (a 429 on the
  // way waits its own Retry-After).
  await new Promise((r) => setTimeout(r, limited[0][0].retryAfter * 1000));
  for (const [, b] of limited) {
    for (;;) {
      const e = await alice.sendMessage('bob@localhost', b).then(() => null, (err) => {
        if (err.status !== 429) throw err;
        return err;
      });
      if (!e) break;
      await new Promise((r) => setTimeout(r, e.retryAfter * 1000));
    }
    await new Promise((r) => setTimeout(r, 110));
  }

  // XMPPGW_SSE_REPLAY=32 < 40 events since L: the gateway says so first.
  const be2 = events(bob, { lastEventId: L });
  const log = collect(be2);
  const reset = await be2.seen('reset');
  assert.equal(reset.last_event_id, L);
  assert.ok(reset.oldest_id > Number(L) + 1, `oldest retained ${reset.oldest_id} is past ${L}`);
  assert.equal(log[0].type, 'reset', 'the reset comes before the retained events');
  await be2.seen('chat', (e) => e.body === limited.at(-1)[1]);
  const chats = log.filter((e) => e.type === 'chat');
  assert.ok(chats.length > 0 && chats.length <= 32, `only retained events follow (${chats.length})`);
  be2.close();

  // An id from another life of the stream's log (an epoch this node never had): also a reset.
  const be3 = events(bob, { lastEventId: '1.stale-epoch' });
  const r3 = await be3.seen('reset');
  assert.equal(r3.last_event_id, '1.stale-epoch');
  be3.close();
});

test('WebSocket: typed events, commands resolved by reply-to, error replies, timeouts, revocation', async () => {
  const alice = await gw.login({ baseUrl: proxy.url }, 'alice', 'demo');
  sessions.push(alice);
  const bob = await loginAs('bob');
  const be = events(bob);
  const ws = events(alice, { transport: 'websocket', commandTimeout: 5000 });
  await until(() => ws.state === 'open' && be.state === 'open');
  assert.equal(ws.transport, 'websocket');

  const ok = await ws.send({ type: 'message', to: 'bob@localhost', body: 'over the socket' });
  assert.equal(ok.type, 'ok');
  assert.match(ok.id, /\S+/);
  await be.seen('chat', (e) => e.id === ok.id);
  assert.equal((await ws.send({ type: 'ping' })).type, 'ok');
  await ws.send({ type: 'presence', presence: { show: 'dnd', status: 'busy' } });
  await ws.send({ type: 'chatstate', to: 'bob@localhost', state: 'composing' });

  const room = `ws${Date.now()}`;
  await ws.send({ type: 'join', room, nick: 'alice' });
  const inRoom = await ws.send({ type: 'room_message', room, body: 'hello room, over the socket' });
  await ws.seen('groupchat', (e) => e.id === inRoom.id && e.body === 'hello room, over the socket');
  await ws.send({ type: 'leave', room });
  const toMark = await bob.sendMessage('alice@localhost', { body: 'mark me', markable: true });
  await ws.seen('chat', (e) => e.id === toMark.id);
  await ws.send({ type: 'marker', to: 'bob@localhost', marker: 'displayed', message_id: toMark.id });
  await be.seen('marker', (e) => e.id === toMark.id && e.marker === 'displayed');

  const bad = await ws.send({ type: 'message', to: '', body: 'x' }).catch((e) => e);
  assert.ok(bad instanceof gw.GatewayError, String(bad));
  assert.equal(bad.status, 400);
  assert.ok(bad.code >= 40000);

  // Events arrive typed, with event_id.
  const m = await bob.sendMessage('alice@localhost', 'to the socket');
  const ev = await ws.seen('chat', (e) => e.id === m.id);
  assert.equal(ev.body, 'to the socket');
  assert.match(ev.event_id, /^\d+/);

  // No answer in time: the promise rejects (status 0).
  proxy.freeze(true);
  const t0 = Date.now();
  const late = await ws.send({ type: 'ping' }, { timeout: 300 }).catch((e) => e);
  proxy.freeze(false);
  assert.ok(late instanceof gw.GatewayError && late.status === 0, String(late));
  assert.ok(Date.now() - t0 < 2000);

  // Cut: the socket reconnects with last_event_id and gets what it missed.
  proxy.setDown(true);
  proxy.cut();
  await until(() => ws.state === 'reconnecting', 5000);
  const missed = await bob.sendMessage('alice@localhost', 'missed on the socket');
  proxy.setDown(false);
  await ws.seen('chat', (e) => e.id === missed.id, { timeout: 15000 });
  assert.ok(ws.connects >= 2);

  // Revoking the token closes the socket (4401) for good.
  await alice.revokeToken();
  const err = await within(ws.closed, 15000, 'ws to end').then(() => null, (e) => e);
  assert.ok(err instanceof gw.GatewayError && err.status === 401, `ended with ${err}`);
  be.close();
});

test('WebSocket keepalive: a quiet socket is probed with ping commands instead of being dropped as idle', async () => {
  const erin = await loginAs('erin');
  const ws = events(erin, { transport: 'websocket', idleTimeout: 900 });
  await until(() => ws.state === 'open');
  // Three idle timeouts without an event: the probes' answers keep it open.
  await new Promise((r) => setTimeout(r, 2700));
  assert.equal(ws.state, 'open');
  assert.equal(ws.connects, 1, 'never reconnected');
  ws.close();
});

test('WebSocket: a command sent while the socket is closing waits for the next socket (the event loop keeps running)', async () => {
  const alice = await gw.login({ baseUrl: proxy.url }, 'alice', 'demo');
  sessions.push(alice);
  const ws = events(alice, { transport: 'websocket', idleTimeout: 600, minBackoff: 100, maxBackoff: 300 });
  await until(() => ws.state === 'open');
  const before = ws.connects;
  // Nothing gets through: the probes go unanswered, the client closes the
  // socket as idle, and the close handshake cannot finish (CLOSING).
  proxy.freeze(true);
  await new Promise((r) => setTimeout(r, 900));
  const reply = ws.send({ type: 'ping' }, { timeout: 10000 });
  const t0 = Date.now();
  const late = await new Promise((r) => setTimeout(() => r(Date.now() - t0), 50));
  assert.ok(late < 1000, `timers still fire (${late} ms)`);
  proxy.freeze(false);
  proxy.cut(); // ends the half-closed socket: the client reconnects and sends the command there
  const r = await reply;
  assert.equal(r.type, 'ok');
  assert.ok(ws.connects > before, `reconnected (${ws.connects})`);
  ws.close();
});

test('AbortSignal: a stream closed by its signal; logoff ends the stream', async () => {
  const carol = await loginAs('carol');
  const ac = new AbortController();
  const ce = events(carol, { signal: ac.signal });
  await until(() => ce.state === 'open');
  ac.abort();
  await within(ce.closed, 15000, 'ce to end');
  assert.equal(ce.state, 'closed');

  const ce2 = events(carol, { minBackoff: 50, maxBackoff: 200 });
  await until(() => ce2.state === 'open');
  await carol.logoff();
  const err = await within(ce2.closed, 15000, 'ce2 to end').then(() => null, (e) => e);
  assert.ok(err instanceof gw.GatewayError, `ended with ${err}`);
  const after = await carol.sendMessage('bob@localhost', 'x').catch((e) => e);
  assert.equal(after.status, 401);
});

test('the README example (examples/chat.mjs) runs against the gateway', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [...process.execArgv.filter((a) => a.startsWith('--experimental')), 'examples/chat.mjs', stack.url + '/'],
    { cwd: new URL('..', import.meta.url), timeout: 30000 });
  assert.match(stdout, /bob got a chat from alice@localhost\/\S+: Hello Bob!/);
  assert.match(stdout, /history page: \d+ messages/);
  assert.match(stdout, /wrong password: HTTP 401, code 40104/);
});
