// The web UI in headless Firefox: node firefox.cjs <page url> <room id>
//
// A shorter run than ui.cjs (Chromium): the page connects, shows the room name as text, a
// mute toggle round-trips through the bridge and the Room, and the phone width has no sideways
// scrolling. Firefox is driven over WebDriver BiDi by puppeteer-core (playwright needs a
// patched Firefox; Debian's firefox-esr is the stock one). tests/web_ui.rs checks the Room.
// Environment: FIREFOX (default /usr/bin/firefox-esr), NODE_PATH (where puppeteer-core is).
'use strict';

const puppeteer = require('puppeteer-core');

const [url, room] = process.argv.slice(2);
if (!url || !room) {
  console.error('usage: node firefox.cjs <page url> <room id>');
  process.exit(2);
}
const STEP = 10000;
const control = (field, extra = '') => `[data-room="${room}"][data-field="${field}"]${extra}`;

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

(async () => {
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    headless: true,
  });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message || error}`));
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(url);
    await page.waitForSelector('#connection[data-state="open"]', { timeout: STEP });
    console.log('step: firefox connected');

    await page.waitForFunction(
      (id) => document.querySelector(`.panel[data-room="${id}"] .availability`)?.textContent === 'online',
      { timeout: STEP }, room);
    const name = await page.$eval(`.panel[data-room="${room}"] .room-name`, (node) => node.textContent);
    check(name.includes('<b>room</b>'), `room name shown literally (got ${JSON.stringify(name)})`);
    check((await page.$$('#panels .room-name b, #overview b')).length === 0, 'no element made from the room name');

    const speaker = control('speaker_muted', '.toggle');
    await page.waitForSelector(speaker, { timeout: STEP });
    await page.click(speaker);
    await page.waitForSelector(control('speaker_muted', '.toggle[aria-pressed="true"]'), { timeout: STEP });
    console.log('step: firefox speaker toggle clicked, shows muted');

    await page.setViewport({ width: 390, height: 844 });
    await page.waitForFunction(() => window.innerWidth === 390, { timeout: STEP });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `no sideways scrolling at phone width (${overflow}px too wide)`);
    console.log('step: firefox phone width fits');

    check(problems.length === 0, problems.join('; '));
    console.log('browser: all steps passed');
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(`browser: FAILED: ${error.stack || error}`);
  process.exit(1);
});
