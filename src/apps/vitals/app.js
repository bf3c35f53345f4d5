// Vitals, a sample SMART on FHIR app: the page the authorization server redirects back to.
// FHIR.oauth2.ready() completes the authorization (code -> token, PKCE), then the app reads
// the patient in context and shows a banner, vital signs over time (Chart.js), active
// conditions, allergies and active medications. Each section checks the scope it needs
// against the scope that was granted, so that a permission the user unticked on the consent
// page shows as a message in that section (as does a 403 from the server) while the others
// still load. The DOM is built with textContent only: no markup from data, no inline styles.
"use strict";

(function () {
  const kLoinc = "http://loinc.org";
  // The codes that Fhirstone's generator (src/generate) writes, as US Core vital signs do.
  const kCode = {
    bloodPressure: "85354-9",
    systolic: "8480-6",
    diastolic: "8462-4",
    heartRate: "8867-4",
    weight: "29463-7",
    bmi: "39156-5",
  };
  const kPageSize = 200;
  const kPageLimit = 10;  // at most kPageSize * kPageLimit resources per section

  // What each section reads: the resource type, the scope letters it needs (SMART v2: r read,
  // s search; v1 `read` grants both), what to call the data in a message.
  const kNeeds = {
    "patient-banner": { type: "Patient", letters: "r", what: "your demographics" },
    vitals: {
      type: "Observation",
      letters: "s",
      what: "your vital signs",
      // A scope narrowed to some categories (patient/Observation.rs?category=...) must
      // include vital-signs.
      filterAllows: (query) => /vital-signs/.test(query),
    },
    conditions: { type: "Condition", letters: "s", what: "your conditions" },
    allergies: { type: "AllergyIntolerance", letters: "s", what: "your allergies" },
    medications: { type: "MedicationRequest", letters: "s", what: "your medications" },
  };

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });
  const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

  // ---- DOM helpers ------------------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  // A new element with a class and text (never markup).
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Shows `text` in a section's message element and records the section's state
  // (loading | loaded | empty | denied | error | hidden) in its data-state attribute.
  function setSection(id, state, text) {
    const section = $(id);
    section.dataset.state = state;
    const message = $(id === "patient-banner" ? "patient-message" : id + "-message");
    message.textContent = text || "";
    message.hidden = !text;
    message.classList.toggle("message-warning", state === "denied" || state === "error");
  }

  // ---- Scopes -------------------------------------------------------------------------------

  // Whether the space-separated `granted` scopes let the app do `letters` on `type` for the
  // patient in context (patient/ or user/ scopes; SMART v1 `read`/`*` or v2 `cruds` letters;
  // wildcards on the type).
  function scopeAllows(granted, need) {
    const pattern = /^(patient|user)\/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$/;
    return granted.split(/\s+/).some((scope) => {
      const m = pattern.exec(scope);
      if (!m || (m[2] !== "*" && m[2] !== need.type)) return false;
      const perms = m[3];
      let ok = false;
      if (perms === "*" || perms === "read") {
        ok = true;
      } else if (/^c?r?u?d?s?$/.test(perms)) {
        ok = need.letters.split("").every((l) => perms.includes(l));
      }
      if (ok && m[4] && need.filterAllows) {
        let query = m[4];
        try {
          query = decodeURIComponent(query);
        } catch (e) {
          // not percent-encoded: use it as written
        }
        ok = need.filterAllows(query);
      }
      return ok;
    });
  }

  function deniedText(need, reason) {
    return "This app was not allowed to read " + need.what + " (" + reason + ").";
  }

  // ---- FHIR data helpers --------------------------------------------------------------------

  function text(concept) {
    if (!concept) return "";
    if (concept.text) return concept.text;
    const coding = (concept.coding || []).find((c) => c.display) || (concept.coding || [])[0];
    return coding ? coding.display || coding.code || "" : "";
  }

  function hasCode(concept, code) {
    return !!concept && (concept.coding || []).some(
        (c) => c.code === code && (!c.system || c.system === kLoinc));
  }

  function codeOf(concept) {
    const coding = ((concept && concept.coding) || [])[0];
    return coding ? coding.code : "";
  }

  // A FHIR date (YYYY, YYYY-MM, YYYY-MM-DD) or dateTime as display text.
  function formatDate(value) {
    if (!value) return "";
    const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(value);
    if (m) {
      if (!m[3]) return value;  // partial date: show it as written
      return dateFormat.format(new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
    }
    const t = Date.parse(value);
    return Number.isNaN(t) ? value : dateFormat.format(new Date(t));
  }

  function timeOf(value) {
    if (!value) return NaN;
    const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(value);
    if (m) return new Date(Number(m[1]), Number(m[2] || 1) - 1, Number(m[3] || 1)).getTime();
    return Date.parse(value);
  }

  function age(birthDate) {
    const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/.exec(birthDate || "");
    if (!m) return "";
    const born = { y: Number(m[1]), mo: Number(m[2] || 1), d: Number(m[3] || 1) };
    const now = new Date();
    let months = (now.getFullYear() - born.y) * 12 + (now.getMonth() + 1 - born.mo);
    if (now.getDate() < born.d) months -= 1;
    if (months < 0) return "";
    if (months < 24) return months + (months === 1 ? " month" : " months");
    return Math.floor(months / 12) + " years";
  }

  function humanName(patient) {
    const names = patient.name || [];
    const name = names.find((n) => n.use === "official") ||
        names.find((n) => n.use === "usual") || names[0];
    if (!name) return "Unnamed patient";
    if (name.text) return name.text;
    return [].concat(name.prefix || [], name.given || [], name.family || [], name.suffix || [])
        .join(" ") || "Unnamed patient";
  }

  function mrn(patient) {
    const id = (patient.identifier || []).find(
        (i) => i.type && (i.type.coding || []).some((c) => c.code === "MR"));
    return id ? id.value : "";
  }

  function unitText(q) {
    const code = q.code || q.unit || "";
    const known = { "mm[Hg]": "mmHg", "/min": "beats/min", "kg/m2": "kg/m²", kg: "kg" };
    return known[code] || q.unit || code;
  }

  // A timestamp (ms) for an Observation: effectiveDateTime, else effectivePeriod.start, else
  // effectiveInstant, else issued.
  function observationTime(o) {
    const when = o.effectiveDateTime || (o.effectivePeriod && o.effectivePeriod.start) ||
        o.effectiveInstant || o.issued;
    return timeOf(when);
  }

  function isUsable(resource, type) {
    if (!resource || resource.resourceType !== type) return false;
    const vs = codeOf(resource.verificationStatus);
    return resource.status !== "entered-in-error" && vs !== "entered-in-error";
  }

  // ---- Requests -----------------------------------------------------------------------------

  function searchUrl(type, params) {
    return type + "?" + new URLSearchParams(params).toString();
  }

  async function search(client, type, params) {
    const found = await client.request(searchUrl(type, params), {
      pageLimit: kPageLimit,
      flat: true,
    });
    return (Array.isArray(found) ? found : []).filter((r) => isUsable(r, type));
  }

  // Runs `load` for a section when the scope allows it, and turns a refusal or failure into
  // the section's message.
  async function loadSection(client, granted, id, load) {
    const need = kNeeds[id];
    if (!scopeAllows(granted, need)) {
      setSection(id, "denied",
          deniedText(need, "scope patient/" + need.type + ".rs was not granted"));
      return;
    }
    try {
      await load();
    } catch (error) {
      const status = error && (error.status || error.statusCode);
      if (status === 403) {
        setSection(id, "denied", deniedText(need, "the server answered 403 Forbidden"));
      } else if (status === 401) {
        setSection(id, "error", "Your session has ended, so " + need.what.replace(/^your /, "") +
            " could not be read. Please launch the app again.");
      } else {
        const detail = String((error && error.message) || error).split("\n")[0];
        setSection(id, "error", "Could not load " + need.what + ": " + detail);
      }
    }
  }

  // ---- Patient banner -----------------------------------------------------------------------

  async function loadPatient(client) {
    const patient = await client.patient.read();
    $("patient-name").textContent = humanName(patient);
    const gender = patient.gender || "unknown";
    $("patient-gender").textContent = gender.charAt(0).toUpperCase() + gender.slice(1);
    $("patient-birthdate").textContent = formatDate(patient.birthDate) || "unknown";
    $("patient-age").textContent = patient.deceasedBoolean || patient.deceasedDateTime
        ? "deceased" : age(patient.birthDate) || "unknown";
    const number = mrn(patient);
    if (number) {
      $("patient-mrn").textContent = number;
      $("patient-mrn-item").hidden = false;
    }
    document.title = humanName(patient) + " – Vitals";
    setSection("patient-banner", "loaded", "");
  }

  // ---- Vital signs --------------------------------------------------------------------------

  // Series of {x: time in ms, y: value}, each sorted by time.
  function vitalSeries(observations) {
    const series = { systolic: [], diastolic: [], heartRate: [], weight: [], bmi: [] };
    const units = {};
    function add(name, quantity, x) {
      if (!quantity || typeof quantity.value !== "number" || Number.isNaN(x)) return;
      series[name].push({ x: x, y: quantity.value });
      if (!units[name]) units[name] = unitText(quantity);
    }
    for (const o of observations) {
      const x = observationTime(o);
      const components = o.component || [];
      if (hasCode(o.code, kCode.bloodPressure) || components.some(
          (c) => hasCode(c.code, kCode.systolic) || hasCode(c.code, kCode.diastolic))) {
        for (const c of components) {
          if (hasCode(c.code, kCode.systolic)) add("systolic", c.valueQuantity, x);
          if (hasCode(c.code, kCode.diastolic)) add("diastolic", c.valueQuantity, x);
        }
      } else if (hasCode(o.code, kCode.systolic)) {
        add("systolic", o.valueQuantity, x);
      } else if (hasCode(o.code, kCode.diastolic)) {
        add("diastolic", o.valueQuantity, x);
      } else if (hasCode(o.code, kCode.heartRate)) {
        add("heartRate", o.valueQuantity, x);
      } else if (hasCode(o.code, kCode.weight)) {
        add("weight", o.valueQuantity, x);
      } else if (hasCode(o.code, kCode.bmi)) {
        add("bmi", o.valueQuantity, x);
      }
    }
    for (const name of Object.keys(series)) series[name].sort((a, b) => a.x - b.x);
    return { series: series, units: units };
  }

  // The three charts: their series, colours (distinct in hue and in line style) and axes.
  const kCharts = [
    {
      id: "blood-pressure",
      lines: [
        { series: "systolic", label: "Systolic", color: "#b42318", dash: [], point: "circle" },
        { series: "diastolic", label: "Diastolic", color: "#0b5cad", dash: [6, 4], point: "rect" },
      ],
    },
    {
      id: "heart-rate",
      lines: [{ series: "heartRate", label: "Heart rate", color: "#6b2d8c", dash: [], point: "circle" }],
    },
    {
      id: "weight-bmi",
      lines: [
        { series: "weight", label: "Weight", color: "#0f766e", dash: [], point: "circle" },
        { series: "bmi", label: "BMI", color: "#a14a00", dash: [6, 4], point: "triangle", axis: "y1" },
      ],
    },
  ];

  const charts = {};  // Chart.js instances by chart id

  // The points of the last `years` years up to the most recent reading of any series (not up
  // to today: a record whose last visit was long ago still shows its latest readings).
  function inRange(all, years) {
    const data = {};
    let latest = -Infinity;
    for (const name of Object.keys(all)) {
      const points = all[name];
      if (points.length) latest = Math.max(latest, points[points.length - 1].x);
    }
    const since = new Date(latest);
    if (years !== "all") since.setFullYear(since.getFullYear() - Number(years));
    for (const name of Object.keys(all)) {
      data[name] = years === "all" ? all[name] : all[name].filter((p) => p.x >= since.getTime());
    }
    return data;
  }

  const kYear = 365.25 * 24 * 3600 * 1000;
  const monthYearFormat = new Intl.DateTimeFormat(undefined, { month: "short", year: "numeric" });

  // Ticks for a time axis from `min` to `max` (ms): the first day of every 1, 2, 5, 10 or 20
  // years, or of every 1, 2, 3 or 6 months for spans under two years; at most about 6 ticks.
  function timeTicks(min, max) {
    const ticks = [];
    const span = max - min;
    const first = new Date(min);
    if (span >= 2 * kYear) {
      const step = [1, 2, 5, 10, 20].find((n) => span / kYear / n <= 6) || 50;
      for (let y = Math.ceil(first.getFullYear() / step) * step; ; y += step) {
        const t = new Date(y, 0, 1).getTime();
        if (t > max) break;
        if (t >= min) ticks.push(t);
      }
      return { ticks: ticks, format: (t) => String(new Date(t).getFullYear()) };
    }
    const step = [1, 2, 3, 6].find((n) => span / (kYear / 12) / n <= 6) || 12;
    for (let m = first.getFullYear() * 12 + first.getMonth(); ; m += 1) {
      if (m % step) continue;
      const t = new Date(Math.floor(m / 12), m % 12, 1).getTime();
      if (t > max) break;
      if (t >= min) ticks.push(t);
    }
    return { ticks: ticks, format: (t) => monthYearFormat.format(new Date(t)) };
  }

  function valueText(v, unit) {
    return numberFormat.format(v) + (unit ? " " + unit : "");
  }

  // "Latest: 128/82 mmHg on 3 Mar 2024", or a note that the period has no readings.
  function latestText(def, data, units) {
    const first = data[def.lines[0].series];
    if (!first.length) return "No readings in this period.";
    const last = first[first.length - 1];
    if (def.id === "blood-pressure") {
      const dia = data.diastolic.find((p) => p.x === last.x);
      return "Latest: " + numberFormat.format(last.y) + (dia ? "/" + numberFormat.format(dia.y) : "") +
          " " + (units.systolic || "mmHg") + " on " + dateFormat.format(new Date(last.x));
    }
    const parts = def.lines.map((line) => {
      const points = data[line.series];
      const p = points.length ? points[points.length - 1] : null;
      if (!p) return null;
      return (def.lines.length > 1 ? line.label + " " : "") + valueText(p.y, units[line.series]);
    }).filter(Boolean);
    return "Latest: " + parts.join(", ") + " on " + dateFormat.format(new Date(last.x));
  }

  // The readings of one chart as a table, newest first (the accessible view of the chart).
  function renderTable(def, data, units) {
    const byTime = new Map();
    for (const line of def.lines) {
      for (const p of data[line.series]) {
        if (!byTime.has(p.x)) byTime.set(p.x, {});
        byTime.get(p.x)[line.series] = p.y;
      }
    }
    const table = el("table");
    const caption = el("caption", "visually-hidden",
        def.lines.map((l) => l.label).join(" and ") + " readings, newest first");
    table.appendChild(caption);
    const head = el("thead");
    const headRow = el("tr");
    const dateHead = el("th", null, "Date");
    dateHead.scope = "col";
    headRow.appendChild(dateHead);
    for (const line of def.lines) {
      const th = el("th", null, line.label + (units[line.series] ? " (" + units[line.series] + ")" : ""));
      th.scope = "col";
      headRow.appendChild(th);
    }
    head.appendChild(headRow);
    table.appendChild(head);
    const body = el("tbody");
    const times = Array.from(byTime.keys()).sort((a, b) => b - a);
    for (const t of times) {
      const row = el("tr");
      const th = el("th", null, dateTimeFormat.format(new Date(t)));
      th.scope = "row";
      row.appendChild(th);
      for (const line of def.lines) {
        const v = byTime.get(t)[line.series];
        row.appendChild(el("td", "num", v === undefined ? "–" : numberFormat.format(v)));
      }
      body.appendChild(row);
    }
    table.appendChild(body);
    const wrap = $("table-" + def.id);
    wrap.replaceChildren(times.length ? table : el("p", "muted", "No readings in this period."));
  }

  // Chart.js options for a chart of `data` (the series in range). Time runs on a linear axis of
  // milliseconds with ticks of our own, so that no date adapter is needed.
  function chartOptions(def, data, units) {
    const reduceMotion = window.matchMedia &&
        window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    const times = def.lines.flatMap((line) => data[line.series].map((p) => p.x));
    let min = Math.min(...times);
    let max = Math.max(...times);
    const pad = Math.max((max - min) * 0.03, 15 * 24 * 3600 * 1000);
    min -= pad;
    max += pad;
    const axis = timeTicks(min, max);
    const scales = {
      x: {
        type: "linear",
        min: min,
        max: max,
        afterBuildTicks: (scale) => {
          scale.ticks = axis.ticks.map((t) => ({ value: t }));
        },
        ticks: {
          color: "#3d4a5c",
          maxRotation: 0,
          autoSkip: true,
          callback: (value) => axis.format(value),
        },
        grid: { color: "#e3e8ef" },
      },
      y: {
        ticks: { color: "#3d4a5c" },
        grid: { color: "#e3e8ef" },
        title: { display: true, text: units[def.lines[0].series] || "", color: "#3d4a5c" },
      },
    };
    if (def.lines.some((l) => l.axis === "y1")) {
      const line = def.lines.find((l) => l.axis === "y1");
      scales.y1 = {
        position: "right",
        ticks: { color: "#3d4a5c" },
        grid: { drawOnChartArea: false },
        title: { display: true, text: line.label + " (" + (units[line.series] || "") + ")", color: "#3d4a5c" },
      };
    }
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: reduceMotion ? false : { duration: 250 },
      interaction: { mode: "nearest", axis: "x", intersect: false },
      scales: scales,
      plugins: {
        legend: { position: "bottom", labels: { usePointStyle: true, color: "#1b2430" } },
        tooltip: {
          callbacks: {
            title: (items) => items.length ? dateTimeFormat.format(new Date(items[0].parsed.x)) : "",
            label: (item) => {
              const line = def.lines[item.datasetIndex];
              return line.label + ": " + valueText(item.parsed.y, units[line.series]);
            },
          },
        },
      },
    };
  }

  function renderCharts(all, units, years) {
    const data = inRange(all, years);
    for (const def of kCharts) {
      const latest = latestText(def, data, units);
      $("latest-" + def.id).textContent = latest;
      const canvas = $("chart-" + def.id);
      canvas.setAttribute("aria-label", "Chart of " +
          def.lines.map((l) => l.label.toLowerCase()).join(" and ") + " over time. " + latest +
          " The readings are also listed in the table below.");
      renderTable(def, data, units);
      if (charts[def.id]) {
        charts[def.id].destroy();
        delete charts[def.id];
      }
      const empty = def.lines.every((line) => !data[line.series].length);
      $("card-" + def.id).classList.toggle("chart-empty", empty);
      if (typeof window.Chart === "undefined" || empty) continue;
      const datasets = def.lines.map((line) => ({
        label: line.label,
        data: data[line.series],
        borderColor: line.color,
        backgroundColor: line.color,
        borderDash: line.dash,
        pointStyle: line.point,
        pointRadius: data[line.series].length > 60 ? 2 : 3.5,
        pointHoverRadius: 6,
        borderWidth: 2,
        tension: 0,
        yAxisID: line.axis || "y",
      }));
      charts[def.id] = new window.Chart(canvas, {
        type: "line",
        data: { datasets: datasets },
        options: chartOptions(def, data, units),
      });
    }
  }

  async function loadVitals(client, patientId) {
    const codes = [kCode.bloodPressure, kCode.heartRate, kCode.weight, kCode.bmi]
        .map((c) => kLoinc + "|" + c).join(",");
    const observations = await search(client, "Observation", {
      patient: patientId,
      category: "vital-signs",
      code: codes,
      _sort: "date",
      _count: String(kPageSize),
    });
    const { series, units } = vitalSeries(observations);
    const count = Object.values(series).reduce((n, s) => n + s.length, 0);
    if (!count) {
      setSection("vitals", "empty", "No blood pressure, heart rate, weight or BMI readings recorded.");
      return;
    }
    $("vitals-chart").hidden = false;
    $("vitals-range-field").hidden = false;
    const range = $("vitals-range");
    renderCharts(series, units, range.value);
    range.addEventListener("change", () => renderCharts(series, units, range.value));
    if (typeof window.Chart === "undefined") {
      for (const d of document.querySelectorAll("#vitals-chart details")) d.open = true;
      setSection("vitals", "loaded", "The chart library did not load, so the readings are shown as tables.");
    } else {
      setSection("vitals", "loaded", "");
    }
  }

  // ---- Lists --------------------------------------------------------------------------------

  // Fills a section's list with items {title, details: [text...], badge?}.
  function renderList(id, items, emptyText) {
    const list = $(id + "-list");
    list.replaceChildren();
    if (!items.length) {
      list.hidden = true;
      setSection(id, "empty", emptyText);
      return;
    }
    for (const item of items) {
      const li = el("li", "item");
      const title = el("p", "item-title", item.title);
      if (item.badge) title.appendChild(el("span", "badge " + (item.badgeClass || ""), item.badge));
      li.appendChild(title);
      const details = item.details.filter(Boolean);
      if (details.length) li.appendChild(el("p", "item-meta", details.join(" · ")));
      list.appendChild(li);
    }
    list.hidden = false;
    setSection(id, "loaded", "");
  }

  function newestFirst(a, b) {
    return (b.when || 0) - (a.when || 0);
  }

  async function loadConditions(client, patientId) {
    const conditions = await search(client, "Condition", {
      patient: patientId,
      "clinical-status": "active",
      _count: "100",
    });
    const items = conditions
        .filter((c) => !c.clinicalStatus || codeOf(c.clinicalStatus) === "active")
        .map((c) => {
          const onset = c.onsetDateTime || (c.onsetPeriod && c.onsetPeriod.start) || c.recordedDate;
          const category = (c.category || []).map(text).filter(Boolean).join(", ");
          return {
            title: text(c.code) || "Unnamed condition",
            details: [onset ? "Since " + formatDate(onset) : "", category],
            when: timeOf(onset),
          };
        })
        .sort(newestFirst);
    renderList("conditions", items, "No active conditions recorded.");
  }

  async function loadAllergies(client, patientId) {
    const allergies = await search(client, "AllergyIntolerance", {
      patient: patientId,
      _count: "100",
    });
    const rank = { active: 0, inactive: 1, resolved: 2 };
    const items = allergies
        .map((a) => {
          const status = codeOf(a.clinicalStatus) || "active";
          const reactions = (a.reaction || [])
              .map((r) => (r.manifestation || []).map(text).filter(Boolean).join(", ") +
                  (r.severity ? " (" + r.severity + ")" : ""))
              .filter(Boolean);
          return {
            title: text(a.code) || "Unnamed allergy",
            badge: a.criticality === "high" ? "High criticality" : "",
            badgeClass: "badge-alert",
            details: [
              (a.category || []).map((c) => c.charAt(0).toUpperCase() + c.slice(1)).join(", "),
              reactions.length ? "Reaction: " + reactions.join("; ") : "",
              status !== "active" ? "Status: " + status : "",
              a.onsetDateTime ? "Since " + formatDate(a.onsetDateTime) : "",
            ],
            status: status,
            high: a.criticality === "high",
            when: timeOf(a.onsetDateTime || a.recordedDate),
          };
        })
        .sort((a, b) => (rank[a.status] ?? 3) - (rank[b.status] ?? 3) ||
            Number(b.high) - Number(a.high) || newestFirst(a, b));
    renderList("allergies", items, "No allergies or intolerances recorded.");
  }

  async function loadMedications(client, patientId) {
    const requests = await search(client, "MedicationRequest", {
      patient: patientId,
      status: "active",
      _count: "100",
    });
    const items = requests
        .filter((m) => !m.status || m.status === "active")
        .map((m) => {
          const name = text(m.medicationCodeableConcept) ||
              (m.medicationReference && m.medicationReference.display) || "Unnamed medication";
          const dosage = (m.dosageInstruction || []).map((d) => d.text).filter(Boolean).join("; ");
          return {
            title: name,
            details: [dosage, m.authoredOn ? "Prescribed " + formatDate(m.authoredOn) : ""],
            when: timeOf(m.authoredOn),
          };
        })
        .sort(newestFirst);
    renderList("medications", items, "No active medications recorded.");
  }

  // ---- Start --------------------------------------------------------------------------------

  // Plain words for a failed authorization (fhirclient's ready() rejects with "error:
  // description" when the server redirects back with ?error=...).
  function describeFailure(error) {
    const message = String((error && error.message) || error || "unknown error");
    if (/^access_denied\b/.test(message)) {
      return "You did not allow Vitals to read your health record, so there is nothing to " +
          "show. (" + message + ")";
    }
    if (/^invalid_scope\b/.test(message)) {
      return "The server did not accept the permissions that Vitals asks for. (" + message + ")";
    }
    if (/^(unauthorized_client|invalid_client|invalid_request)\b/.test(message)) {
      return "The server did not accept Vitals as an app. (" + message + ")";
    }
    if (/^(server_error|temporarily_unavailable)\b/.test(message)) {
      return "The server could not complete the sign-in; please try again. (" + message + ")";
    }
    if (/No 'state' parameter|No state found/i.test(message)) {
      return "This page has to be opened by launching Vitals, from your health record or " +
          "from the launch page.";
    }
    return "Vitals could not sign you in: " + message;
  }

  function showFailure(text) {
    const box = $("error");
    box.replaceChildren(el("p", null, text));
    const again = el("a", null, "Launch Vitals again");
    again.href = "launch.html";
    const p = el("p");
    p.appendChild(again);
    box.appendChild(p);
    box.hidden = false;
    for (const id of ["patient-banner", "vitals", "conditions", "allergies", "medications"]) {
      setSection(id, "error", "");
    }
    $("patient-name").textContent = "";
    $("patient-banner").hidden = true;
    $("vitals").hidden = true;
    document.querySelector(".columns").hidden = true;
    $("main").dataset.state = "error";
  }

  async function start(client) {
    const patientId = client.patient.id;
    if (!patientId) {
      showFailure("No patient was selected when Vitals was launched, so there is nothing to " +
          "show. Launch the app again and choose a patient.");
      return;
    }
    const token = client.state.tokenResponse || {};
    // RFC 6749 section 5.1: no `scope` in the token response means the requested scope.
    const granted = String(token.scope || client.state.scope || "");

    const sections = [];
    if (token.need_patient_banner === false) {
      $("patient-banner").hidden = true;
      $("patient-banner").dataset.state = "hidden";
    } else {
      sections.push(loadSection(client, granted, "patient-banner", () => loadPatient(client)));
    }
    sections.push(loadSection(client, granted, "vitals", () => loadVitals(client, patientId)));
    sections.push(loadSection(client, granted, "conditions", () => loadConditions(client, patientId)));
    sections.push(loadSection(client, granted, "allergies", () => loadAllergies(client, patientId)));
    sections.push(loadSection(client, granted, "medications", () => loadMedications(client, patientId)));
    await Promise.allSettled(sections);
    const banner = $("patient-banner").dataset.state;
    if (banner === "denied" || banner === "error") {
      $("patient-name").textContent = "Patient details unavailable";
    }
    $("main").dataset.state = "ready";
  }

  function main() {
    if (typeof FHIR === "undefined" || !FHIR.oauth2) {
      showFailure("The app's SMART client library did not load. Please reload the page.");
      return;
    }
    FHIR.oauth2.ready().then(start, (error) => showFailure(describeFailure(error)));
  }

  main();
})();
