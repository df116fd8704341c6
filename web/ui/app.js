// The demo chat page: plain JavaScript, no framework, no build step. All
// gateway traffic goes through client.js; this file is the UI around it.
// User content is only ever set as textContent (never innerHTML).

import { login, Session, bare, discoverFeatures, callOperation } from './client.js';

const $ = (id) => document.getElementById(id);
const SESSION_KEY = 'xmppgw.session';

// ---------- tiny DOM helper ----------
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

// ---------- storage ----------
// The session (token included) lives in sessionStorage: per tab, gone when
// the tab closes. Contacts and rooms live in localStorage per user, since
// the gateway has no roster route yet.
const store = {
  get(area, key, fallback) {
    try { const v = area.getItem(key); return v ? JSON.parse(v) : fallback; } catch { return fallback; }
  },
  set(area, key, value) { try { area.setItem(key, JSON.stringify(value)); } catch { /* quota: not fatal */ } },
};

// ---------- state ----------
let session = null;
let features = null;
const featuresReady = discoverFeatures().then((f) => { features = f; renderFeatures(); return f; });
let state = freshState();

function freshState() {
  return {
    contacts: [],            // [{jid, asked, approved}]
    rooms: [],               // [{jid, nick}]
    presence: new Map(),     // bare jid -> Map(resource -> {show, status})
    convs: {},               // bare jid -> [message]
    unread: {},              // bare jid -> count
    typing: new Map(),       // bare jid -> timer
    requests: new Set(),     // bare jids asking to see our presence
    active: null,            // {kind: 'chat'|'room', jid}
    composing: false,
    pauseTimer: 0,
    xmppState: 'online',
  };
}

const contactsKey = () => `xmppgw.contacts.${session.bareJid}`;
const roomsKey = () => `xmppgw.rooms.${session.bareJid}`;
const historyKey = () => `xmppgw.history.${session.streamid}`;
const myNick = () => session.bareJid.split('@')[0];
const domain = () => session.bareJid.split('@')[1] || '';

let saveTimer = 0;
function saveHistory() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    if (!session) return;
    const trimmed = {};
    for (const [k, list] of Object.entries(state.convs)) trimmed[k] = list.slice(-200);
    store.set(sessionStorage, historyKey(), { convs: trimmed, show: $('my-show').value, status: $('my-status').value });
  }, 250);
}
const saveContacts = () => store.set(localStorage, contactsKey(), state.contacts);
const saveRooms = () => store.set(localStorage, roomsKey(), state.rooms);

// ---------- login / logout ----------
function showLogin(message = '') {
  $('chat-view').hidden = true;
  $('login-view').hidden = false;
  $('login-error').textContent = message;
  $('login-submit').disabled = false;
  $('login-pass').value = '';
  document.title = 'xmppgw chat';
  ($('login-user').value ? $('login-pass') : $('login-user')).focus();
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const user = $('login-user').value.trim();
  $('login-error').textContent = '';
  $('login-submit').disabled = true;
  try {
    const s = await login(user, $('login-pass').value);
    start(s, false);
  } catch (err) {
    const messages = {
      401: 'Wrong username or password.',
      429: 'Too many attempts: wait a minute and try again.',
      502: 'The XMPP server cannot be reached.',
      503: 'The gateway is busy: try again shortly.',
      504: 'The XMPP server did not answer in time.',
    };
    showLogin(messages[err.status] || `Login failed: ${err.message}`);
    $('login-user').value = user;
  }
});

$('logout').addEventListener('click', () => session && session.logoff().catch(() => {}));

