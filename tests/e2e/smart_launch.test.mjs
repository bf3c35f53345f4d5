// End-to-end: SMART's own JavaScript client (fhirclient) against a running fhirstone, in
// headless Chromium driven by playwright-core. Started by run.sh, which prepares the database
// and the server and passes them in the environment:
//   FHIRSTONE_BIN  the fhirstone binary (for `fhirstone launch`)
//   FHIRSTONE_DB   the database URL (sqlite:PATH) the server runs on
//   FHIR_PORT      the server's port (base http://127.0.0.1:FHIR_PORT, FHIR base .../fhir)
//   APP_PORT       the port of the app's static server (a different origin: CORS is exercised)
//   CHROMIUM       optional, the browser executable (default /usr/bin/chromium)
//   E2E_TMPDIR     optional, where the browser's fresh profile folder is made
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run this through tests/e2e/run.sh)`);
  return v;
}
const BIN = env("FHIRSTONE_BIN");
const DB = env("FHIRSTONE_DB");
const SERVER = `http://127.0.0.1:${env("FHIR_PORT")}`;
const FHIR = `${SERVER}/fhir`;
const APP_PORT = Number(env("APP_PORT"));
const APP = `http://127.0.0.1:${APP_PORT}`;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30_000;

// The app's files, and fhirclient's browser bundle from node_modules (never a CDN).
const FHIRCLIENT_BUNDLE = path.join(
  path.dirname(require.resolve("fhirclient/package.json")), "build", "fhir-client.js");
const FILES = {
  "/": [path.join(HERE, "app", "blank.html"), "text/html; charset=utf-8"],
  "/launch.html": [path.join(HERE, "app", "launch.html"), "text/html; charset=utf-8"],
  "/index.html": [path.join(HERE, "app", "index.html"), "text/html; charset=utf-8"],
  "/fhir-client.js": [FHIRCLIENT_BUNDLE, "text/javascript; charset=utf-8"],
};

let appServer;
let standaloneToken; // the access token of the standalone launch, for the cache test
let context;
let userDataDir;

