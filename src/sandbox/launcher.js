// The launcher's optional script (served at /launcher/launcher.js; the page works without it):
// patient search as you type, the chosen patient's encounters loaded at once, scopes that follow
// the launch type until edited, and fields shown only where they apply. It builds elements with
// textContent only (never innerHTML), so that no data becomes markup.
(function () {
  'use strict';

  const form = document.getElementById('launcher-form');
  if (!form || !window.fetch) return;

  const search = document.getElementById('patient-search');
  const list = document.getElementById('patient-list');
  const empty = document.getElementById('patient-empty');
  const status = document.getElementById('patient-status');
  const encounter = document.getElementById('encounter');
  const encounterRefresh = document.getElementById('encounter-refresh');
  const encounterHint = document.getElementById('encounter-hint');
  const scopes = document.getElementById('scopes');
  const scopesDefault = document.getElementById('scopes-default');
  const app = document.getElementById('app');
  const customApp = document.getElementById('custom-app');
  const clientType = document.getElementById('client-type');
  const jwksField = document.getElementById('jwks-field');
  const simulate = document.getElementById('simulate');
  const simulateScopeField = document.getElementById('simulate-scope-field');

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function getJson(url) {
    const response = await fetch(url, {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    if (!response.ok) throw new Error('HTTP ' + response.status);
    return response.json();
  }

  // ---- patients ----

  function patientChoice(p) {
    const label = el('label', 'choice');
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'patient';
    input.value = p.id;
    const body = el('span', 'choice-body');
    body.append(el('span', 'choice-title', p.name || 'Unnamed patient'));
    const meta = el('span', 'row-meta');
    if (p.age) meta.append(el('span', null, p.age));
    if (p.sex) meta.append(el('span', null, p.sex));
    if (p.birth_date) meta.append(el('span', null, 'Born ' + p.birth_date));
    meta.append(el('span', 'mono', 'Patient/' + p.id));
    if (p.portal_user) meta.append(el('span', 'badge', 'Portal account: ' + p.portal_user));
    body.append(meta);
    label.append(input, body);
    return label;
  }

  function checkedPatient() {
    return form.querySelector('input[name="patient"]:checked');
  }

  let searchSeq = 0;
  async function searchPatients() {
    const seq = ++searchSeq;
    const q = search.value.trim();
    let data;
    try {
      data = await getJson('/launcher/patients?q=' + encodeURIComponent(q));
    } catch (e) {
      return; // the Search button still works
    }
    if (seq !== searchSeq) return; // a newer search answered first
    const chosen = checkedPatient();
    const keep = chosen ? chosen.closest('label') : null;
    for (const node of Array.from(list.querySelectorAll('label.choice'))) {
      if (node !== keep) node.remove();
    }
    for (const p of data.patients) {
      if (chosen && p.id === chosen.value) continue;
      list.append(patientChoice(p));
    }
    const count = data.patients.length;
    empty.hidden = count > 0 || keep !== null;
    if (!empty.hidden) empty.textContent = 'No patient matches “' + q + '”.';
    status.textContent = count === 1 ? '1 patient found' : count + ' patients found';
  }

  let searchTimer = 0;
  if (search && list) {
    search.addEventListener('input', function () {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(searchPatients, 250);
    });
    search.addEventListener('keydown', function (event) {
      if (event.key === 'Enter') {
        event.preventDefault(); // search now rather than submit the form
        clearTimeout(searchTimer);
        searchPatients();
      }
    });
  }

  // ---- encounters ----

  let encounterSeq = 0;
  async function loadEncounters(patient, name) {
    const seq = ++encounterSeq;
    let data;
    try {
      data = await getJson('/launcher/encounters?patient=' + encodeURIComponent(patient));
    } catch (e) {
      return;
    }
    if (seq !== encounterSeq) return;
    while (encounter.options.length > 1) encounter.remove(1);
    encounter.selectedIndex = 0;
    for (const e of data.encounters) {
      let text = e.label;
      if (e.start) text += ' · ' + e.start;
      if (e.status) text += ' · ' + e.status;
      encounter.append(new Option(text, e.id));
    }
    encounterHint.textContent =
      'The encounters of ' + name + ' (' + data.encounters.length + '). ' +
      'An EHR launch can carry one as its encounter context.';
  }

  if (encounter && list) {
    if (encounterRefresh) encounterRefresh.hidden = true; // the list follows the patient
    list.addEventListener('change', function (event) {
      const input = event.target;
      if (input.name !== 'patient') return;
      const title = input.closest('label').querySelector('.choice-title');
      loadEncounters(input.value, title ? title.textContent : 'Patient/' + input.value);
    });
  }

  // ---- launch type, app, client type, simulated error ----

  function launchKind() {
    const checked = form.querySelector('input[name="type"]:checked');
    return checked ? checked.dataset.kind : 'ehr';
  }

  function update() {
    const kind = launchKind();
    if (simulate) {
      simulate.disabled = kind !== 'ehr';
      if (simulate.disabled) simulate.value = '';
    }
    if (simulateScopeField) {
      simulateScopeField.hidden = !simulate || simulate.value !== 'scope_not_granted';
    }
    if (customApp && app) customApp.hidden = app.value !== '';
    if (jwksField && clientType) jwksField.hidden = clientType.value !== 'confidential-asymmetric';
  }

  form.addEventListener('change', function (event) {
    const input = event.target;
    if (input.name === 'type' && scopes && scopesDefault) {
      // The scopes follow the launch type until the user edits them.
      if (scopes.value.trim() === scopesDefault.value) scopes.value = input.dataset.scopes;
      scopesDefault.value = input.dataset.scopes;
    }
    update();
  });
  update();
})();
