// Shared by the client tests: what they need, and the stack they run on
// (the e2e harness's Prosody + gateway, with the settings the client's
// features need).
import { existsSync, writeFileSync, mkdtempSync, mkdirSync } from 'node:fs';
import { ARTIFACTS } from '../../../e2e/harness.mjs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PKG = path.resolve(here, '..');

function onPath(cmd) {
  return (process.env.PATH || '').split(path.delimiter).some((d) => d && existsSync(path.join(d, cmd)));
}

/** Fails (never skips) with the command to run when something is missing. */
export async function clientPrerequisites() {
  const missing = [];
  if (!onPath('prosody')) missing.push('prosody is not installed: run  bash scripts/install-deps.sh prosody  (or: make deps)');
  if (!onPath('go')) missing.push('go is not on PATH');
  if (!existsSync(path.join(PKG, 'dist/index.js'))) missing.push('the client is not built: run  make js-build  (or: cd clients/js && npm ci --ignore-scripts && npx tsc -p .)');
  if (typeof WebSocket === 'undefined') missing.push('no global WebSocket: run node with --experimental-websocket (Node 20) or use Node >= 22');
  if (missing.length) throw new Error(`client tests cannot run:\n  - ${missing.join('\n  - ')}`);
  mkdirSync(ARTIFACTS, { recursive: true });
  return import('../dist/index.js');
}

export const ADMIN = { username: 'admin', password: 'admin-test-password' };

/** The gateway settings of the client tests. */
export function clientStackEnv({ tokenTTL = '6s' } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'xmppgw-js-'));
  const workgroups = path.join(dir, 'workgroups.json');
  writeFileSync(workgroups, JSON.stringify([{ name: 'support', members: ['bob@localhost'], offer_timeout: 30 }]));
  return {
    XMPPGW_ADMIN_USER: ADMIN.username,
    XMPPGW_ADMIN_PASSWORD: ADMIN.password,
    // Shared with devprosody's token auth: admin logins on a user's behalf.
    XMPPGW_XMPP_TOKEN_SECRET: randomBytes(32).toString('hex'),
    XMPPGW_JWT_SECRET: randomBytes(32).toString('hex'),
    XMPPGW_NOTIFY_FROM: 'system',
    XMPPGW_WORKGROUPS_FILE: workgroups,
    // Short-lived tokens: every event stream lives through refreshes.
    XMPPGW_TOKEN_TTL: tokenTTL,
    XMPPGW_LOGIN_FAILURES_PER_USER: '2',
    // A small replay window, so a test can exceed it (reset).
    XMPPGW_SSE_REPLAY: '32',
    XMPPGW_SENDS_PER_SECOND: '10',
  };
}

export const USERS = 'alice:demo,bob:demo,carol:demo,dave:demo,erin:demo,system:demo';

/** Resolves when cond() is truthy (polling), or rejects after ms. */
export async function until(cond, ms = 10000, what = 'condition') {
  const t0 = Date.now();
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** p, or a rejection naming what did not happen within ms. */
export function within(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); })])
    .finally(() => clearTimeout(t));
}
