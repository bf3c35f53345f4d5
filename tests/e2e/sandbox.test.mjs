// End-to-end: the sandbox of `fhirstone serve --demo` in headless Chromium driven by
// playwright-core: the launcher and its simulated EHR, the authorization server's sign-in,
// patient picker and consent pages, and the sample app at /apps/vitals/. Each step saves a
// screenshot. Started by run_sandbox.sh, which starts the server and passes in the environment:
//   SANDBOX_URL    the server's address (http://127.0.0.1:PORT)
//   SERVER_LOG     the server's stdout, where --demo printed the demo users and passwords
//   E2E_ARTIFACTS  the folder for the screenshots
//   CHROMIUM       optional, the browser executable (default /usr/bin/chromium)
//   E2E_TMPDIR     optional, where the browser's fresh profile folder is made
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run this through tests/e2e/run_sandbox.sh)`);
  return v;
}
const SERVER = env("SANDBOX_URL");
const FHIR = `${SERVER}/fhir`;
const APP = `${SERVER}/apps/vitals`;
const ARTIFACTS = env("E2E_ARTIFACTS");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30_000;

// The demo users as `serve --demo` prints them:
//   "  practitioner  PBrfC2inv30h   practitioner  Dr. Pierre Andersson (Practitioner/gen-...)"
function demoUsers(log) {
  const users = [];
  const lines = log.split("\n");
  const start = lines.findIndex((l) => l.startsWith("Demo users"));
  assert.ok(start >= 0, `the server printed no "Demo users" list:\n${log}`);
  for (const line of lines.slice(start + 1)) {
    const m = /^\s+(\S+)\s+(\S+)\s+(practitioner|patient)\s+(.+?)\s+\(((?:Patient|Practitioner)\/[^)\s]+)\)\s*$/
        .exec(line);
    if (!m) {
      if (users.length) break;
      continue;
    }
    users.push({ username: m[1], password: m[2], role: m[3], display: m[4], fhirUser: m[5] });
  }
  return users;
}

let users;
let practitioner;
let context;
let userDataDir;
let shot = 0;
let ehrConsentGiven = false;  // the practitioner allowed Vitals in the first scenario

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  users = demoUsers(fs.readFileSync(env("SERVER_LOG"), "utf8"));
  practitioner = users.find((u) => u.role === "practitioner");
  assert.ok(practitioner, `a practitioner among the demo users: ${JSON.stringify(users)}`);
  assert.ok(users.filter((u) => u.role === "patient").length >= 2,
    `two patients among the demo users: ${JSON.stringify(users)}`);
  // A fresh profile; inside run_sandbox.sh's temporary folder, so it goes even if this process
  // is killed.
  userDataDir = fs.mkdtempSync(
    path.join(process.env.E2E_TMPDIR || os.tmpdir(), "fhirstone-e2e-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
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
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  console.log(`screenshots: ${ARTIFACTS}`);
});

// A full-page screenshot NN-scenario-step.png in the artifacts folder.
async function screenshot(page, scenario, step) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${scenario}-${step}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// A fresh tab (no cookies: nobody signed in) with a journal of everything the browser did; on
// failure a screenshot, the journal, the URL and the page's HTML are printed. Uncaught script
// errors fail the scenario.
async function withPage(scenario, body) {
  await context.clearCookies();
  const page = await context.newPage();
  const journal = [];
  const errors = [];
  const requests = [];
  const watch = (p, label) => {
    p.on("console", (m) => {
      journal.push(`${label}console.${m.type()}: ${m.text()}`);
    });
    p.on("pageerror", (e) => {
      journal.push(`${label}pageerror: ${e.stack || e}`);
      errors.push(String(e));
    });
  };
  watch(page, "");
  // Requests of every page of the context (a link may open a new window).
  const onRequest = (r) => {
    requests.push(r);
    journal.push(`> ${r.method()} ${r.url()}${r.postData() ? `  body: ${r.postData()}` : ""}`);
  };
  const onResponse = (r) => journal.push(`< ${r.status()} ${r.request().method()} ${r.url()}`);
  const onFailed = (r) =>
    journal.push(`! failed ${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
  const onPage = (p) => {
    if (p !== page) watch(p, "[new window] ");
  };
  context.on("request", onRequest);
  context.on("response", onResponse);
  context.on("requestfailed", onFailed);
  context.on("page", onPage);
  const pages = [page];
  try {
    await body(page, { requests, pages });
    assert.deepEqual(errors, [], "uncaught script errors in the pages");
  } catch (e) {
    for (const p of pages.slice().reverse()) {
      if (p.isClosed()) continue;
      let html = "(unavailable)";
      let file = "(none)";
      try { file = await screenshot(p, scenario, "failure"); } catch {}
      try { html = await p.content(); } catch {}
      console.error(`\n===== ${scenario}: FAILED =====\n${e.stack || e}`);
      console.error(`----- page URL: ${p.url()}`);
      for (const f of p.frames()) if (f !== p.mainFrame()) console.error(`----- frame URL: ${f.url()}`);
      console.error(`----- screenshot: ${file}`);
      console.error(`----- page content:\n${html}`);
    }
    console.error(`----- browser journal:\n${journal.join("\n")}\n===== end of ${scenario} =====\n`);
    throw e;
  } finally {
    context.off("request", onRequest);
    context.off("response", onResponse);
    context.off("requestfailed", onFailed);
    context.off("page", onPage);
    for (const p of pages) if (!p.isClosed()) await p.close();
  }
}