function start(saved, resumed) {
  state = freshState();
  session = new Session(saved);
  store.set(sessionStorage, SESSION_KEY, session);
  session.addEventListener('saved', () => store.set(sessionStorage, SESSION_KEY, session));
  session.addEventListener('state', renderConn);
  session.addEventListener('event', (e) => onEvent(e.detail));
  session.addEventListener('ended', (e) => ended(e.detail.reason));

  state.contacts = store.get(localStorage, contactsKey(), []);
  state.rooms = store.get(localStorage, roomsKey(), []);
  const hist = resumed ? store.get(sessionStorage, historyKey(), null) : null;
  if (hist) {
    state.convs = hist.convs || {};
    $('my-show').value = hist.show || 'available';
    $('my-status').value = hist.status || '';
  } else {
    $('my-show').value = 'available';
    $('my-status').value = '';
  }

  $('me-name').textContent = myNick();
  $('me-jid').textContent = session.jid;
  paintAvatar($('me-avatar'), session.bareJid);
  $('login-view').hidden = true;
  $('chat-view').hidden = false;
  setActive(null);
  renderContacts();
  renderRooms();
  renderConn();
  // After a reload, replay the stream's retained events to rebuild presence,
  // without showing the messages already in the history twice.
  session.connect({ resumeFrom: resumed ? saved.lastEventId : undefined });
  featuresReady.then(loadRoster);
}

// Where the gateway has a roster route, the server's contact list (with
// presence) joins the one kept in this browser.
async function loadRoster() {
  if (!features?.roster || !session) return;
  try {
    const r = await callOperation(session, features.roster, {});
    const items = Array.isArray(r) ? r : Object.values(r || {}).find(Array.isArray) || [];
    items.forEach(mergeRosterItem);
  } catch { /* the local list still works */ }
}

function mergeRosterItem(item) {
  const jid = bare(item.jid);
  if (!jid || jid === session.bareJid) return;
  if (item.subscription === 'remove') {
    removeContact(jid);
    return;
  }
  const c = ensureContact(jid);
  c.approved = item.subscription === 'to' || item.subscription === 'both';
  c.asked = c.asked || c.approved || item.ask === 'subscribe';
  saveContacts();
  for (const p of item.presence?.resources || []) {
    if (!state.presence.has(jid)) state.presence.set(jid, new Map());
    state.presence.get(jid).set(p.resource, { show: p.show || 'available', status: p.status || '' });
  }
  renderContacts();
}

function ended(reason) {
  sessionStorage.removeItem(SESSION_KEY);
  if (session) sessionStorage.removeItem(historyKey());
  state.typing.forEach((t) => clearTimeout(t));
  session = null;
  const messages = {
    logoff: '',
    expired: 'Your session ended (the token expired or was revoked). Please sign in again.',
    offline: 'The gateway closed this stream. Please sign in again.',
  };
  showLogin(messages[reason] ?? '');
}

// ---------- events from the gateway ----------
function onEvent({ event: ev, replayed }) {
  switch (ev.type) {
    case 'chat': case 'normal': case 'headline':
      if (!replayed) onMessage(ev);
      break;
    case 'groupchat':
      if (!replayed) onRoomMessage(ev);
      break;
    case 'error':
      if (!replayed) onBounce(ev);
      break;
    case 'presence':
      onPresence(ev);
      break;
    case 'subscription': // gateways that report subscriptions as their own event
      onPresence({ ...ev, presence_type: ev.action });
      break;
    case 'roster':
      if (ev.item) mergeRosterItem(ev.item);
      break;
    case 'chatstate':
      if (!replayed) onChatState(bare(ev.from), ev.state);
      break;
    case 'marker':
      onMarker(ev);
      break;
    case 'edit':
      if (!replayed) onEdit(ev);
      break;
    case 'delete':
      if (!replayed) onDelete(ev);
      break;
    case 'system':
      if (!replayed) banner(`Notification: ${ev.body || JSON.stringify(ev.params || {})}`);
      break;
    case 'stream':
      state.xmppState = ev.state;
      renderConn();
      break;
    case 'reset':
      banner('Some events were too old to replay: a few earlier messages may be missing.');
      break;
    default:
      break; // command, xmpp (raw) ...: not shown by this demo
  }
}

