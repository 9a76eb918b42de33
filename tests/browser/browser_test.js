#!/usr/bin/env node
// A real browser through the whole flow: Debian's chromium, driven by playwright-core, opens the
// authorize URI from BeginAuthorization, clicks Approve on the sandbox's consent page (which
// POSTs code, state and id_token to the shim as athena's page does), follows the shim's 303 to a
// return page served here, and the test checks that the authorization is ACTIVE. A screenshot of
// the return page is saved as a test artifact.
//
// Usage: browser_test.js ARTIFACT_DIR RUN_STACK_ARGS...
//   RUN_STACK_ARGS: tests/clients/run_stack.sh and its --broker/--shim/--sandbox flags.
'use strict';

const assert = require('assert');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const readline = require('readline');
const {spawn} = require('child_process');
const {chromium} = require('playwright-core');
const {connect} = require('../../client/node/broker.js');

const [artifactDir, ...stackCommand] = process.argv.slice(2);
const CHROMIUM = process.env.LEYR_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = 60000;  // per browser step; the whole test is bounded by 4x this

// The return page: shows what the broker appended to the return URI.
function startReturnServer() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname !== '/done') {
      res.writeHead(404).end();
      return;
    }
    const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    res.writeHead(200, {'Content-Type': 'text/html; charset=utf-8'});
    res.end(`<!doctype html><title>Back in the app</title>
<h1 id="result">${escape(url.searchParams.get('result'))}</h1>
<p>authorization: <code id="authorization">${escape(url.searchParams.get('authorization'))}</code></p>`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// Starts the three servers with run_stack.sh --hold; resolves with their addresses once READY.
// Closing the child's standard input stops them.
function startStack(returnOrigin) {
  const [command, ...args] = stackCommand;
  const child = spawn(command, [...args, `--return-origin=${returnOrigin}`, '--hold'],
                      {stdio: ['pipe', 'pipe', 'inherit']});
  return new Promise((resolve, reject) => {
    const env = {};
    child.on('exit', (code) => reject(new Error(`run_stack.sh exited with ${code}`)));
    readline.createInterface({input: child.stdout}).on('line', (line) => {
      if (line === 'READY') resolve({child, env});
      const eq = line.indexOf('=');
      if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
    });
  });
}

async function main() {
  fs.mkdirSync(artifactDir, {recursive: true});
  const server = await startReturnServer();
  const returnOrigin = `http://127.0.0.1:${server.address().port}`;
  let stack, stackExited, broker, context, userDataDir;
  try {
    const started = await startStack(returnOrigin);
    stack = started.child;
    stackExited = new Promise((resolve) => stack.on('exit', resolve));
    const env = started.env;
    broker = connect(env.LEYR_BROKER);
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'leyr-chromium-'));

    const begun = await broker.BeginAuthorization(
        {connection: env.LEYR_CONNECTION, return_uri: `${returnOrigin}/done`});
    const name = begun.authorization.name;
    assert.strictEqual(begun.authorization.state, 'STATE_PENDING');

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: TIMEOUT_MS,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);

    // Every navigation the browser makes, to show the 303 hop in the log.
    page.on('response', (r) => {
      const u = new URL(r.url());
      console.log(`browser: ${r.request().method()} ${u.origin}${u.pathname} -> ${r.status()}`);
    });

    await page.goto(begun.authorize_uri);
    await Promise.all([
      page.waitForURL((u) => u.origin === returnOrigin && u.pathname === '/done'),
      page.click('#approve button[type=submit]'),
    ]);
    const landed = new URL(page.url());
    assert.strictEqual(landed.searchParams.get('authorization'), name);
    assert.strictEqual(landed.searchParams.get('result'), 'active');
    for (const secret of ['code', 'state', 'id_token']) {
      assert.ok(!landed.searchParams.has(secret), `return URI carries ${secret}`);
    }
    assert.strictEqual(await page.textContent('#result'), 'active');
    const screenshot = path.join(artifactDir, 'return-page.png');
    await page.screenshot({path: screenshot});
    console.log(`screenshot: ${screenshot}`);

    const {authorization} = await broker.GetAuthorization({name});
    console.log(`authorization ${name}: ${authorization.state}, activated=${authorization.activated}`);
    assert.strictEqual(authorization.state, 'STATE_ACTIVE');
    const call = await broker.CallLeyr(
        {authorization: name, method: 'GET', path: '/api/emrs/athenapractice/care-units'});
    assert.strictEqual(call.status_code, 200);
    console.log('browser test: OK');
  } finally {
    if (context) await context.close();
    if (userDataDir) fs.rmSync(userDataDir, {recursive: true, force: true});
    if (broker) broker.close();
    server.close();
    if (stack) {
      stack.stdin.end();
      await stackExited;
    }
  }
}

const watchdog = setTimeout(() => {
  console.error('browser test: timed out');
  process.exit(1);
}, 4 * TIMEOUT_MS);
main().then(() => clearTimeout(watchdog), (err) => {
  console.error(`browser test failed: ${err.stack || err}`);
  process.exitCode = 1;
  clearTimeout(watchdog);
});