// The consent page (in `where`: a page or a frame): every scope the app asks for, each ticked.
async function expectConsent(where, scopes) {
  await where.getByRole("button", { name: "Allow" }).waitFor();
  await where.getByRole("button", { name: "Deny" }).waitFor();
  const offered = await where.locator('input[type="checkbox"][name="scope"]').evaluateAll(
    (els) => els.map((e) => ({ value: e.value, checked: e.checked })));
  const values = offered.map((o) => o.value);
  for (const s of scopes) assert.ok(values.includes(s), `consent lists ${s} (offered: ${values})`);
  for (const o of offered) assert.ok(o.checked, `scope ${o.value} is ticked by default`);
  assert.equal(await where.locator('input[name="password"]').count(), 0, "not a sign-in page");
}

// Whether a patient's details (the texts of its row's spans) say 18 or older: "31 years" (launcher), "Age 31" (patient
// picker); not "23 months". Adults have every vital sign the app charts (the generator gives
// children no blood pressure readings).
function isAdult(details) {
  return details.some((d) => {
    const m = /^(?:Age (\d+)|(\d+) years)$/.exec(d.trim());
    return Boolean(m) && Number(m[1] || m[2]) >= 18;
  });
}

// The scopes the sample app asks for (src/apps/vitals/launch.js).
const kAppScopes = [
  "launch/patient", "openid", "fhirUser", "patient/Patient.rs", "patient/Observation.rs",
  "patient/Condition.rs", "patient/AllergyIntolerance.rs", "patient/MedicationRequest.rs",
  "offline_access",
];

