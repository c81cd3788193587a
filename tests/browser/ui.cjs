// Drives the web UI in headless Chromium: node ui.cjs <page url> <room id>
//
// Run by tests/web_ui.rs against the real daemon and the simulator, which checks afterwards
// that the Room itself changed (this script only waits for the page to show each change).
// Environment: CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (a folder: desktop.png and
// phone.png are written there), NODE_PATH (where playwright-core is installed).
'use strict';

const { chromium } = require('playwright-core');

const [url, room] = process.argv.slice(2);
if (!url || !room) {
  console.error('usage: node ui.cjs <page url> <room id>');
  process.exit(2);
}
const STEP = 10000;
const DIALED = 'alice@video.example.com';

function step(what) {
  console.log(`step: ${what}`);
}

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

async function open(browser, options) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  await page.goto(url);
  await page.waitForSelector('#connection[data-state="open"]', { timeout: STEP });
  return { context, page, problems };
}

const control = (field, extra = '') => `[data-room="${room}"][data-field="${field}"]${extra}`;

async function desktop(browser) {
  const { context, page, problems } = await open(browser, { viewport: { width: 1280, height: 900 } });
  step('desktop page connected');

  // The panel is generated from the field table: a toggle per switch, a select per device.
  const mic = page.locator(control('mic_muted', '.toggle'));
  await mic.waitFor({ timeout: STEP });
  await page.locator(`select${control('camera')}`).waitFor({ timeout: STEP });
  await page.waitForFunction(
    (id) => document.querySelector(`.panel[data-room="${id}"] .availability`)?.textContent === 'online',
    room, { timeout: STEP });

  // The room's name holds markup: it must show as text, never become elements.
  const name = await page.locator(`.panel[data-room="${room}"] .room-name`).textContent();
  check(name.includes('<b>room</b>'), `room name shown literally (got ${JSON.stringify(name)})`);
  check(await page.locator('#panels .room-name b, #overview b').count() === 0, 'no element made from the room name');
  step('room name escaped');

  check(await mic.getAttribute('aria-pressed') === 'false', 'microphone starts unmuted');
  await mic.click();
  await page.waitForSelector(control('mic_muted', '.toggle[aria-pressed="true"]'), { timeout: STEP });
  step('mic toggle clicked, shows muted');

  await page.locator(control('ptz', '[data-value="right"]')).click();
  await page.waitForFunction(
    (id) => /ptz: ok/.test(document.querySelector(`.panel[data-room="${id}"] .feedback`).textContent),
    room, { timeout: STEP });
  step('ptz right answered ok');

  await page.locator(`input${control('call')}`).fill(DIALED);
  await page.locator(`button.dial-button${control('call')}`).click();
  await page.waitForFunction(
    ({ id, dialed }) => [...document.querySelectorAll(`.panel[data-room="${id}"] dd`)]
      .some((dd) => ['callee', 'conference_id'].includes(dd.dataset.field) && dd.textContent.includes(dialed)
        || dd.dataset.field === 'in_call' && dd.textContent === 'true'),
    { id: room, dialed: DIALED }, { timeout: STEP });
  step('dialled, the room is calling');

  const hangup = page.locator(control('call', '[data-value="hangup"]'));
  await page.waitForFunction((selector) => !document.querySelector(selector).disabled,
    control('call', '[data-value="hangup"]'), { timeout: STEP });
  await hangup.click();
  await page.waitForFunction(
    (id) => [...document.querySelectorAll(`.panel[data-room="${id}"] dd[data-field="app_state"]`)]
      .some((dd) => dd.textContent === 'normal'),
    room, { timeout: STEP });
  step('hung up, the room is idle again');

  // Request console: the form comes from the catalog's parameter list.
  await page.selectOption('#request-room', room);
  await page.fill('#request-method', 'getCallHistory');
  await page.locator('#request-params [name="count"][data-type="int"]').fill('3');
  await page.click('#request-send');
  await page.waitForSelector('#request-result[data-status="ok"]', { timeout: STEP });
  step('request console: getCallHistory ok');

  await page.click('[data-bridge-request="health_check"]');
  await page.waitForFunction(() => document.querySelector('#bridge-request-status').textContent === 'health_check: ok',
    null, { timeout: STEP });
  step('bridge health_check answered ok');

  await page.waitForSelector('#log li.event', { timeout: STEP });
  check(await page.locator('#bridge dd').count() > 0, 'bridge health shown');
  step('event log and bridge health shown');

  if (process.env.SCREENSHOTS) {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: `${process.env.SCREENSHOTS}/desktop.png`, fullPage: true });
  }
  check(problems.length === 0, problems.join('; '));
  await context.close();
}

async function phone(browser) {
  const { context, page, problems } = await open(browser, {
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  step('phone page connected');
  const camera = page.locator(control('camera_muted', '.toggle'));
  await camera.waitFor({ timeout: STEP });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no sideways scrolling at phone width (${overflow}px too wide)`);
  const box = await camera.boundingBox();
  check(box && box.x >= 0 && box.x + box.width <= 390, 'camera toggle fits the screen');
  await camera.tap();
  await page.waitForSelector(control('camera_muted', '.toggle[aria-pressed="true"]'), { timeout: STEP });
  step('phone: camera toggle tapped, shows muted');
  if (process.env.SCREENSHOTS) {
    await page.locator(`.panel[data-room="${room}"]`).scrollIntoViewIfNeeded();
    await page.screenshot({ path: `${process.env.SCREENSHOTS}/phone.png` });
  }
  check(problems.length === 0, problems.join('; '));
  await context.close();
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    await desktop(browser);
    await phone(browser);
    console.log('browser: all steps passed');
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(`browser: FAILED: ${error.stack || error}`);
  process.exit(1);
});
