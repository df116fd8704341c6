// Test harness for the browser tests: checks what they need, builds and
// starts a throwaway Prosody and gateway (as scripts/run-dev.sh does, but on
// free ports in a temp dir), a TCP proxy that can cut connections, and
// headless Debian chromium driven by playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, createWriteStream } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..');
export const ARTIFACTS = path.join(here, 'artifacts');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// The flags the project runs chromium with: no sandbox (containers, root),
// and nothing that talks to Google's servers.
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

/**
 * Fails (never skips) with the command to run when something is missing.
 * Returns playwright-core's chromium launcher.
 */
export async function prerequisites() {
  const missing = [];
  if (!existsSync(CHROMIUM)) {
    missing.push(`chromium is not installed (${CHROMIUM}): run  bash scripts/install-deps.sh chromium  (or: make e2e-deps)`);
  }
  if (!onPath('prosody')) {
    missing.push('prosody is not installed: run  bash scripts/install-deps.sh prosody  (or: make deps)');
  }
  if (!onPath('go')) missing.push('go is not on PATH');
  let playwright = null;
  try {
    playwright = await import('playwright-core');
  } catch {
    missing.push('node modules are missing: run  cd e2e && npm ci  (or: make e2e-deps)');
  }
  if (missing.length) throw new Error(`browser tests cannot run:\n  - ${missing.join('\n  - ')}`);
  mkdirSync(ARTIFACTS, { recursive: true });
  return playwright.chromium;
}

function onPath(cmd) {
  return (process.env.PATH || '').split(path.delimiter).some((d) => d && existsSync(path.join(d, cmd)));
}

function waitForLine(stream, re, what, timeoutMs, proc) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => { cleanup(); reject(new Error(`${what}: not ready after ${timeoutMs} ms:\n${buf.slice(-2000)}`)); }, timeoutMs);
    const onData = (chunk) => {
      buf += chunk;
      const m = buf.match(re);
      if (m) { cleanup(); resolve(m); }
    };
    const onExit = (code) => { cleanup(); reject(new Error(`${what} exited (${code}) before it was ready:\n${buf.slice(-2000)}`)); };
    const cleanup = () => { clearTimeout(timer); stream.off('data', onData); proc.off('exit', onExit); };
    stream.setEncoding('utf8');
    stream.on('data', onData);
    proc.on('exit', onExit);
  });
}

function stop(proc) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), 10000);
    proc.once('exit', () => { clearTimeout(kill); resolve(); });
    proc.kill('SIGTERM');
  });
}

/**
 * Builds ./cmd/xmppgw and ./cmd/devprosody and starts both. env adds
 * variables for both processes (e.g. XMPPGW_XMPP_TOKEN_SECRET, which
 * devprosody's token auth shares with the gateway, or XMPPGW_ADMIN_USER);
 * logs go to ARTIFACTS/<logPrefix>devprosody.log and <logPrefix>gateway.log.
 * stack.restartGateway() stops the gateway (SIGTERM) and starts it again on
 * the same address; stack.addGateway(name, env) starts another one on the
 * same Prosody ({url, addr, proc, stop(), restart()}).
 */
