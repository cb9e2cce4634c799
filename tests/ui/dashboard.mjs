// Drives the host's /ui in Debian's headless Chromium, as a person would: sees the
// demo call and its position advance, pauses it with the mouse and resumes it with the
// keyboard (each checked in the host's own /status), types `/play …` into the loopback
// console and waits for the bot's answer, says a file in the call as a person (the call
// shows them speaking), listens to the call (a WebAudio analyser in
// the page measures it), reloads the plugin with the admin token typed into the page,
// and looks at the page at phone width.
// Screenshots go to ARTIFACTS. Run by tests/all/ui.rs:
//
//   node tests/ui/dashboard.mjs http://127.0.0.1:PORT ARTIFACTS
//
// with CHAT (the demo chat), PLAY (what to type), REPLY (what the answer says), SPEAK
// (an audio file a person says in the call) and ADMIN (the host's admin token).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const [base, artifacts] = process.argv.slice(2);
const chat = process.env.CHAT;
const play = process.env.PLAY;
const reply = process.env.REPLY;
const speakFile = process.env.SPEAK;
const admin = process.env.ADMIN;
if (!base || !artifacts || !chat || !play || !reply || !speakFile || !admin) {
  console.error('usage: CHAT=… PLAY=… REPLY=… SPEAK=FILE ADMIN=… node dashboard.mjs BASE_URL ARTIFACTS');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const step = (what) => console.log(`step: ${what}`);
const status = async () => (await fetch(`${base}/status`)).json();
const callState = async () => (await status()).calls.find((c) => String(c.chat) === chat)?.state;

/** Polls `check` until it returns something truthy. */
async function until(what, check, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
let page;
try {
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const foreign = [];
  const errors = [];
  page.on('request', (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`${r.status()} from ${r.url()}`); });

  step('the page shows the demo call, its position advancing');
  await page.goto(`${base}/ui`);
  const row = page.locator(`#calls tr[data-chat="${chat}"]`);
  await row.waitFor();
  const time = row.locator('.time');
  const first = await time.textContent();
  await until('the position to advance', async () => (await time.textContent()) !== first);
  const timing = await row.locator('td[data-label="Timing"]').textContent();
  if (!/^p99 \d+\.\d ms · thread \d+$/.test(timing)) throw new Error(`the timing cell names no pacer thread: ${timing}`);
  await page.screenshot({ path: `${artifacts}/calls.png`, fullPage: true });

  step('Pause, clicked, pauses the call in the host');
  await row.getByRole('button', { name: 'Pause' }).click();
  await until('/status to say paused', async () => (await callState()) === 'paused');
  await row.getByRole('button', { name: 'Resume' }).waitFor();

  step('Resume, from the keyboard, resumes it; the focus stays on the control as the page updates');
  const focused = () => page.evaluate(() => document.activeElement?.textContent);
  await until('Tab to reach Resume', async () => {
    await page.keyboard.press('Tab');
    return (await focused()) === 'Resume';
  });
  await page.keyboard.press('Enter');
  await until('/status to say playing', async () => (await callState()) === 'playing');
  await until('the focus to pass to Pause, in its place', async () => (await focused()) === 'Pause');
  const resumedAt = await time.textContent();
  await until('the position to advance', async () => (await time.textContent()) !== resumedAt);
  if ((await focused()) !== 'Pause') throw new Error(`the page's update moved the focus to ${await focused()}`);

  step(`typing ${play} in the console makes the bot answer`);
  await page.locator('#console').waitFor();
  await page.selectOption('#chat', chat);
  await page.fill('#text', play);
  await page.getByRole('button', { name: 'Send' }).click();
  const answer = page.locator('#transcript li.bot', { hasText: reply });
  await answer.first().waitFor({ timeout: 15000 });
  await page.screenshot({ path: `${artifacts}/console.png`, fullPage: true });

  step('a file said in the call as a person: the call hears them speaking');
  await page.setInputFiles('#file-input', speakFile);
  await page.getByRole('button', { name: 'Say it in the call' }).click();
  await row.locator('td.people', { hasText: 'speaking: 424242' }).waitFor({ timeout: 15000 });
  if (!(await row.locator('td.people').textContent()).startsWith('424242')) throw new Error('the speaker is not listed as a participant');

  step('Listen plays what the call hears: the page\'s analyser measures sound');
  await page.getByRole('button', { name: 'Listen' }).click();
  await until('a non-silent level', async () => Number(await page.locator('#level').getAttribute('data-peak')) > 0.05);
  // What the page adds to the loopback's own hold (its jitter buffer, JITTER_HOLD_MS).
  const pageDelay = Number(await page.locator('#level').getAttribute('data-page-delay-ms'));
  const delay = pageDelay + Number(process.env.JITTER_HOLD_MS || 0);
  console.log(`listen delay: ${delay} ms at most (${pageDelay} ms in the page)`);
  if (!(delay < 500)) throw new Error(`Listen lags ${delay} ms behind the call; the bar is 500 ms`);
  await page.getByRole('button', { name: 'Stop listening' }).click();
  await page.getByRole('button', { name: 'Listen' }).waitFor();

  step('the events log shows what happened');
  await page.locator('#events li[data-kind="message"]').first().waitFor();

  step('the plugin controls wait for the admin token; typed in, Reload reloads the plugin');
  const plugin = page.locator('#plugins tbody tr').first();
  const reload = plugin.getByRole('button', { name: 'Reload' });
  if (!(await reload.isDisabled())) throw new Error('Reload is offered before the admin token is given');
  const reloads = (await status()).plugins[0].reloads;
  await page.fill('#admin-token', admin);
  await page.getByRole('button', { name: 'Use it' }).click();
  await reload.click();
  await until('/status to count the reload', async () => (await status()).plugins[0].reloads > reloads);
  await page.locator('#admin').waitFor({ state: 'hidden' });

  step('readable at phone width: nothing wider than the screen but the tables, which scroll');
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) throw new Error(`the page is ${overflow}px wider than a phone's screen`);
  await page.screenshot({ path: `${artifacts}/phone.png`, fullPage: true });

  if (foreign.length) throw new Error(`requests left the host: ${foreign.join(', ')}`);
  if (errors.length) throw new Error(`the page reported errors: ${errors.join(' | ')}`);
  step('done');
} catch (e) {
  if (page) await page.screenshot({ path: `${artifacts}/failure.png`, fullPage: true }).catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
