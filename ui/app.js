// The dashboard: what the host is doing, from its own HTTP API. `/status` is polled
// (calls and plugins change position every frame; a poll is simpler than an event per
// frame), `/events` streams the host's events, `/loopback/…` is the loopback's control
// endpoint, served on the same port. Everything comes from this host: no other origin.

const $ = (id) => document.getElementById(id);
const POLL_MS = 500;
const EVENTS_KEPT = 200;

let token = sessionStorage.getItem('wasmcalls.token') || '';
let adminToken = sessionStorage.getItem('wasmcalls.admin') || '';
let status = null;
let consoleChat = null;

/** A request to the host, with the token if there is one; JSON back, or an Error naming why. */
async function api(path, { method = 'GET', body, admin = false } = {}) {
  const headers = {};
  const bearer = admin ? adminToken : token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload;
  if (body instanceof Blob) {
    // A file goes as it is: the loopback reads its kind from its bytes and name.
    headers['Content-Type'] = 'application/octet-stream';
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers, body: payload });
  if (r.status === 401 && !admin) {
    $('login').hidden = false;
    throw new Error('the host needs its API token');
  }
  if (r.status === 401 && admin) {
    // Asked again where the plugin controls are, on the next render.
    setAdminToken('');
    throw new Error('the admin token was refused: enter it again under the plugins');
  }
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* plain text */ }
  if (!r.ok) throw new Error((json && json.error) || text || `${r.status} ${r.statusText}`);
  return json;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** A table cell that names its column, so narrow screens can show rows as cards. */
function cell(label, attrs, ...children) {
  return el('td', { ...attrs, 'data-label': label }, ...children);
}

