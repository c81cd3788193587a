// The page across a lost connection, in headless Chromium: node reconnect.cjs <page url> <room>
//
// tests/web_ui.rs serves the page through a TCP proxy and reads this script's output: after
// "step: connected" it cuts the proxy, after "step: saw the connection lost" it restores it.
// The page must say it lost the bridge, reconnect by itself (with backoff) and work again: a
// mute toggle afterwards reaches the Room. Environment: CHROMIUM, NODE_PATH as for ui.cjs.
'use strict';

const { chromium } = require('playwright-core');

const [url, room] = process.argv.slice(2);
if (!url || !room) {
  console.error('usage: node reconnect.cjs <page url> <room id>');
  process.exit(2);
}
const STEP = 15000;

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForSelector('#connection[data-state="open"]', { timeout: STEP });
    const toggle = `[data-room="${room}"][data-field="speaker_muted"].toggle`;
    await page.waitForSelector(toggle, { timeout: STEP });
    console.log('step: connected');

    await page.waitForSelector('#connection[data-state="closed"]', { timeout: STEP });
    const said = await page.textContent('#connection');
    if (!/retrying in \d+ s/.test(said)) throw new Error(`connection badge says ${JSON.stringify(said)}`);
    console.log('step: saw the connection lost');

    await page.waitForSelector('#connection[data-state="open"]', { timeout: STEP });
    console.log('step: reconnected');
    await page.waitForFunction(
      (id) => document.querySelector(`.panel[data-room="${id}"] .availability`)?.textContent === 'online',
      room, { timeout: STEP });
    await page.click(toggle);
    await page.waitForSelector(`${toggle}[aria-pressed="true"]`, { timeout: STEP });
    console.log('step: a toggle works again');
    console.log('browser: all steps passed');
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(`browser: FAILED: ${error.stack || error}`);
  process.exit(1);
});
