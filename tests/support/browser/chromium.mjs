#!/usr/bin/env node
// A real browser for keygate's tests, used as $BROWSER:
//
//     chromium.mjs URL
//
// Drives Debian's chromium (/usr/bin/chromium, headless, through
// playwright-core; no browser is downloaded) to URL, which keygate makes
// the file:// URL of its launch page. Chromium follows that page to the
// test oidc-provider, signs in on its login page, answers its consent page
// and follows the redirect to keygate's 127.0.0.1 listener by itself, then
// waits for keygate's page and screenshots it.
//
// Chromium trusts the test CA only through the NSS database in
// $KEYGATE_TEST_CHROMIUM_HOME/.pki/nssdb (certificate errors are NOT
// ignored): that directory becomes Chromium's HOME.
//
// Env:
//   KEYGATE_TEST_CHROMIUM_HOME  HOME for Chromium, holding .pki/nssdb (required)
//   KEYGATE_TEST_BROWSER_MODE   approve (default) | deny | stray
//                               stray: before signing in, sends HEAD, OPTIONS,
//                               a wrong-state GET and another path to the
//                               listener (from Node, not the browser), then
//                               approves
//   KEYGATE_TEST_BROWSER_USER   login name (default alice)
//   KEYGATE_TEST_BROWSER_LOG    append one JSON line per run:
//                               {"mode","url","title","text","status","strays","error"}
//                               (url is the authorization URL; never a code)
//   KEYGATE_TEST_SHOTS          directory for a screenshot of keygate's page,
//                               named <mode>-<pid>.png

import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const STEP_TIMEOUT = 60_000;

// keygate does not wait for its browser, and when git ran on a terminal
// that closes as git exits, everything in the terminal's session is hung
// up: run in a session of our own, as a browser started by a desktop is.
if (!process.env.KEYGATE_TEST_CHROMIUM_DETACHED) {
  const child = spawn(process.execPath, process.argv.slice(1), {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, KEYGATE_TEST_CHROMIUM_DETACHED: '1' },
  });
  child.unref();
  process.exit(0);
}

const mode = process.env.KEYGATE_TEST_BROWSER_MODE || 'approve';
const user = process.env.KEYGATE_TEST_BROWSER_USER || 'alice';
const record = { mode, pid: process.pid, strays: [] };

function log() {
  const path = process.env.KEYGATE_TEST_BROWSER_LOG;
  if (path) appendFileSync(path, JSON.stringify(record) + '\n');
}

// The authorization URL behind keygate's launch page (its meta refresh).
function authorizationUrl(url) {
  if (!url.startsWith('file:')) return url;
  const page = readFileSync(fileURLToPath(url), 'utf8');
  const match = /http-equiv="refresh" content="0;url=([^"]*)"/.exec(page);
  if (!match) throw new Error('the launch page has no refresh');
  return match[1].replaceAll('&amp;', '&').replaceAll('&quot;', '"').replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<').replaceAll('&gt;', '>');
}

function send(method, url) {
  return new Promise((resolve) => {
    const req = request(url, { method, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve(`error: ${e.message}`));
    req.end();
  });
}

// What a local process or a stale tab might send while a login waits.
async function strays(authUrl) {
  const params = new URL(authUrl).searchParams;
  const redirect = new URL(params.get('redirect_uri'));
  const state = params.get('state');
  const at = (path, query) => `${redirect.origin}${path}?${query}`;
  const right = `code=stray-code&state=${encodeURIComponent(state)}`;
  for (const [method, url] of [
    ['HEAD', at(redirect.pathname, right)],
    ['OPTIONS', at(redirect.pathname, right)],
    ['GET', at(redirect.pathname, 'code=stray-code&state=forged-state')],
    ['GET', at(redirect.pathname, 'code=stray-code')],
    ['GET', at('/other', right)],
  ]) {
    const status = await send(method, url);
    const path = new URL(url).pathname;
    record.strays.push({ method, path, status });
  }
}

async function main() {
  const home = process.env.KEYGATE_TEST_CHROMIUM_HOME;
  if (!home) throw new Error('KEYGATE_TEST_CHROMIUM_HOME is not set');
  const url = process.argv[2];
  if (!url) throw new Error('usage: chromium.mjs URL');
  const authUrl = authorizationUrl(url);
  record.url = authUrl;
  const redirectOrigin = new URL(new URL(authUrl).searchParams.get('redirect_uri')).origin;
  if (mode === 'stray') await strays(authUrl);

  const profile = mkdtempSync(join(tmpdir(), 'keygate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: false,
    env: { ...process.env, HOME: home },
    args: [
      '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
    timeout: STEP_TIMEOUT,
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    // The listener holds its answer until the code is redeemed: this
    // response is keygate's final page.
    const final = page.waitForResponse(
      (r) => r.url().startsWith(redirectOrigin) && r.request().method() === 'GET',
      { timeout: STEP_TIMEOUT * 2 });
    await page.goto(url);
    for (let step = 0; step < 10; step++) {
      await page.waitForURL((u) => u.protocol === 'https:' || u.origin === redirectOrigin);
      if (page.url().startsWith(redirectOrigin)) break;
      await page.waitForLoadState('load');
      if (await page.locator('input[name="login"]').count()) {
        await page.fill('input[name="login"]', user);
        await page.fill('input[name="password"]', 'x');
        await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
      } else if (await page.locator('input[name="prompt"][value="consent"]').count()) {
        if (mode === 'deny') {
          await Promise.all([page.waitForNavigation(), page.click('a[href*="/abort"]')]);
        } else {
          await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
        }
      } else if (!page.url().startsWith(redirectOrigin)) {
        throw new Error(`unexpected page ${new URL(page.url()).pathname}`);
      }
    }
    const response = await final;
    record.status = response.status();
    await page.waitForLoadState('load');
    record.title = await page.title();
    record.text = await page.locator('body').innerText();
    const shots = process.env.KEYGATE_TEST_SHOTS;
    if (shots) {
      await page.screenshot({ path: join(shots, `${mode}-${process.pid}.png`), fullPage: true });
    }
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

try {
  await main();
  log();
} catch (e) {
  record.error = String(e && e.message || e);
  log();
  console.error(`chromium.mjs: ${record.error}`);
  process.exit(1);
}