// The sign-in page of the authorization server: sign in as `user`.
async function signIn(page, user, scenario, pathname = "/auth/authorize") {
  await page.locator('input[name="username"]').waitFor();
  assert.equal(new URL(page.url()).origin, SERVER);
  assert.equal(new URL(page.url()).pathname, pathname);
  await screenshot(page, scenario, "sign-in");
  await page.locator('input[name="username"]').fill(user.username);
  await page.locator('input[name="password"]').fill(user.password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

// The app (in `where`: a page or a frame) once it has loaded every section.
async function appReady(where) {
  await where.locator("main#main[data-state='ready'], main#main[data-state='error']").waitFor();
  const state = await where.locator("main#main").getAttribute("data-state");
  const error = (await where.locator("#error").textContent()).trim();
  assert.equal(state, "ready", `the app failed: ${error}`);
  assert.equal(error, "", "no error shown");
}

async function sectionState(where, id) {
  return where.locator(`#${id}`).getAttribute("data-state");
}

// The vitals section is loaded and its blood-pressure chart is drawn: a canvas of non-zero size
// with painted pixels.
async function expectChart(where) {
  assert.equal(await sectionState(where, "vitals"), "loaded",
    `vitals: ${await where.locator("#vitals-message").textContent()}`);
  await where.locator("#vitals-chart").waitFor({ state: "visible" });
  const canvas = where.locator("#chart-blood-pressure");
  await canvas.waitFor({ state: "visible" });
  const box = await canvas.boundingBox();
  assert.ok(box && box.width > 50 && box.height > 50, `the chart has a size: ${JSON.stringify(box)}`);
  // Chart.js animates for 250 ms: wait until enough pixels are painted.
  await canvas.evaluate((c) => new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      const { data } = c.getContext("2d").getImageData(0, 0, c.width, c.height);
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
      if (painted > 500) resolve(painted);
      else if (Date.now() - started > 10_000) reject(new Error(`blank chart: ${painted} pixels`));
      else setTimeout(check, 100);
    };
    check();
  }));
  assert.match(await where.locator("#latest-blood-pressure").textContent(), /^Latest: \d/);
}

// The token response of the launch, as the app received it.
async function tokenResponse(requests) {
  const token = requests.find((r) => r.method() === "POST" && r.url() === `${SERVER}/auth/token`);
  assert.ok(token, "the app posted to the token endpoint");
  const response = await token.response();
  assert.equal(response.status(), 200, `token endpoint: ${await response.text()}`);
  return response.json();
}