function onMessage(ev) {
  const me = session.bareJid;
  const outgoing = ev.carbon === 'sent' || bare(ev.from) === me;
  const peer = outgoing ? bare(ev.to) : bare(ev.from);
  if (!peer || isRoom(peer)) return;
  if (!outgoing) {
    if (ev.chatstate) onChatState(peer, ev.chatstate);
    else if (ev.body) stopTyping(peer);
  }
  if (!ev.body) return;
  ensureContact(peer);
  const list = conv(peer);
  if (ev.id && list.some((m) => m.id === ev.id && m.dir === (outgoing ? 'out' : 'in'))) return;
  const msg = { id: ev.id || '', dir: outgoing ? 'out' : 'in', body: ev.body, ts: ev.stamp || new Date().toISOString(),
    status: outgoing ? 'sent' : '', markable: Boolean(ev.markable) };
  if (ev.type === 'headline') msg.kind = 'system';
  list.push(msg);
  if (!outgoing) {
    markMessage(peer, msg, 'received');
    if (isViewing('chat', peer)) markMessage(peer, msg, 'displayed');
    else bumpUnread(peer);
  }
  changed(peer);
}

function onRoomMessage(ev) {
  const room = ev.room ? bare(ev.room) : bare(ev.from);
  if (!state.rooms.some((r) => r.jid === room) || !ev.body) return;
  const nick = ev.nick || String(ev.from).split('/')[1] || '';
  const r = state.rooms.find((x) => x.jid === room);
  const list = conv(room);
  if (ev.id && list.some((m) => m.id === ev.id)) return;
  const mine = nick === r.nick;
  // The room reflects our own messages; one may arrive before the answer
  // to our POST: match it to the message still being sent.
  const pending = mine && list.find((m) => m.dir === 'out' && m.status === 'sending' && !m.id && m.body === ev.body);
  if (pending) {
    pending.id = ev.id || '';
    pending.status = 'sent';
    changed(room);
    return;
  }
  list.push({ id: ev.id || '', dir: mine ? 'out' : 'in', nick, body: ev.body, ts: ev.stamp || new Date().toISOString(), status: mine ? 'sent' : '' });
  if (!isViewing('room', room)) bumpUnread(room);
  changed(room);
}

function onBounce(ev) {
  const peer = bare(ev.from);
  const m = (state.convs[peer] || []).find((x) => x.id === ev.id && x.dir === 'out');
  if (!m) { banner(`Error from ${peer}: ${ev.error?.condition || 'unknown'}`); return; }
  m.status = 'failed';
  m.error = ev.error?.text || ev.error?.condition || 'not delivered';
  changed(peer);
}

function onPresence(ev) {
  const from = bare(ev.from);
  const resource = String(ev.from).split('/').slice(1).join('/');
  if (!from || from === session.bareJid || isRoom(from)) return;
  const c = state.contacts.find((x) => x.jid === from);
  switch (ev.presence_type) {
    case 'available':
      if (!state.presence.has(from)) state.presence.set(from, new Map());
      state.presence.get(from).set(resource, { show: ev.show || 'available', status: ev.status || '' });
      break;
    case 'unavailable':
      state.presence.get(from)?.delete(resource);
      break;
    case 'subscribe':
      // We asked them first: they are answering our request with their own.
      if (c && c.asked) session.setPresence({ to: from, type: 'subscribed' }).catch(() => {});
      else state.requests.add(from);
      break;
    case 'subscribed':
      if (c) { c.approved = true; saveContacts(); }
      break;
    case 'unsubscribed':
      state.requests.delete(from);
      if (c) { c.approved = false; saveContacts(); }
      state.presence.delete(from);
      break;
    default:
      return;
  }
  renderContacts();
  if (isViewing('chat', from)) renderHeader();
}

function onChatState(peer, chatState) {
  if (chatState === 'composing') {
    clearTimeout(state.typing.get(peer));
    // A client that vanishes mid-word never sends "paused": expire it.
    state.typing.set(peer, setTimeout(() => stopTyping(peer), 30000));
  } else {
    stopTyping(peer);
    return;
  }
  renderContacts();
  if (isViewing('chat', peer)) renderHeader();
}

function stopTyping(peer) {
  if (!state.typing.has(peer)) return;
  clearTimeout(state.typing.get(peer));
  state.typing.delete(peer);
  renderContacts();
  if (isViewing('chat', peer)) renderHeader();
}