function mmss(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Runs a control, showing its error where the user looks. */
async function act(what, run) {
  try {
    await run();
    await refresh();
  } catch (e) {
    log('error', `${what}: ${e.message}`);
  }
}

// ---- calls -------------------------------------------------------------------------

function callRow(c) {
  const chat = c.chat;
  const control = (label, path, body) =>
    el('button', { type: 'button', 'data-action': path, onclick: () => act(`${label} ${chat}`, () => api(`/calls/${chat}/${path}`, { method: 'POST', body })) }, label);
  const paused = c.state === 'paused';
  const progress = c.duration_ms
    ? el('progress', { max: c.duration_ms, value: c.position_ms, 'aria-label': `position in chat ${chat}` })
    : null;
  const volume = el('input', {
    type: 'range', min: 0, max: 200, step: 5, value: c.volume, 'aria-label': `volume in chat ${chat}`,
    onchange: (e) => act(`volume ${chat}`, () => api(`/calls/${chat}/volume`, { method: 'POST', body: { volume: Number(e.target.value) } })),
  });
  const hearing = (c.heard || []).length;
  return el('tr', { 'data-chat': chat },
    cell('Chat', {}, String(chat)),
    cell('Account', {}, c.account || '–'),
    cell('State', { class: `state state-${c.state}` }, c.state),
    cell('Source', { class: 'source' }, c.source || '–'),
    cell('Position', { class: 'position' }, progress, ' ', el('span', { class: 'time' }, `${mmss(c.position_ms)} / ${c.duration_ms ? mmss(c.duration_ms) : 'live'}`)),
    cell('Volume', {}, volume, ` ${c.volume}%`),
    cell('Participants', { class: 'people' },
      (c.participants || []).length ? c.participants.join(', ') : '–',
      hearing ? ` · hearing ${hearing} stream${hearing > 1 ? 's' : ''}` : '',
      (c.speaking || []).length ? ` · speaking: ${c.speaking.join(', ')}` : ''),
    cell('Timing', { title: 'how far from their deadlines frames leave (99th percentile), and the pacer thread sending them' },
      `p99 ${(c.send_p99_us / 1000).toFixed(1)} ms`, c.pacer_thread == null ? '' : ` · thread ${c.pacer_thread}`),
    cell('Controls', { class: 'controls' },
      paused ? control('Resume', 'resume') : control('Pause', 'pause'),
      ' ', control('Skip', 'skip'), ' ', control('Leave', 'leave')),
  );
}

function renderCalls(calls) {
  renderRows($('calls').tBodies[0], calls.map(callRow), 'chat');
  $('calls').hidden = calls.length === 0;
  $('no-calls').hidden = calls.length !== 0;
}

/** Shows `rows` (built afresh each poll) in `body`, keeping the rows already there by
 *  their `data-<key>`: only the cells whose content changed are swapped, so a control
 *  is not replaced under the pointer mid-click, and rows are re-inserted only when they
 *  moved — re-inserting a row, even in its own place, drops the keyboard's focus. */
function renderRows(body, rows, key) {
  const old = new Map([...body.rows].map((r) => [r.dataset[key], r]));
  const shown = rows.map((fresh) => {
    const row = old.get(fresh.dataset[key]);
    return row ? patch(row, fresh) : fresh;
  });
  const moved = shown.length !== body.rows.length || shown.some((r, i) => r !== body.rows[i]);
  if (moved) body.replaceChildren(...shown);
}

/** `row` taking the cells of `fresh` that differ. A button with the keyboard's focus
 *  passes it to the button in its place (Pause pressed with Enter leaves the focus on
 *  Resume); a cell whose slider or field is being used is left alone. */
function patch(row, fresh) {
  [...fresh.cells].forEach((cell, i) => {
    const now = row.cells[i];
    const focused = now.contains(document.activeElement) ? document.activeElement : null;
    if ((focused && cell.querySelector('input')) || now.innerHTML === cell.innerHTML) return;
    const at = focused ? [...now.querySelectorAll('button')].indexOf(focused) : -1;
    now.replaceWith(cell);
    if (at >= 0) cell.querySelectorAll('button')[at]?.focus();
  });
  return row;
}

// ---- plugins -----------------------------------------------------------------------

function renderPlugins(plugins) {
  const body = $('plugins').tBodies[0];
  const control = (name, action) => el('button', {
    type: 'button', disabled: !adminToken, 'data-action': action,
    onclick: () => act(`${action} ${name}`, () => api(`/admin/plugins/${encodeURIComponent(name)}/${action}`, { method: 'POST', admin: true })),
  }, action[0].toUpperCase() + action.slice(1));
  renderRows(body, plugins.map((p) => el('tr', { 'data-plugin': p.name },
    cell('Name', {}, p.name),
    cell('Version', { class: 'version' }, p.version || '–'),
    cell('Memory', {}, `${(p.memory_kib / 1024).toFixed(1)} MiB`),
    cell('State', {}, p.disabled ? 'disabled' : 'running'),
    cell('Events', {}, String(p.delivered)),
    cell('Traps', {}, String(p.restarts)),
    cell('Reloads', {}, String(p.reloads)),
    cell('Queued', {}, String(p.queued)),
    cell('Controls', {}, control(p.name, 'reload'), ' ', p.disabled ? control(p.name, 'enable') : control(p.name, 'disable')),
  )), 'plugin');
  $('admin-off').hidden = status.admin_api;
  $('admin').hidden = !status.admin_api || Boolean(adminToken);
}

// ---- status ------------------------------------------------------------------------

// Polls and controls both refresh; an answer older than the one shown is dropped, or
// a poll sent before a Pause and answered after it would show the call playing again.
let refreshes = 0;
let shownRefresh = 0;

async function refresh() {
  const n = ++refreshes;
  const answer = await api('/status');
  if (n < shownRefresh) return;
  shownRefresh = n;
  status = answer;
  $('login').hidden = true;
  const t = status.telegram;
  const who = [t.backend, t.account ? `account ${t.account}` : null, t.bot ? `bot ${t.bot}` : null].filter(Boolean).join(' · ');
  $('host').textContent = `${who} · up ${mmss(status.uptime_s * 1000)} · ${status.frames_sent} frames sent, ${status.late_frames} late`;
  renderCalls(status.calls);
  renderPlugins(status.plugins);
  if (t.backend === 'loopback') await refreshConsole();
}

// ---- loopback console --------------------------------------------------------------

async function refreshConsole() {
  const section = $('console');
  section.hidden = false;
  const listed = new Set([...$('chat').options].map((o) => Number(o.value)));
  if (listed.size === 0 || status.calls.some((c) => !listed.has(c.chat))) await loadChats();
  if (consoleChat === null) return;
  const [messages, people] = await Promise.all([
    api(`/loopback/chats/${consoleChat}/messages`),
    api(`/loopback/chats/${consoleChat}/participants`).catch(() => []),
  ]);
  renderTranscript(messages);
  $('participants').replaceChildren(...people.map((p) =>
    el('li', {}, `${p.peer}${p.is_self ? ' (us)' : ''}${p.muted ? ' · muted' : ''}${p.speaking ? ' · speaking' : ''}`)));
}

/** The loopback's chats, and those with calls (any chat id works when none are
 *  configured), keeping the one selected. */
async function loadChats() {
  const chats = await api('/loopback/chats');
  const ids = new Set(chats.map((c) => c.id));
  for (const c of status.calls) ids.add(c.chat);
  const select = $('chat');
  select.replaceChildren(...[...ids].map((id) => {
    const chat = chats.find((c) => c.id === id);
    return el('option', { value: id }, chat && chat.title ? `${chat.title} (${id})` : String(id));
  }));
  if (consoleChat !== null && ids.has(consoleChat)) select.value = String(consoleChat);
  consoleChat = select.value ? Number(select.value) : null;
}

function renderTranscript(messages) {
  const list = $('transcript');
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  const bot = status.telegram.bot;
  list.replaceChildren(...messages.map((m) => {
    const fromBot = m.from === bot;
    const buttons = (m.buttons || []).flat().filter((b) => b.data).map((b) =>
      el('button', { type: 'button', onclick: () => press(m.id, b.data) }, b.text));
    return el('li', { class: `${fromBot ? 'bot' : 'user'}${m.deleted ? ' deleted' : ''}`, 'data-id': m.id },
      el('span', { class: 'who' }, fromBot ? 'bot' : String(m.from)),
      m.text || (m.media ? `[${m.media.kind}: ${m.media.file_name || 'file'}]` : ''),
      m.edited ? ' (edited)' : '',
      buttons.length ? el('div', { class: 'buttons' }, ...buttons) : null);
  }));
  if (atBottom) list.scrollTop = list.scrollHeight;
}

async function consoleAct(run) {
  $('console-error').textContent = '';
  try {
    await run();
    await refreshConsole();
  } catch (e) {
    $('console-error').textContent = e.message;
  }
}

function press(message, data) {
  const from = Number($('from').value);
  return consoleAct(() => api(`/loopback/chats/${consoleChat}/press`, { method: 'POST', body: { from, message, data } }));
}

// ---- listen ------------------------------------------------------------------------

/** Plays what our participant in the console's chat is heard saying, as the loopback
 *  decodes it: raw 48 kHz stereo PCM read as it arrives, each piece scheduled right
 *  after the last with ~100 ms of slack, so the delay stays well under half a second. */
const SLACK = 0.1;
const MAX_AHEAD = 0.4;
let listening = null;

async function listen() {
  if (listening) {
    listening.abort();
    return;
  }
  const button = $('listen');
  const abort = new AbortController();
  listening = abort;
  button.setAttribute('aria-pressed', 'true');
  button.textContent = 'Stop listening';
  const ctx = new AudioContext({ sampleRate: 48000 });
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  analyser.connect(ctx.destination);
  const samples = new Float32Array(analyser.fftSize);
  const meter = () => {
    if (abort.signal.aborted) return;
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((a, x) => a + x * x, 0) / samples.length);
    $('level').value = rms;
    $('level').dataset.peak = Math.max(Number($('level').dataset.peak || 0), rms);
    requestAnimationFrame(meter);
  };
  requestAnimationFrame(meter);
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const r = await fetch(`/loopback/chats/${consoleChat}/audio`, { headers, signal: abort.signal });
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || `${r.status}`);
    const reader = r.body.getReader();
    let carry = new Uint8Array(0);
    let at = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const bytes = new Uint8Array(carry.length + value.length);
      bytes.set(carry);
      bytes.set(value, carry.length);
      const usable = bytes.length - (bytes.length % 4);
      carry = bytes.slice(usable);
      const frames = usable / 4;
      if (frames === 0) continue;
      const now = ctx.currentTime;
      if (at < now) at = now + SLACK; // a start, or after a gap (a pause): catch up
      if (at > now + MAX_AHEAD) continue; // fallen behind: drop rather than lag
      const buffer = ctx.createBuffer(2, frames, 48000);
      const view = new DataView(bytes.buffer, 0, usable);
      const [left, right] = [buffer.getChannelData(0), buffer.getChannelData(1)];
      for (let i = 0; i < frames; i++) {
        left[i] = view.getInt16(i * 4, true) / 32768;
        right[i] = view.getInt16(i * 4 + 2, true) / 32768;
      }
      const source = ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(analyser);
      source.start(at);
      at += buffer.duration;
      // How long the newest audio waits in the page before it is heard: scheduled ahead,
      // plus the audio device's own latency.
      const waits = at - buffer.duration - ctx.currentTime + ctx.baseLatency + (ctx.outputLatency || 0);
      const level = $('level');
      level.dataset.pageDelayMs = Math.round(Math.max(Number(level.dataset.pageDelayMs || 0), waits * 1000));
      level.title = `the page adds ${Math.round(waits * 1000)} ms before you hear it`;
    }
  } catch (e) {
    if (!abort.signal.aborted) $('console-error').textContent = `listen: ${e.message}`;
  } finally {
    listening = null;
    abort.abort();
    await ctx.close();
    button.setAttribute('aria-pressed', 'false');
    button.textContent = 'Listen';
    $('level').value = 0;
  }
}