export async function startStack({ users = 'alice:demo,bob:demo', env: extraEnv = {}, logPrefix = '' } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'xmppgw-e2e-'));
  const procs = [];
  const stack = {
    dir,
    async stop() {
      for (const p of procs.reverse()) await stop(p);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const cmd of ['xmppgw', 'devprosody']) {
      execFileSync('go', ['build', '-o', path.join(dir, cmd), `./cmd/${cmd}`], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    }
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('XMPPGW_'))), ...extraEnv };

    const prosody = spawn(path.join(dir, 'devprosody'), ['-dir', path.join(dir, 'prosody'), '-port', '0',
      '-domain', 'localhost'], { env: { ...env, DEVPROSODY_USERS: users }, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(prosody);
    const prosodyLog = createWriteStream(path.join(ARTIFACTS, `${logPrefix}devprosody.log`));
    prosody.stderr.pipe(prosodyLog);
    const [, xmppAddr] = await waitForLine(prosody.stdout, /prosody ready on (\S+)/, 'prosody', 30000, prosody);

    const gwEnv = {
      ...env,
      XMPPGW_LISTEN: '127.0.0.1:0',
      XMPPGW_XMPP_ADDR: xmppAddr,
      XMPPGW_XMPP_DOMAIN: 'localhost',
      XMPPGW_XMPP_TLS: 'starttls',
      XMPPGW_XMPP_CA_FILE: path.join(dir, 'prosody', 'cert.pem'),
      XMPPGW_WEB_UI: 'true',
    };
    // One gateway process, restartable on its address; env adds to gwEnv.
    const gateway = async (name, nodeEnv = {}) => {
      const node = { name };
      const start = async (listen, flags) => {
        const proc = spawn(path.join(dir, 'xmppgw'), [], { env: { ...gwEnv, ...nodeEnv, XMPPGW_LISTEN: listen }, stdio: ['ignore', 'ignore', 'pipe'] });
        procs.push(proc);
        proc.stderr.pipe(createWriteStream(path.join(ARTIFACTS, `${logPrefix}${name}.log`), { flags }));
        const [, addr] = await waitForLine(proc.stderr, /"msg":"xmppgw listening"[^\n]*"addr":"([^"]+)"/, name, 20000, proc);
        Object.assign(node, { proc, addr, url: `http://${addr}` });
        for (let i = 0; ; i++) {
          const res = await fetch(`${node.url}/readyz`).catch(() => null);
          if (res && res.ok) break;
          if (i > 100) throw new Error(`${name}: /readyz never answered 200`);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      node.stop = async () => {
        await stop(node.proc);
        procs.splice(procs.indexOf(node.proc), 1);
      };
      // Stops it (SIGTERM) and starts it again on the same address.
      // whileDown runs after the process has exited, before the new one starts.
      node.restart = async ({ downMs = 0, whileDown } = {}) => {
        await node.stop();
        if (downMs) await new Promise((r) => setTimeout(r, downMs));
        if (whileDown) await whileDown();
        await start(node.addr, 'a');
      };
      await start(nodeEnv.XMPPGW_LISTEN || '127.0.0.1:0', 'w');
      return node;
    };
    const primary = await gateway('gateway');
    Object.assign(stack, { url: primary.url, addr: primary.addr, gateway: primary });
    stack.restartGateway = (o) => primary.restart(o);
    // Another gateway on the same Prosody (e.g. a second cluster node).
    stack.addGateway = (name, nodeEnv) => gateway(name, nodeEnv);
    return stack;
  } catch (err) {
    await stack.stop();
    throw err;
  }
}

/**
 * A TCP proxy in front of the gateway. cut() resets every open connection
 * (the SSE one included); while down, new connections are refused; while
 * frozen, open connections carry nothing.
 */
export async function startProxy(targetAddr) {
  const [host, port] = [targetAddr.slice(0, targetAddr.lastIndexOf(':')), Number(targetAddr.slice(targetAddr.lastIndexOf(':') + 1))];
  const pairs = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) { client.resetAndDestroy(); return; }
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    pairs.add(pair);
    const close = () => { pairs.delete(pair); client.destroy(); upstream.destroy(); };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get open() { return pairs.size; },
    cut() {
      for (const { client, upstream } of pairs) { client.resetAndDestroy(); upstream.destroy(); }
      pairs.clear();
    },
    setDown(v) { down = v; },
    /** Stops (true) or resumes (false) forwarding on the open connections, which stay open. */
    freeze(v) {
      for (const { client, upstream } of pairs) {
        if (v) { client.unpipe(upstream); upstream.unpipe(client); client.pause(); upstream.pause(); } else { client.pipe(upstream); upstream.pipe(client); }
      }
    },
    close() { this.cut(); return new Promise((resolve) => server.close(resolve)); },
  };
}

/** Collects what must never happen on a page: errors and CSP violations. */
export function watchPage(page, name) {
  const problems = [];
  page.on('pageerror', (err) => problems.push(`${name}: page error: ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|Refused to/i.test(text)) problems.push(`${name}: CSP: ${text}`);
  });
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (!['127.0.0.1', 'localhost'].includes(u.hostname) && !['data:', 'blob:'].includes(u.protocol)) {
      problems.push(`${name}: request to another host: ${req.url()}`);
    }
  });
  return problems;
}