test("launcher → EHR provider launch → consent → the app shows the chosen patient and a chart",
  async () => {
    await withPage("ehr", async (page, { requests }) => {
      await page.goto(`${SERVER}/launcher`);
      await page.getByRole("heading", { name: "Launch an app" }).waitFor();
      await screenshot(page, "ehr", "launcher");

      // An EHR provider launch of the sample app, by the demo practitioner, for a patient other
      // than the preselected one (so that the choice is what travels), with an encounter.
      await page.locator('input[name="type"][value="ehr-provider"]').check();
      const choices = page.locator("#patient-list label.choice");
      assert.ok(await choices.count() >= 2, "the launcher lists the demo patients");
      let label = null;
      for (let i = 0; i < await choices.count() && !label; i++) {
        const choice = choices.nth(i);
        if (!(await choice.locator('input[name="patient"]').isChecked()) &&
            isAdult(await choice.locator(".row-meta span").allTextContents())) {
          label = choice;
        }
      }
      assert.ok(label, "an adult patient that is not preselected");
      const chosen = label.locator('input[name="patient"]');
      const patientId = await chosen.getAttribute("value");
      const patientName = (await label.locator(".choice-title").textContent()).trim();
      assert.ok(patientName && patientName !== "Unnamed patient", `a named patient: ${patientName}`);
      await chosen.check();
      // launcher.js loads the chosen patient's encounters.
      await page.locator("#encounter-hint").filter({ hasText: patientName }).waitFor();
      const encounters = page.locator("#encounter option");
      assert.ok(await encounters.count() > 1, `${patientName} has encounters`);
      const encounterId = await encounters.nth(1).getAttribute("value");
      await page.locator("#encounter").selectOption(encounterId);
      const practitionerOption = page.locator("#practitioner option")
        .filter({ hasText: `(${practitioner.username}, ${practitioner.fhirUser})` });
      await page.locator("#practitioner").selectOption(
        await practitionerOption.getAttribute("value"));
      await page.locator("#app").selectOption("vitals");
      // The app shows the patient banner itself (need_patient_banner: true).
      await page.locator('input[name="need_patient_banner"]').check();
      assert.equal(await page.locator("#simulate").inputValue(), "", "no simulated error");
      await screenshot(page, "ehr", "launcher-filled");
      await page.getByRole("button", { name: "Launch", exact: true }).click();

      // The result page: the launch link and how to open it.
      await page.getByRole("heading", { name: /^Launch / }).waitFor();
      const summary = await page.locator("dl.summary").first().textContent();
      assert.match(summary, new RegExp(patientName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
      assert.ok(summary.includes(`Patient/${patientId}`), `the result names Patient/${patientId}`);
      assert.ok(summary.includes(practitioner.display), `the result names ${practitioner.display}`);
      const link = new URL(await page.locator("#launch-link").inputValue());
      assert.equal(link.origin + link.pathname, `${APP}/launch.html`);
      assert.equal(link.searchParams.get("iss"), FHIR);
      assert.ok(link.searchParams.get("launch"), "the launch link carries a launch value");
      await screenshot(page, "ehr", "launch-result");
      await page.getByRole("link", { name: "Open in the simulated EHR" }).click();

      // The simulated EHR frames the app; an EHR launch signs the practitioner in by itself,
      // so the frame goes straight to the consent page.
      await page.waitForURL((u) => u.pathname === "/launcher/ehr");
      await page.locator(".ehr-bar").filter({ hasText: practitioner.display }).waitFor();
      assert.equal(await page.locator(".ehr-note").count(), 1,
        "need_patient_banner true: the EHR leaves the banner to the app");
      const frame = page.frameLocator("iframe.ehr-app");
      await expectConsent(frame, ["launch", ...kAppScopes]);
      await screenshot(page, "ehr", "consent");
      await frame.getByRole("button", { name: "Allow" }).click();
      ehrConsentGiven = true;

      // The app in the frame: the chosen patient's name and a chart of their vital signs.
      await appReady(frame);
      const appFrame = page.frames().find((f) => f.url().startsWith(`${APP}/index.html`));
      assert.ok(appFrame, `the app's index.html is in the frame: ${page.frames().map((f) => f.url())}`);
      assert.equal(await sectionState(frame, "patient-banner"), "loaded");
      const shown = (await frame.locator("#patient-name").textContent()).trim();
      assert.ok(shown.includes(patientName),
        `the app shows the patient chosen in the launcher: "${shown}" vs "${patientName}"`);
      await expectChart(frame);
      await frame.locator("#chart-blood-pressure").scrollIntoViewIfNeeded();
      await screenshot(page, "ehr", "app");

      const token = await tokenResponse(requests);
      assert.equal(token.patient, patientId);
      assert.equal(token.encounter, encounterId);
      assert.equal(token.need_patient_banner, true);
    });
  });

test("standalone provider launch: sign in, patient picker, consent, the app shows that patient",
  async () => {
    await withPage("standalone", async (page, { requests }) => {
      // Consent is remembered per (user, app) (docs/decisions/0006-authorization.md): the
      // practitioner who allowed Vitals in the EHR launch withdraws it at /auth/apps first, so
      // that this launch asks again. Then signs out.
      await page.goto(`${SERVER}/auth/apps`);
      await signIn(page, practitioner, "standalone", "/auth/login");
      await page.getByRole("heading", { name: "Authorized apps" }).waitFor();
      const vitals = page.locator(".rows .row").filter({ hasText: "vitals" });
      assert.equal(await vitals.count(), ehrConsentGiven ? 1 : 0,
        "the apps the practitioner authorized: Vitals after the EHR launch");
      if (ehrConsentGiven) {
        await screenshot(page, "standalone", "authorized-apps");
        await vitals.getByRole("button", { name: /^Withdraw access/ }).click();
        await page.getByText("You have not authorized any app.").waitFor();
      }
      await screenshot(page, "standalone", "access-withdrawn");
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.waitForURL((u) => u.pathname !== "/auth/apps");

      // Opened without iss: the app uses this origin's FHIR base.
      await page.goto(`${APP}/launch.html`);
      await signIn(page, practitioner, "standalone");

      // The patient picker: one form per patient. Take the last adult.
      await page.getByRole("heading", { name: "Select a patient" }).waitFor();
      const rows = page.locator(".rows .row");
      assert.ok(await rows.count() >= 2, "the picker lists the demo patients");
      let row = null;
      for (let i = 0; i < await rows.count(); i++) {
        if (isAdult(await rows.nth(i).locator(".row-meta span").allTextContents())) row = rows.nth(i);
      }
      assert.ok(row, "an adult patient in the picker");
      const patientName = (await row.locator(".row-title").textContent()).trim();
      const patientId = await row.locator('input[name="patient"]').getAttribute("value");
      await screenshot(page, "standalone", "patient-picker");
      await row.getByRole("button", { name: /^Continue/ }).click();

      await expectConsent(page, kAppScopes);
      assert.match(await page.locator(".lead").textContent(), new RegExp(
        patientName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")), "consent names the patient");
      await screenshot(page, "standalone", "consent");
      await page.getByRole("button", { name: "Allow" }).click();

      await page.waitForURL((u) => u.href.startsWith(`${APP}/index.html`));
      await appReady(page);
      const shown = (await page.locator("#patient-name").textContent()).trim();
      assert.ok(shown.includes(patientName),
        `the app shows the patient picked: "${shown}" vs "${patientName}"`);
      await expectChart(page);
      await screenshot(page, "standalone", "app");

      const token = await tokenResponse(requests);
      assert.equal(token.patient, patientId);
    });
  });

test("a user who unticks the Observation scope gets an app that shows no vitals and says why",
  async () => {
    const patient = users.find((u) => u.role === "patient");
    await withPage("no-observations", async (page, { requests }) => {
      // A standalone launch by a patient: their own record, no picker.
      await page.goto(`${APP}/launch.html`);
      await signIn(page, patient, "no-observations");
      await expectConsent(page, kAppScopes);
      const observation = page.locator('input[name="scope"][value="patient/Observation.rs"]');
      await observation.uncheck();
      assert.equal(await observation.isChecked(), false);
      await screenshot(page, "no-observations", "consent-unticked");
      await page.getByRole("button", { name: "Allow" }).click();

      await page.waitForURL((u) => u.href.startsWith(`${APP}/index.html`));
      await appReady(page);
      const token = await tokenResponse(requests);
      const granted = String(token.scope).split(" ");
      assert.ok(!granted.includes("patient/Observation.rs"),
        `the unticked scope is not granted: ${token.scope}`);
      assert.ok(granted.includes("patient/Condition.rs"), `the others are: ${token.scope}`);
      assert.equal(`Patient/${token.patient}`, patient.fhirUser, "a patient user's own record");

      // No vitals, and why; the rest of the record still loads.
      assert.equal(await sectionState(page, "vitals"), "denied");
      const message = page.locator("#vitals-message");
      assert.ok(await message.isVisible(), "the vitals section says why");
      const text = await message.textContent();
      assert.match(text, /vital signs/i);
      assert.match(text, /patient\/Observation\.rs/);
      assert.match(text, /not granted/);
      assert.ok(await page.locator("#vitals-chart").isHidden(), "no chart");
      assert.equal(
        requests.filter((r) => r.url().startsWith(`${FHIR}/Observation`)).length, 0,
        "the app did not try to read Observations");
      assert.equal(await sectionState(page, "patient-banner"), "loaded");
      const shown = (await page.locator("#patient-name").textContent()).trim();
      assert.equal(shown, patient.display, "the banner shows the signed-in patient");
      for (const id of ["conditions", "allergies", "medications"]) {
        assert.match(await sectionState(page, id), /^(loaded|empty)$/,
          `${id}: ${await page.locator(`#${id}-message`).textContent()}`);
      }
      await screenshot(page, "no-observations", "app");
    });
  });

test("a denied consent brings access_denied back to the app", async () => {
  const patient = users.filter((u) => u.role === "patient")[1];
  await withPage("deny", async (page, { requests, pages }) => {
    // An EHR patient-portal launch from the launcher, opened in a new window.
    await page.goto(`${SERVER}/launcher`);
    await page.locator('input[name="type"][value="ehr-patient"]').check();
    const patientId = patient.fhirUser.replace(/^Patient\//, "");
    await page.locator(`#patient-list input[name="patient"][value="${patientId}"]`).check();
    await page.locator("#app").selectOption("vitals");
    await screenshot(page, "deny", "launcher-filled");
    await page.getByRole("button", { name: "Launch", exact: true }).click();
    await page.getByRole("heading", { name: /^Launch / }).waitFor();
    assert.ok((await page.locator("dl.summary").first().textContent()).includes(patient.display),
      "the portal launch signs in the patient's own account");
    await screenshot(page, "deny", "launch-result");
    const [app] = await Promise.all([
      context.waitForEvent("page"),
      page.getByRole("link", { name: /^Open in a new window/ }).click(),
    ]);
    pages.push(app);

    // Straight to consent (the launch signs the patient in); Deny.
    await expectConsent(app, ["launch", ...kAppScopes]);
    await screenshot(app, "deny", "consent");
    await app.getByRole("button", { name: "Deny" }).click();

    // Back in the app, with error=access_denied: an error in plain words, no data.
    await app.waitForURL((u) => u.href.startsWith(`${APP}/index.html`));
    await app.locator("main#main[data-state='error']").waitFor();
    const back = requests.find((r) => r.url().startsWith(`${APP}/index.html?`) &&
      r.isNavigationRequest());
    assert.ok(back, "the browser came back to the app's redirect_uri");
    const q = new URL(back.url()).searchParams;
    assert.equal(q.get("error"), "access_denied", `redirect: ${back.url()}`);
    assert.ok(q.get("state"), "the redirect carries the state");
    assert.equal(q.get("code"), null, "no code");
    const error = app.locator("#error");
    assert.ok(await error.isVisible(), "the app shows the error");
    const text = await error.textContent();
    assert.match(text, /access_denied/);
    assert.match(text, /did not allow Vitals/);
    assert.ok(await app.locator("#vitals").isHidden(), "no vitals");
    assert.equal((await app.locator("#patient-name").textContent()).trim(), "");
    assert.equal(
      requests.filter((r) => r.url() === `${SERVER}/auth/token`).length, 0, "no token request");
    await screenshot(app, "deny", "app");
  });
});

test("a patient sees who accessed their record: the sample app's reads, their sign-ins", async () => {
  // The earlier tests ran the sample app for the first demo patient (her own record).
  const patient = users.find((u) => u.role === "patient");
  await withPage("access-log", async (page) => {
    await page.goto(`${SERVER}/auth/login`);
    await signIn(page, patient, "access-log", "/auth/login");
    await page.getByRole("heading", { name: "Authorized apps" }).waitFor();
    await page.getByRole("link", { name: "Who accessed your record" }).click();
    await page.getByRole("heading", { name: "Who accessed your record" }).waitFor();
    const rows = page.locator("table tbody tr");
    // Reads are in the log within a second: reload until the app's reads are listed.
    for (let i = 0; i < 20 && await rows.filter({ hasText: "vitals" }).count() === 0; i++) {
      await page.waitForTimeout(250);
      await page.reload();
    }
    const texts = await rows.allTextContents();
    assert.ok(texts.some((t) => /vitals/.test(t) && /(Read|Searched)/.test(t) && /Allowed/.test(t)),
      `the sample app's reads of the record: ${JSON.stringify(texts.slice(0, 10))}`);
    assert.ok(texts.some((t) => /Login/.test(t) && /You/.test(t)),
      `the patient's own sign-ins: ${JSON.stringify(texts.slice(0, 10))}`);
    const others = users.filter((u) => u.role === "patient" && u.fhirUser !== patient.fhirUser);
    for (const other of others) {
      assert.ok(!texts.some((t) => t.includes(other.fhirUser)), `nothing of ${other.fhirUser}`);
    }
    await screenshot(page, "access-log", "accesses");
  });
});