// ---- events ------------------------------------------------------------------------

function log(kind, text) {
  const list = $('events');
  const time = new Date().toLocaleTimeString();
  list.prepend(el('li', { 'data-kind': kind }, el('time', {}, time), `${kind} ${text}`));
  while (list.children.length > EVENTS_KEPT) list.lastChild.remove();
}

/** `/events` as server-sent events, read with fetch so the token can go in a header. */
async function followEvents() {
  for (;;) {
    try {
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const r = await fetch('/events', { headers });
      if (!r.ok) throw new Error(`${r.status}`);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const kind = /^event: (.*)$/m.exec(block)?.[1] || 'message';
          const data = /^data: (.*)$/m.exec(block)?.[1] || '';
          if (kind !== 'ping') onEvent(kind, data);
        }
      }
    } catch { /* the host restarted or the token is wrong: try again shortly */ }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function onEvent(kind, data) {
  let text = data;
  if (kind === 'raw-update') {
    // Every update arrives raw too: its constructor says enough in a log line.
    try {
      const { chat, update } = JSON.parse(data);
      text = `${update._ || 'update'}${chat ? ` in ${chat}` : ''}`;
    } catch { /* shown whole */ }
  }
  log(kind, text);
  if (['message', 'callback', 'participants'].includes(kind) && consoleChat !== null) refreshConsole().catch(() => {});
}