before(async () => {
  assert.ok(fs.existsSync(FHIRCLIENT_BUNDLE), `fhirclient bundle missing: ${FHIRCLIENT_BUNDLE}`);
  appServer = http.createServer((req, res) => {
    const file = FILES[new URL(req.url, APP).pathname];
    if (req.url === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    if (!file) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": file[1], "cache-control": "no-store" });
    res.end(fs.readFileSync(file[0]));
  });
  await new Promise((resolve, reject) => {
    appServer.once("error", reject);
    appServer.listen(APP_PORT, "127.0.0.1", resolve);
  });
  // A fresh profile; inside run.sh's temporary folder, so it goes even if this process is killed.
  userDataDir = fs.mkdtempSync(
    path.join(process.env.E2E_TMPDIR || os.tmpdir(), "fhirstone-e2e-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  context.setDefaultTimeout(TIMEOUT);
});

after(async () => {
  if (context) await context.close();
  if (appServer) await new Promise((resolve) => appServer.close(resolve));
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

// A fresh tab with a journal of everything the page did; on failure the journal, the URL and
// the page's HTML are printed.
async function withPage(name, body) {
  await context.clearCookies();
  const page = await context.newPage();
  const journal = [];
  const requests = [];
  page.on("console", (m) => journal.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => journal.push(`pageerror: ${e.stack || e}`));
  page.on("request", (r) => {
    requests.push(r);
    journal.push(`> ${r.method()} ${r.url()}${r.postData() ? `  body: ${r.postData()}` : ""}`);
  });
  page.on("response", (r) => journal.push(`< ${r.status()} ${r.request().method()} ${r.url()}`));
  page.on("requestfailed", (r) =>
    journal.push(`! failed ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  try {
    await body(page, requests);
  } catch (e) {
    let html = "(unavailable)";
    try { html = await page.content(); } catch {}
    console.error(`\n===== ${name}: FAILED =====\n${e.stack || e}`);
    console.error(`----- page URL: ${page.url()}`);
    console.error(`----- browser journal:\n${journal.join("\n")}`);
    console.error(`----- page content:\n${html}\n===== end of ${name} =====\n`);
    throw e;
  } finally {
    await page.close();
  }
}

function onServer(page) {
  assert.equal(new URL(page.url()).origin, SERVER, `expected a page of the server, at ${page.url()}`);
}

// The consent page: every requested scope offered as a ticked checkbox.
async function expectConsent(page, scopes) {
  await page.getByRole("button", { name: "Allow" }).waitFor();
  onServer(page);
  await page.getByRole("button", { name: "Deny" }).waitFor();
  const offered = await page.$$eval('input[type="checkbox"][name="scope"]',
    (els) => els.map((e) => ({ value: e.value, checked: e.checked })));
  const values = offered.map((o) => o.value);
  for (const s of scopes) assert.ok(values.includes(s), `consent lists ${s} (offered: ${values})`);
  for (const o of offered) assert.ok(o.checked, `scope ${o.value} is ticked by default`);
}

// index.html once fhirclient's ready() and patient.read() finished (or failed).
async function appResult(page) {
  await page.waitForURL((u) => u.origin === APP && u.pathname === "/index.html");
  await page.waitForFunction(() =>
    document.getElementById("result")?.textContent || document.getElementById("error")?.textContent);
  const error = await page.locator("#error").textContent();
  assert.equal(error, "", `the app reported an error: ${error}`);
  return JSON.parse(await page.locator("#result").textContent());
}

// The authorize request fhirclient made: PKCE S256, the FHIR base as aud.
function expectAuthorizeRequest(requests, scope) {
  const r = requests.find((x) => x.url().startsWith(`${SERVER}/auth/authorize?`));
  assert.ok(r, "the browser went to the authorization endpoint");
  const q = new URL(r.url()).searchParams;
  assert.equal(q.get("response_type"), "code");
  assert.equal(q.get("client_id"), "e2e-app");
  assert.equal(q.get("redirect_uri"), `${APP}/index.html`);
  assert.equal(q.get("aud"), FHIR);
  assert.equal(q.get("code_challenge_method"), "S256");
  assert.match(q.get("code_challenge") || "", /^[A-Za-z0-9_-]{43}$/);
  assert.ok(q.get("state"), "state is sent");
  for (const s of scope) assert.ok(q.get("scope").split(" ").includes(s), `authorize asks ${s}`);
  return q;
}

// The token request carried the PKCE verifier; the FHIR read carried the bearer token.
// Returns the token response.
async function expectTokenAndRead(requests) {
  const token = requests.find((x) => x.method() === "POST" && x.url() === `${SERVER}/auth/token`);
  assert.ok(token, "the app posted to the token endpoint");
  const body = new URLSearchParams(token.postData() || "");
  assert.equal(body.get("grant_type"), "authorization_code");
  assert.match(body.get("code_verifier") || "", /^[A-Za-z0-9._~-]{43,128}$/);
  const read = requests.find((x) => x.method() === "GET" && x.url() === `${FHIR}/Patient/e2e-1`);
  assert.ok(read, "the app read Patient/e2e-1");
  assert.match(read.headers()["authorization"] || "", /^Bearer \S+$/);
  const response = await token.response();
  assert.equal(response.status(), 200);
  return response.json();
}

// Without a token, a cross-origin FHIR read from the page is refused with 401 (and readable:
// the 401 carries CORS headers). The HTTP cache is bypassed here: this asks the server; whether
// the browser may answer from its cache is the last test.
async function expectUnauthorizedWithoutToken(page) {
  const r = await page.evaluate(async (url) => {
    try {
      const res = await fetch(url, { cache: "no-store", headers: { accept: "application/fhir+json" } });
      return { status: res.status, body: await res.text() };
    } catch (e) {
      return { status: -1, body: `fetch failed (CORS?): ${e}` };
    }
  }, `${FHIR}/Patient/e2e-1`);
  assert.equal(r.status, 401, `a FHIR read without a token: ${r.status} ${r.body}`);
  assert.doesNotMatch(r.body, /Lovelace/, "no patient data without a token");
}

test("standalone launch with PKCE: login as ada, consent, read the patient", async () => {
  await withPage("standalone launch", async (page, requests) => {
    const scope = ["openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs"];
    await page.goto(`${APP}/launch.html?iss=${encodeURIComponent(FHIR)}`);

    // The login page of the server.
    await page.locator('input[name="username"]').waitFor();
    onServer(page);
    expectAuthorizeRequest(requests, scope);
    assert.equal(new URL(page.url()).pathname, "/auth/authorize");
    await page.locator('input[name="username"]').fill("ada");
    await page.locator('input[name="password"]').fill("ada-password-1");
    await page.getByRole("button", { name: "Sign in" }).click();

    // The consent page, then back to the app.
    await expectConsent(page, scope);
    await page.getByRole("button", { name: "Allow" }).click();
    const result = await appResult(page);

    assert.match(result.name, /\bAda\b/);
    assert.equal(result.name, "Ada Lovelace");
    assert.equal(result.patientId, "e2e-1");
    assert.equal(result.contextPatient, "e2e-1");
    assert.equal(result.tokenType.toLowerCase(), "bearer");
    const granted = result.scope.split(" ");
    for (const s of scope) assert.ok(granted.includes(s), `granted scope has ${s}: ${result.scope}`);
    assert.ok(result.hasRefreshToken, "offline_access gives a refresh token");
    assert.ok(result.hasIdToken, "openid gives an id_token");
    assert.equal(result.fhirUser, "Patient/e2e-1");
    const token = await expectTokenAndRead(requests);
    assert.equal(token.patient, "e2e-1");
    standaloneToken = token.access_token;
    await expectUnauthorizedWithoutToken(page);
  });
});

test("EHR launch: drsmith's launch value, consent, read the patient in context", async () => {
  const launch = execFileSync(BIN, [
    "launch", "--db", DB, "--user", "drsmith", "--patient", "e2e-1", "--encounter", "e2e-enc-1",
  ], { encoding: "utf8" }).trim();
  assert.match(launch, /^\S+$/, `fhirstone launch printed one value: ${JSON.stringify(launch)}`);

  await withPage("EHR launch", async (page, requests) => {
    const scope = ["openid", "fhirUser", "launch", "patient/*.rs", "user/*.rs"];
    await page.goto(
      `${APP}/launch.html?iss=${encodeURIComponent(FHIR)}&launch=${encodeURIComponent(launch)}`);

    // Signed in as the launch's user: straight to consent, no login page.
    await expectConsent(page, scope);
    const q = expectAuthorizeRequest(requests, scope);
    assert.equal(q.get("launch"), launch);
    assert.equal(await page.locator('input[name="password"]').count(), 0, "no login page");
    await page.getByRole("button", { name: "Allow" }).click();
    const result = await appResult(page);

    assert.equal(result.name, "Ada Lovelace");
    assert.equal(result.patientId, "e2e-1");
    assert.equal(result.contextPatient, "e2e-1");
    assert.equal(result.contextEncounter, "e2e-enc-1");
    const granted = result.scope.split(" ");
    for (const s of scope) assert.ok(granted.includes(s), `granted scope has ${s}: ${result.scope}`);
    assert.equal(result.fhirUser, "Practitioner/e2e-pr-1");
    const token = await expectTokenAndRead(requests);
    assert.equal(token.patient, "e2e-1");
    assert.equal(token.encounter, "e2e-enc-1");
    await expectUnauthorizedWithoutToken(page);
  });
});

// A FHIR response given for a bearer token must not be reused by the browser for a request
// without the token (after sign-out, on a shared computer, for another app of the same origin):
// the server has to mark it (Cache-Control: no-store, or no-cache / Vary: Authorization).
// Otherwise Chromium stores it heuristically (it has ETag and Last-Modified) and a plain
// fetch() without a token gets the patient from the cache with status 200.
test("a token-authorized FHIR response is not served from the browser cache without the token",
  async () => {
    assert.ok(standaloneToken, "needs the access token of the standalone launch (first test)");
    await withPage("browser cache", async (page) => {
      await page.goto(`${APP}/`);
      const authorized = page.waitForResponse((r) =>
        r.url() === `${FHIR}/Patient/e2e-1` && r.request().method() === "GET" &&
        Boolean(r.request().headers()["authorization"]));
      const r = await page.evaluate(async ({ url, token }) => {
        const withToken = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
        await withToken.text();
        const plain = await fetch(url);
        const server = await fetch(url, { cache: "no-store" });
        return { withToken: withToken.status, plain: plain.status, body: await plain.text(),
                 server: server.status };
      }, { url: `${FHIR}/Patient/e2e-1`, token: standaloneToken });
      const headers = await (await authorized).allHeaders();
      assert.equal(r.withToken, 200, "the read with the token");
      assert.equal(r.server, 401, "the server refuses the read without a token");
      assert.equal(r.plain, 401,
        `a plain fetch() without a token after a read with one: ${r.plain} ${r.body}\n` +
        `(the server itself answers ${r.server} when the cache is bypassed: the browser answered ` +
        `from its HTTP cache)\n` +
        `headers of the response to the read with the token: ${JSON.stringify(headers)}`);
    });
  });