const RANK = { '': 0, sent: 1, received: 2, displayed: 3, acknowledged: 4 };
function onMarker(ev) {
  const peer = bare(ev.from);
  const m = (state.convs[peer] || []).find((x) => x.id === ev.id && x.dir === 'out');
  if (!m || (RANK[ev.marker] || 0) <= (RANK[m.status] || 0)) return;
  // XEP-0333: a marker also covers the earlier messages of the conversation.
  for (const x of state.convs[peer]) {
    if (x.dir === 'out' && x.status !== 'failed' && (RANK[x.status] || 0) < RANK[ev.marker]) x.status = ev.marker;
    if (x === m) break;
  }
  changed(peer);
}

function onEdit(ev) {
  const peer = bare(ev.from);
  const m = (state.convs[peer] || []).find((x) => x.id === ev.replace_id);
  if (!m) return;
  m.body = ev.body;
  m.edited = true;
  changed(peer);
}

function onDelete(ev) {
  const peer = bare(ev.from);
  const m = (state.convs[peer] || []).find((x) => x.id === ev.id);
  if (!m) return;
  m.body = 'Message deleted';
  m.deleted = true;
  changed(peer);
}

// ---------- sending ----------
$('composer').addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = $('compose-text').value;
  if (!text.trim() || !state.active || !session) return;
  $('compose-text').value = '';
  autosize();
  const { kind, jid } = state.active;
  const msg = { id: '', dir: 'out', body: text, ts: new Date().toISOString(), status: 'sending' };
  if (kind === 'room') msg.nick = state.rooms.find((r) => r.jid === jid)?.nick;
  conv(jid).push(msg);
  changed(jid);
  try {
    if (kind === 'room') {
      const r = await callOperation(session, features.roomSend, { room: jid, body: text });
      msg.id = (r && r.id) || '';
    } else {
      clearTimeout(state.pauseTimer);
      state.composing = false;
      const fields = { body: text };
      // Ask for delivered/read markers and end "typing", where the gateway
      // knows these fields (see discoverFeatures).
      if (features?.messageFields.has('markable')) fields.markable = true;
      if (features?.messageFields.has('chatstate')) fields.chatstate = 'active';
      const r = await session.sendMessage(jid, fields);
      msg.id = r.id;
    }
    if (msg.status === 'sending') msg.status = 'sent';
  } catch (err) {
    msg.status = 'failed';
    msg.error = err.message;
  }
  changed(jid);
});