// ---- wiring ------------------------------------------------------------------------

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value;
  sessionStorage.setItem('wasmcalls.token', token);
  refresh().catch((err) => log('error', err.message));
});

function setAdminToken(value) {
  adminToken = value;
  sessionStorage.setItem('wasmcalls.admin', adminToken);
}

$('admin').addEventListener('submit', (e) => {
  e.preventDefault();
  setAdminToken($('admin-token').value);
  $('admin-token').value = '';
  refresh().catch((err) => log('error', err.message));
});

$('listen').addEventListener('click', () => listen());

$('chat').addEventListener('change', (e) => {
  if (listening) listening.abort();
  consoleChat = Number(e.target.value);
  refreshConsole().catch((err) => { $('console-error').textContent = err.message; });
});

$('say').addEventListener('submit', (e) => {
  e.preventDefault();
  const body = { from: Number($('from').value), text: $('text').value };
  consoleAct(async () => {
    await api(`/loopback/chats/${consoleChat}/messages`, { method: 'POST', body });
    $('text').value = '';
  });
});

$('person').addEventListener('submit', (e) => {
  e.preventDefault();
  const action = e.submitter ? e.submitter.value : 'join';
  const body = { action, user: Number($('person-id').value) };
  consoleAct(() => api(`/loopback/chats/${consoleChat}/participants`, { method: 'POST', body }));
});

$('file').addEventListener('submit', (e) => {
  e.preventDefault();
  const file = $('file-input').files[0];
  const speak = !e.submitter || e.submitter.value === 'speak';
  const from = Number($('from').value);
  const name = encodeURIComponent(file.name);
  const path = speak
    ? `/loopback/chats/${consoleChat}/speak?user=${from}&name=${name}`
    : `/loopback/chats/${consoleChat}/uploads?from=${from}&name=${name}&kind=audio`;
  consoleAct(() => api(path, { method: 'POST', body: file }));
});

async function poll() {
  try {
    await refresh();
  } catch (e) {
    $('host').textContent = `cannot read the host's status: ${e.message}`;
  }
  setTimeout(poll, POLL_MS);
}

poll();
followEvents();
