// Reconnect across a gateway restart: two cluster nodes (Redis started here)
// on one Prosody, the client on node A through a proxy. Node A is stopped
// (SIGTERM: node B takes its streams over) and started again on the same
// address; messages sent meanwhile must arrive once, in order, through the
// client's reconnect with Last-Event-ID. In a single-node setup a restart
// loses the streams (they live in the process), so this is the setup in
// which a restart can be survived at all (docs/cluster.md).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { startProxy, startStack } from '../../../e2e/harness.mjs';
import { USERS, clientPrerequisites, until } from './helpers.mjs';

let gw;
let stack;
let proxy;
let redis;
let nodeB;

const freePort = () => new Promise((resolve, reject) => {
  const srv = net.createServer().listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  srv.on('error', reject);
});

async function startRedis() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('redis-server is not installed: run  bash scripts/install-deps.sh redis  (or: make deps)');
  }
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`redis-server not ready:\n${out}`)), 10000);
    proc.stdout.on('data', (d) => { out += d; if (/Ready to accept connections/.test(out)) { clearTimeout(t); resolve(); } });
    proc.on('exit', (code) => { clearTimeout(t); reject(new Error(`redis-server exited (${code}):\n${out}`)); });
  });
  return { url: `redis://127.0.0.1:${port}`, stop: () => new Promise((r) => { proc.once('exit', r); proc.kill('SIGTERM'); }) };
}

before(async () => {
  gw = await clientPrerequisites();
  redis = await startRedis();
  const env = {
    XMPPGW_REDIS_URL: redis.url,
    XMPPGW_CLUSTER: 'jsclient',
    XMPPGW_JWT_SECRET: randomBytes(32).toString('hex'),
    XMPPGW_CLUSTER_SECRET: randomBytes(32).toString('hex'),
    // Takeover re-opens a stream's XMPP session with an on-behalf token.
    XMPPGW_XMPP_TOKEN_SECRET: randomBytes(32).toString('hex'),
    XMPPGW_LEASE_RENEW: '200ms',
    XMPPGW_LEASE_TTL: '1s',
    XMPPGW_DRAIN_TIMEOUT: '5s',
    XMPPGW_CLUSTER_LISTEN: `127.0.0.1:${await freePort()}`,
  };
  stack = await startStack({ users: USERS, env, logPrefix: 'js-restart-' });
  nodeB = await stack.addGateway('gateway-b', { XMPPGW_CLUSTER_LISTEN: `127.0.0.1:${await freePort()}` });
  proxy = await startProxy(stack.addr);
});

after(async () => {
  await proxy?.close();
  await stack?.stop();
  await redis?.stop();
});

test('gateway restart: the client reconnects and gets every message sent meanwhile once, in order (Last-Event-ID replay)', async () => {
  const alice = await gw.login({ baseUrl: proxy.url }, 'alice', 'demo'); // held by node A
  const bob = await gw.login({ baseUrl: nodeB.url }, 'bob', 'demo'); // held by node B
  const events = alice.events({ minBackoff: 200, maxBackoff: 1000 });
  const got = [];
  const states = [];
  events.on('*', (e) => got.push(e));
  events.onState((s) => states.push(s));
  try {
    await until(() => events.state === 'open', 10000, 'alice\'s stream open');
    await bob.sendMessage('alice@localhost', 'before the restart');
    await until(() => got.some((e) => e.body === 'before the restart'), 10000, 'the first message');

    const during = ['while A is down 1', 'while A is down 2', 'while A is down 3'];
    await stack.gateway.restart({
      whileDown: async () => {
        assert.notEqual(events.state, 'open', 'node A is gone: the client is reconnecting');
        for (const body of during) {
          // Node B now holds alice's stream too; bob's sends go through B.
          await bob.sendMessage('alice@localhost', body);
        }
      },
    });
    await until(() => during.every((b) => got.some((e) => e.body === b)), 20000, 'the messages sent while node A was down');
    await bob.sendMessage('alice@localhost', 'after the restart');
    await until(() => got.some((e) => e.body === 'after the restart'), 10000, 'the message after the restart');

    const chats = got.filter((e) => e.type === 'chat').map((e) => e.body);
    assert.deepEqual(chats, ['before the restart', ...during, 'after the restart'], 'each once, in order');
    assert.ok(states.includes('reconnecting'), `states: ${states}`);
    assert.ok(events.connects >= 2, `reconnected (${events.connects})`);
    // Cluster ids are "<n>.<epoch>": one life of the log, increasing.
    const ids = got.map((e) => e.event_id);
    assert.ok(ids.every((id) => /^\d+\.\S+$/.test(id)), `cluster ids: ${ids}`);
    const ns = ids.map((id) => Number(id.split('.')[0]));
    assert.deepEqual(ns, [...ns].sort((a, b) => a - b));
    assert.equal(new Set(ns).size, ns.length);
  } finally {
    events.close();
    alice.close();
    bob.close();
  }
});