$('compose-text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});

$('compose-text').addEventListener('input', () => {
  autosize();
  if (!features?.chatstate || state.active?.kind !== 'chat') return;
  const to = state.active.jid;
  if (!state.composing) {
    state.composing = true;
    sendChatState(to, 'composing');
  }
  clearTimeout(state.pauseTimer);
  state.pauseTimer = setTimeout(() => {
    state.composing = false;
    sendChatState(to, 'paused');
  }, 4000);
});

function sendChatState(to, chatState) {
  callOperation(session, features.chatstate, { to, state: chatState }).catch(() => {});
}

function markMessage(peer, msg, marker) {
  if (!features?.marker || !msg.markable || !msg.id || msg.dir !== 'in' || (RANK[msg.marked] || 0) >= RANK[marker]) return;
  msg.marked = marker;
  callOperation(session, features.marker, { to: peer, id: msg.id, marker }).catch(() => {});
}

function autosize() {
  const t = $('compose-text');
  t.rows = Math.min(6, Math.max(1, t.value.split('\n').length));
}

// ---------- presence ----------
$('my-show').addEventListener('change', publishPresence);
$('presence-form').addEventListener('submit', (e) => { e.preventDefault(); publishPresence(); });
$('my-status').addEventListener('change', publishPresence);

function publishPresence() {
  if (!session) return;
  session.setPresence({ show: $('my-show').value, status: $('my-status').value.trim() })
    .then(() => saveHistory())
    .catch((err) => banner(`Could not set presence: ${err.message}`));
}

// ---------- contacts ----------
$('add-contact').addEventListener('submit', (e) => {
  e.preventDefault();
  let jid = $('add-contact-jid').value.trim().toLowerCase();
  if (!jid) return;
  if (!jid.includes('@')) jid = `${jid}@${domain()}`;
  jid = bare(jid);
  if (jid === session.bareJid) { banner('That is you.'); return; }
  $('add-contact-jid').value = '';
  const c = ensureContact(jid);
  c.asked = true;
  saveContacts();
  // Ask to see their presence; they answer with "subscribed".
  session.setPresence({ to: jid, type: 'subscribe' }).catch((err) => banner(`Could not add ${jid}: ${err.message}`));
  setActive({ kind: 'chat', jid });
});

function ensureContact(jid) {
  let c = state.contacts.find((x) => x.jid === jid);
  if (!c) {
    c = { jid, asked: false, approved: false };
    state.contacts.push(c);
    state.contacts.sort((a, b) => a.jid.localeCompare(b.jid));
    saveContacts();
    renderContacts();
  }
  return c;
}

function answerRequest(jid, accept) {
  state.requests.delete(jid);
  if (accept) {
    session.setPresence({ to: jid, type: 'subscribed' }).catch(() => {});
    const c = ensureContact(jid);
    if (!c.asked) {
      c.asked = true;
      saveContacts();
      session.setPresence({ to: jid, type: 'subscribe' }).catch(() => {});
    }
  } else {
    session.setPresence({ to: jid, type: 'unsubscribed' }).catch(() => {});
  }
  renderContacts();
}

function presenceOf(jid) {
  const order = ['chat', 'available', 'away', 'xa', 'dnd'];
  let best = null;
  for (const p of state.presence.get(jid)?.values() || []) {
    if (!best || order.indexOf(p.show) < order.indexOf(best.show)) best = p;
  }
  return best || { show: 'offline', status: '' };
}

const SHOW_TEXT = { available: 'Available', chat: 'Free to chat', away: 'Away', xa: 'Extended away', dnd: 'Do not disturb', offline: 'Offline' };

function renderContacts() {
  if (!session) return;
  const req = $('requests');
  req.replaceChildren(...[...state.requests].map((jid) => h('li', { dataset: { jid } },
    h('span', { text: `${jid} wants to see your presence` }),
    h('span', { class: 'actions' },
      h('button', { class: 'accept', type: 'button', text: 'Accept', onclick: () => answerRequest(jid, true) }),
      h('button', { class: 'decline', type: 'button', text: 'Decline', onclick: () => answerRequest(jid, false) })))));

  $('contact-list').replaceChildren(...state.contacts.map((c) => {
    const p = presenceOf(c.jid);
    const typing = state.typing.has(c.jid);
    const sub = typing ? 'typing…'
      : p.show !== 'offline' ? [SHOW_TEXT[p.show] || p.show, p.status].filter(Boolean).join(' · ')
        : c.asked && !c.approved ? 'Offline · presence requested' : 'Offline';
    const unread = state.unread[c.jid] || 0;
    return h('li', { class: isViewing('chat', c.jid) ? 'active' : '', dataset: { jid: c.jid, show: p.show }, title: c.jid,
      onclick: () => setActive({ kind: 'chat', jid: c.jid }) },
    avatar(c.jid, p.show),
    h('span', { class: 'who' }, h('strong', { text: c.jid.split('@')[0] }), h('small', { class: typing ? 'typing-line' : '', text: sub })),
    unread ? h('span', { class: 'badge', text: String(unread) }) : null,
    h('button', { class: 'remove', type: 'button', title: 'Remove from this list', 'aria-label': `Remove ${c.jid}`, text: '×',
      onclick: (e) => { e.stopPropagation(); removeContact(c.jid); } }));
  }));
  renderTitle();
}

function removeContact(jid) {
  state.contacts = state.contacts.filter((c) => c.jid !== jid);
  saveContacts();
  if (isViewing('chat', jid)) setActive(null);
  renderContacts();
}

// ---------- rooms ----------
$('join-room').addEventListener('submit', async (e) => {
  e.preventDefault();
  let jid = $('join-room-name').value.trim().toLowerCase();
  if (!jid || !features?.roomJoin) return;
  if (!jid.includes('@')) jid = `${jid}@conference.${domain()}`;
  try {
    await callOperation(session, features.roomJoin, { room: jid, nick: myNick() });
    $('join-room-name').value = '';
    if (!state.rooms.some((r) => r.jid === jid)) state.rooms.push({ jid, nick: myNick() });
    saveRooms();
    renderRooms();
    setActive({ kind: 'room', jid });
  } catch (err) {
    banner(`Could not join ${jid}: ${err.message}`);
  }
});

$('leave-room').addEventListener('click', async () => {
  const jid = state.active?.jid;
  if (!jid) return;
  if (features?.roomLeave) await callOperation(session, features.roomLeave, { room: jid, nick: myNick() }).catch(() => {});
  state.rooms = state.rooms.filter((r) => r.jid !== jid);
  saveRooms();
  setActive(null);
  renderRooms();
});

const isRoom = (jid) => state.rooms.some((r) => r.jid === jid);

function renderRooms() {
  const supported = Boolean(features?.roomJoin && features?.roomSend);
  $('join-room').hidden = !supported;
  $('rooms-note').textContent = features === null ? ''
    : supported ? '' : 'Rooms need the gateway\u2019s rooms API, which this gateway does not offer yet.';
  $('room-list').replaceChildren(...(supported ? state.rooms : []).map((r) => h('li', {
    class: isViewing('room', r.jid) ? 'active' : '', dataset: { jid: r.jid }, onclick: () => setActive({ kind: 'room', jid: r.jid }),
  }, h('span', { class: 'avatar room', text: '#' }),
  h('span', { class: 'who' }, h('strong', { text: r.jid.split('@')[0] }), h('small', { text: r.jid })),
  state.unread[r.jid] ? h('span', { class: 'badge', text: String(state.unread[r.jid]) }) : null)));
}

function renderFeatures() {
  const f = features;
  const item = (on, name) => `${name} ${on ? '\u2713' : '\u2013'}`;
  $('features').textContent = [item(f.chatstate, 'typing'), item(f.marker, 'read marks'), item(f.roomJoin && f.roomSend, 'rooms')].join(' · ');
  $('features').title = 'Optional features found in this gateway\u2019s OpenAPI document.\n'
    + `Typing indicator: ${f.chatstate ? `sends via ${f.chatstate.method} ${f.chatstate.path}` : 'shown when "chatstate" events arrive; sending needs a chat-state route'}\n`
    + `Delivered/read marks: ${f.marker ? `sent via ${f.marker.method} ${f.marker.path}` : 'shown when "marker" events arrive; sending needs a marker route'}\n`
    + `Rooms: ${f.roomJoin && f.roomSend ? 'available' : 'need the rooms API'}\n`
    + `Contacts: ${f.roster ? `server roster via ${f.roster.method} ${f.roster.path}, plus this browser's list` : 'kept in this browser (no roster route)'}`;
  if (f.roster) $('contacts-note').textContent = 'Your roster on the server, plus contacts added here. Adding a contact asks to see their presence.';
  renderRooms();
}

// ---------- conversation view ----------
function conv(jid) {
  if (!state.convs[jid]) state.convs[jid] = [];
  return state.convs[jid];
}

function isViewing(kind, jid) {
  return state.active?.kind === kind && state.active.jid === jid;
}

function setActive(target) {
  state.active = target;
  clearTimeout(state.pauseTimer);
  state.composing = false;
  $('empty').hidden = Boolean(target);
  $('conv').hidden = !target;
  if (target) {
    state.unread[target.jid] = 0;
    renderHeader();
    renderMessages(true);
    markDisplayed(target.jid);
    $('compose-text').focus();
  }
  renderContacts();
  renderRooms();
}

function markDisplayed(jid) {
  if (document.visibilityState !== 'visible' || !isViewing('chat', jid)) return;
  const last = [...(state.convs[jid] || [])].reverse().find((m) => m.dir === 'in' && m.markable && m.id);
  if (last) markMessage(jid, last, 'displayed'); // one marker covers the earlier ones
}

document.addEventListener('visibilitychange', () => {
  if (state.active?.kind === 'chat') markDisplayed(state.active.jid);
});

function renderHeader() {
  const a = state.active;
  if (!a) return;
  const room = a.kind === 'room';
  $('peer-name').textContent = a.jid.split('@')[0];
  $('leave-room').hidden = !room;
  if (room) {
    $('peer-avatar').replaceWith(h('span', { id: 'peer-avatar', class: 'avatar room', text: '#' }));
    $('peer-status').textContent = a.jid;
    $('typing').hidden = true;
    return;
  }
  const p = presenceOf(a.jid);
  $('peer-avatar').replaceWith(Object.assign(avatar(a.jid, p.show), { id: 'peer-avatar' }));
  $('peer-status').textContent = [a.jid, SHOW_TEXT[p.show] || p.show, p.status].filter(Boolean).join(' · ');
  $('typing').hidden = !state.typing.has(a.jid);
  $('typing-text').textContent = `${a.jid.split('@')[0]} is typing`;
}

const MARKS = {
  sending: ['\u2022\u2022\u2022', 'sending'],
  sent: ['\u2713', 'sent: accepted by the gateway'],
  received: ['\u2713\u2713', 'delivered'],
  displayed: ['\u2713\u2713', 'read'],
  acknowledged: ['\u2713\u2713', 'read'],
};

function renderMessages(forceBottom = false) {
  const list = $('messages');
  const atBottom = forceBottom || list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const msgs = state.convs[state.active.jid] || [];
  const items = [];
  let lastDay = '';
  for (const m of msgs) {
    const d = new Date(m.ts);
    const day = d.toLocaleDateString(undefined, { weekday: 'short', month: 'short', day: 'numeric' });
    if (day !== lastDay) { items.push(h('li', { class: 'day', text: day })); lastDay = day; }
    const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
    const mark = m.dir === 'out' && MARKS[m.status];
    items.push(h('li', { class: `msg ${m.dir} ${m.kind || ''} ${m.status === 'failed' ? 'failed' : ''} ${m.deleted ? 'deleted' : ''}`.trim(),
      dataset: { id: m.id, status: m.status || '' } },
    m.nick && state.active.kind === 'room' && m.dir === 'in' ? h('span', { class: 'nick', text: m.nick }) : null,
    h('div', { class: 'bubble', text: m.body }),
    h('span', { class: 'meta' },
      h('time', { datetime: m.ts, text: time }),
      m.edited ? h('span', { class: 'edited', text: 'edited' }) : null,
      mark ? h('span', { class: `mark ${m.status}`, title: mark[1], text: mark[0] }) : null,
      m.status === 'failed' ? h('span', { class: 'mark failed', title: m.error || '', text: `not sent: ${m.error || 'error'}` }) : null)));
  }
  list.replaceChildren(...items);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function changed(jid) {
  saveHistory();
  if (state.active?.jid === jid) renderMessages();
  renderContacts();
  renderRooms();
}

function bumpUnread(jid) {
  state.unread[jid] = (state.unread[jid] || 0) + 1;
}

function renderTitle() {
  const n = Object.values(state.unread).reduce((a, b) => a + b, 0);
  document.title = n ? `(${n}) xmppgw chat` : 'xmppgw chat';
}

function renderConn() {
  if (!session) return;
  const el = $('conn');
  let st = session.state;
  let text = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', ended: 'Disconnected' }[st];
  if (st === 'reconnecting' && session.lastEventId) text = `Reconnecting… (resuming after event ${session.lastEventId})`;
  if (st === 'live' && state.xmppState === 'reconnecting') { st = 'reconnecting'; text = 'XMPP server connection lost: the gateway is reconnecting…'; }
  el.dataset.state = st;
  $('conn-text').textContent = text;
}

// ---------- bits ----------
function avatar(jid, show) {
  let hash = 0;
  for (const ch of jid) hash = (hash * 33 + ch.charCodeAt(0)) >>> 0;
  return h('span', { class: `avatar c${hash % 5}`, 'aria-hidden': 'true' }, jid[0] || '?',
    show ? h('span', { class: `pres ${show}` }) : null);
}

function paintAvatar(el, jid) {
  el.replaceWith(Object.assign(avatar(jid), { id: el.id }));
}

let bannerTimer = 0;
function banner(text) {
  const b = $('banner');
  b.textContent = text;
  b.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => { b.hidden = true; }, 6000);
}

// ---------- boot ----------
const saved = store.get(sessionStorage, SESSION_KEY, null);
if (saved && saved.streamid && saved.token && new Date(saved.expires_at) > new Date()) {
  featuresReady.finally(() => start(saved, true));
} else {
  sessionStorage.removeItem(SESSION_KEY);
  showLogin();
}
