// A runnable example: two users, a message, typed events, history.
//   make run                                  (another terminal: Prosody + gateway on :8080)
//   cd clients/js && npm ci --ignore-scripts && npx tsc -p .
//   node --experimental-websocket examples/chat.mjs [http://127.0.0.1:8080/]
import { login, GatewayError } from '../dist/index.js';

const baseUrl = process.argv[2] ?? 'http://127.0.0.1:8080/';
const alice = await login({ baseUrl }, 'alice', 'demo');
const bob = await login({ baseUrl }, 'bob', 'demo');

const events = bob.events(); // SSE over fetch; { transport: 'websocket' } works too
events.on('chat', (m) => console.log(`bob got a chat from ${m.from}: ${m.body} (event ${m.event_id})`));
events.on('reset', (r) => console.log(`events were lost (${r.reason}): resync from the REST routes`));
await new Promise((r) => events.onState((s) => s === 'open' && r()));

const arrived = events.next('chat', (m) => m.body === 'Hello Bob!', { timeout: 5000 }); // ask before sending
const { id } = await alice.sendMessage('bob@localhost', { body: 'Hello Bob!', markable: true });
await arrived;
await bob.sendMarker('alice@localhost', id, 'displayed');

for await (const page of bob.historyPages({ with: 'alice@localhost', limit: 20 })) {
  console.log(`history page: ${page.messages?.length ?? 0} messages, complete=${page.complete}`);
  break; // the newest page is enough here
}

try {
  await login({ baseUrl }, 'alice', 'wrong password');
} catch (err) {
  if (err instanceof GatewayError) console.log(`wrong password: HTTP ${err.status}, code ${err.code}`);
}

events.close();
await alice.logoff();
await bob.logoff();
