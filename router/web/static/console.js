// Switchboard web console: a thin client of the operators' API (/api/...).
//
// The token lives in this tab's sessionStorage and goes out only as a bearer header to our
// own API. Everything shown comes from the API and is put on the page as text
// (textContent), never as markup: reasons and actor names are typed by people.
"use strict";

const TOKEN_KEY = "switchboard.token";
const REFRESH_MS = 5000;
const CHANNELS = ["phone", "email", "chat"];
const CATEGORIES = ["admin", "product", "unknown"];
const PALETTE = ["#d9822b", "#2b6cb0", "#38a169", "#805ad5", "#c53030", "#718096"];

const $ = (id) => document.getElementById(id);
let refreshTimer = null;
let pendingRollback = null;
let refreshFailed = false; // the notice says a refresh failed: cleared by the next success
// Staffing replays four weeks of calls: asked for when the console opens and every few
// minutes, not with every 5-second refresh.
const STAFFING_MS = 5 * 60 * 1000;
let staffingAt = 0;
// The partner's service levels read a month of contacts: on the same slow cadence.
let slaAt = 0;

class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
    this.body = body;
  }
}

function describeError(status, body) {
  const error = body && body.error ? body.error : `HTTP ${status}`;
  const problems = body && Array.isArray(body.problems) ? body.problems : [];
  const details = problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
  if (status === 403) {
    return `Not allowed with this token's role: ${error}`;
  }
  return details.length ? `${error} (${details.join("; ")})` : error;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (response.status === 401) {
    signOut("The token was refused (unknown or revoked). Sign in again.");
    throw new ApiError(401, data);
  }
  if (!response.ok) {
    throw new ApiError(response.status, data);
  }
  return data;
}

// -- notices and small helpers ------------------------------------------------------------

function notify(message, kind) {
  const notice = $("notice");
  notice.textContent = message;
  notice.className = kind || "info";
  notice.hidden = !message;
}

function text(id, value) {
  $(id).textContent = value === null || value === undefined || value === "" ? "—" : String(value);
}

function when(iso) {
  if (!iso) {
    return "—";
  }
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString();
}

function cell(row, value, header) {
  const element = document.createElement(header ? "th" : "td");
  if (header) {
    element.scope = "row";
  }
  element.textContent = value === null || value === undefined ? "—" : String(value);
  row.appendChild(element);
  return element;
}

function fillTable(table, rows) {
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const values of rows) {
    const row = document.createElement("tr");
    values.forEach((value, index) => cell(row, value, index === 0));
    body.appendChild(row);
  }
}

// -- signing in and out -------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(refreshTimer);
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("token").value = "";
  notify(message || "", message ? "error" : "info");
  $("token").focus();
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await refresh();
    notify("", "info");
  } catch (error) {
    // a refused token signs out; anything else (the service restarting, say) is said,
    // and the refresh loop opens the console as soon as the API answers
    if (!(error instanceof ApiError && error.status === 401)) {
      notify(error.message, "error");
    }
  }
}

function showConsole() {
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
}

// -- showing the state --------------------------------------------------------------------

async function refresh() {
  clearTimeout(refreshTimer);
  try {
    const [status, history, traffic, report] = await Promise.all([
      api("GET", "api/status"),
      api("GET", "api/routing/history"),
      api("GET", "api/traffic?hours=24"),
      api("GET", "api/report?since=7d"),
    ]);
    showStatus(status);
    showHistory(history);
    showTraffic(traffic);
    showCosts(report);
    showSplit(report);
    showConsole();
    if (Date.now() - staffingAt > STAFFING_MS) {
      staffingAt = Date.now();
      api("GET", "api/staffing?since=28d")
        .then(showStaffing)
        .catch((error) => {
          staffingAt = 0; // asked again with the next refresh
          $("staffing-note").textContent = `Staffing unavailable: ${error.message}`;
        });
    }
    if (Date.now() - slaAt > STAFFING_MS) {
      slaAt = Date.now();
      api("GET", "api/sla?since=30d")
        .then(showSla)
        .catch((error) => {
          slaAt = 0; // asked again with the next refresh
          $("sla-note").textContent = `Service levels unavailable: ${error.message}`;
        });
    }
    if (refreshFailed) {
      refreshFailed = false;
      notify("", "info");
    }
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } finally {
    if (sessionStorage.getItem(TOKEN_KEY)) {
      refreshTimer = setTimeout(() => refresh().catch(showRefreshError), REFRESH_MS);
    }
  }
}

function showRefreshError(error) {
  if (!(error instanceof ApiError && error.status === 401)) {
    refreshFailed = true;
    notify(`Could not refresh: ${error.message}`, "error");
  }
}

function showStatus(status) {
  text("state-version", status.version);
  text("state-kind", status.kind);
  text("state-actor", status.actor);
  text("state-reason", status.reason);
  text("state-since", when(status.created_at));
  const outbox = status.outbox || {};
  text("state-outbox", `${outbox.pending || 0} waiting, ${outbox.failed || 0} failed`);

  const banner = $("rollback-banner");
  const rollback = status.rollback;
  banner.hidden = !rollback;
  $("resume-form").hidden = !rollback;
  if (rollback) {
    const scope = rollback.channel ? `${rollback.channel} only` : "all channels";
    const until = rollback.until ? `until ${when(rollback.until)}` : "until routing is changed";
    banner.textContent =
      `ROLLBACK in force (${scope}) since ${when(rollback.since)}, ${until}. ` +
      `By ${rollback.actor}: ${rollback.reason}`;
  }
  const cancelled = status.rollback_return_cancelled;
  $("return-cancelled").hidden = !cancelled;
  if (cancelled) {
    $("return-cancelled").textContent =
      `The timed rollback (version ${cancelled.rollback_version}) would have ended at ` +
      `${when(cancelled.would_have_ended)}; version ${cancelled.cancelled_by_version} by ` +
      `${cancelled.actor} ("${cancelled.reason}") cancelled that return.`;
  }

  const shares = status.cutover || {};
  fillTable(
    $("shares-table"),
    CHANNELS.map((channel) => [
      channel,
      ...CATEGORIES.map((category) => `${(shares[channel] || {})[category] ?? 0} %`),
    ]),
  );

  const held = status.partner_conversations || [];
  const heldCount = status.partner_conversations_count ?? held.length;
  $("partner-empty").hidden = held.length > 0;
  $("partner-table").hidden = held.length === 0;
  // status lists the newest ones only; say how many there are in all
  $("partner-count").hidden = held.length === 0;
  $("partner-count").textContent =
    heldCount > held.length
      ? `${heldCount} in all; the newest ${held.length} below.`
      : `${heldCount} in all.`;
  fillTable(
    $("partner-table"),
    held.map((c) => [c.channel, c.conversation_id, c.destination, when(c.last_contact_at)]),
  );

  const steps = status.plan || [];
  $("plan-empty").hidden = steps.length > 0;
  const list = $("plan-list");
  list.replaceChildren();
  for (const step of steps) {
    const item = document.createElement("li");
    const held = step.held_by_rollback ? " (held by the rollback)" : "";
    item.textContent = `${when(step.at)}: ${step.reason} — ${JSON.stringify(step.cutover)}${held}`;
    list.appendChild(item);
  }
}

function showHistory(history) {
  fillTable(
    $("history-table"),
    history.slice(0, 20).map((v) => [v.version, v.kind, v.actor, v.reason, when(v.created_at)]),
  );
}

// -- costs: what the handled contacts cost, against all of them in-house -------------------

function money(value, currency) {
  if (value === null || value === undefined) {
    return "—";
  }
  return `${value.toFixed(2)} ${currency || ""}`.trim();
}

function showCosts(report) {
  const currency = report.currency;
  const rows = CHANNELS.map((channel) => [channel, report.channels[channel]]);
  rows.push(["total", report.total]);
  fillTable(
    $("costs-table"),
    rows.map(([name, section]) => [
      name,
      section.contacts,
      section.handled,
      money(section.cost.actual, currency),
      money(section.cost.all_in_house, currency),
      money(section.cost.difference, currency),
    ]),
  );
  const notes = report.notes || [];
  $("costs-note").textContent =
    `Billed: answered calls and delivered email and chat, at the prices of each contact's day ` +
    `(version ${report.prices_version} today).` +
    (notes.length ? ` ${notes.join(" ")}` : "");
}

// -- the admin/product split per day, against the 80/20 rule of thumb ---------------------

// Contact centres quote about 80 % administrative contacts and 20 % product questions; the
// line shows where a day stands against that. Unknown contacts (no rule placed them) are
// left out of the shares and counted in each bar's title.
const RULE_OF_THUMB = 0.8;

function showSplit(report) {
  const days = report.days || [];
  const decided = days.reduce((sum, day) => sum + day.admin + day.product, 0);
  const admin = days.reduce((sum, day) => sum + day.admin, 0);
  $("split-note").textContent = decided
    ? `Admin ${percent(admin / decided)} of the ${decided} contacts placed by category over ` +
      `the period (rule of thumb: 80 %); days of ${report.timezone}.`
    : `No admin or product contacts over the period; days of ${report.timezone}.`;
  $("split-chart").replaceChildren(splitChart(days));
}

function splitChart(days) {
  const width = 720;
  const height = 180;
  const left = 36;
  const bottom = 22;
  const top = 16; // room for the key above the bars
  const plot = height - bottom - top;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "share of admin and product contacts per day, against 80 %",
    class: "chart",
    id: "split-svg",
  });
  const slot = (width - left) / Math.max(1, days.length);
  const y = (share) => top + plot * (1 - share);
  days.forEach((day, index) => {
    const x = left + index * slot + 2;
    const total = day.admin + day.product;
    const group = svg("g", {
      class: "day",
      "data-date": day.date,
      "data-admin": day.admin,
      "data-product": day.product,
      "data-unknown": day.unknown,
    });
    const tip = svg("title");
    if (total) {
      const share = day.admin / total;
      group.setAttribute("data-admin-share", share.toFixed(4));
      tip.textContent =
        `${day.date}: admin ${day.admin} (${percent(share)}), product ${day.product} ` +
        `(${percent(1 - share)}), unknown ${day.unknown}`;
      group.append(
        svg("rect", { x, y: y(share), width: Math.max(1, slot - 4), height: plot * share, class: "admin" }),
        svg("rect", { x, y: top, width: Math.max(1, slot - 4), height: plot * (1 - share), class: "product" }),
      );
    } else {
      tip.textContent = `${day.date}: no admin or product contacts (unknown ${day.unknown})`;
      group.append(svg("rect", { x, y: top, width: Math.max(1, slot - 4), height: plot, class: "empty" }));
    }
    group.appendChild(tip);
    const tick = svg("text", { x, y: height - 6, class: "tick" });
    tick.textContent = day.date.slice(5);
    chart.append(group, tick);
  });
  const rule = svg("line", {
    x1: left,
    y1: y(RULE_OF_THUMB),
    x2: width,
    y2: y(RULE_OF_THUMB),
    class: "rule",
    "data-share": RULE_OF_THUMB,
  });
  const ruleLabel = svg("text", { x: 2, y: y(RULE_OF_THUMB) + 4, class: "tick" });
  ruleLabel.textContent = "80 %";
  chart.append(rule, ruleLabel);
  ["admin", "product"].forEach((name, index) => {
    const x = width - 170 + index * 80;
    const swatch = svg("rect", { x, y: 0, width: 10, height: 10, class: name });
    const label = svg("text", { x: x + 14, y: 9, class: "tick" });
    label.textContent = name;
    chart.append(swatch, label);
  });
  return chart;
}

// -- hotline staffing: agents per hour of the week, now and all in-house --------------------

function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`;
}

function showStaffing(staffing) {
  const now = staffing.scenarios.current;
  const before = staffing.scenarios.all_in_house;
  const rows = [];
  now.hours.forEach((hour, index) => {
    const old = before.hours[index];
    if (!hour.calls && !old.calls) {
      return; // the JSON has all 168 hours; the page shows those with calls
    }
    const next = String((hour.hour + 1) % 24).padStart(2, "0");
    rows.push([
      `${hour.weekday} ${String(hour.hour).padStart(2, "0")}-${next}`,
      hour.calls_per_hour === null ? null : hour.calls_per_hour.toFixed(2),
      hour.aht_seconds === null ? null : Math.round(hour.aht_seconds),
      hour.agents,
      percent(hour.occupancy),
      percent(hour.service_level),
      old.calls_per_hour === null ? null : old.calls_per_hour.toFixed(2),
      old.agents,
    ]);
  });
  fillTable($("staffing-table"), rows);
  const target = staffing.target;
  $("staffing-note").textContent =
    `${target.percent} % of calls answered within ${target.seconds} s (Erlang C): ` +
    `${now.agent_hours ?? "—"} agent-hours a week now, ` +
    `${before.agent_hours ?? "—"} all in-house; peak ${now.peak_agents ?? "—"} agents now.` +
    (staffing.notes.length ? ` ${staffing.notes.join(" ")}` : "");
}

// -- the partner's service levels: each target, what was measured, met or missed ------------

const SLA_METRICS = {
  answer_rate: "answer rate",
  time_to_answer_p80: "time to answer p80",
  resolution_rate: "resolution rate",
  average_rating: "average rating",
};

function slaFigure(metric, value) {
  if (value === null || value === undefined) {
    return null;
  }
  if (metric === "answer_rate" || metric === "resolution_rate") {
    return percent(value);
  }
  return metric === "time_to_answer_p80" ? `${value} s` : value.toFixed(2);
}

function showSla(sla) {
  fillTable(
    $("sla-table"),
    sla.rows.map((row) => [
      row.destination,
      row.channel,
      SLA_METRICS[row.metric] || row.metric,
      slaFigure(row.metric, row.target),
      slaFigure(row.metric, row.measured),
      `${row.count} ${row.basis}`,
      row.verdict,
    ]),
  );
  // the verdict cell is coloured by what it says (the class is one of three fixed names)
  $("sla-table")
    .querySelectorAll("tbody tr")
    .forEach((line, index) => {
      const verdict = sla.rows[index].verdict;
      line.lastElementChild.className = verdict === "no data" ? "no-data" : verdict;
    });
  $("sla-table").hidden = sla.rows.length === 0;
  $("sla-note").textContent =
    `Targets of routing version ${sla.version}, contacts received in the last 30 days.` +
    (sla.notes.length ? ` ${sla.notes.join(" ")}` : "");
}

// -- the traffic chart: stacked bars per hour, one colour per destination ------------------

function showTraffic(traffic) {
  const destinations = Object.keys(traffic.destinations || {}).sort((a, b) => {
    // external destinations first: they are what the migration moves
    const kind = (name) => (traffic.destinations[name] === "external" ? 0 : 1);
    return kind(a) - kind(b) || a.localeCompare(b);
  });
  const colour = Object.fromEntries(destinations.map((d, i) => [d, PALETTE[i % PALETTE.length]]));
  const hours = traffic.buckets || [];
  const totals = {};
  for (const bucket of hours) {
    for (const [destination, channels] of Object.entries(bucket.counts || {})) {
      totals[destination] = totals[destination] || { phone: 0, email: 0, chat: 0 };
      for (const [channel, count] of Object.entries(channels)) {
        totals[destination][channel] = (totals[destination][channel] || 0) + count;
      }
    }
  }
  fillTable(
    $("traffic-table"),
    destinations.map((d) => {
      const t = totals[d] || { phone: 0, email: 0, chat: 0 };
      return [label(d, traffic.destinations[d]), t.phone, t.email, t.chat, t.phone + t.email + t.chat];
    }),
  );
  $("chart").replaceChildren(barChart(hours, destinations, colour));
}

function label(destination, kind) {
  if (kind === "none") {
    return "hung up in the IVR menu";
  }
  return `${destination} (${{ external: "external", in_house: "in-house" }[kind] || "not in the routing now"})`;
}

function svg(name, attributes) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [key, value] of Object.entries(attributes || {})) {
    element.setAttribute(key, String(value));
  }
  return element;
}

function barChart(hours, destinations, colour) {
  const width = 720;
  const height = 180;
  const left = 36;
  const bottom = 22;
  const sums = hours.map((bucket) =>
    destinations.map((d) => Object.values((bucket.counts || {})[d] || {}).reduce((a, b) => a + b, 0)),
  );
  const peak = Math.max(1, ...sums.map((parts) => parts.reduce((a, b) => a + b, 0)));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "contacts per hour by destination",
    class: "chart",
  });
  const slot = (width - left) / Math.max(1, hours.length);
  const scale = (height - bottom - 8) / peak;
  chart.appendChild(svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }));
  const label = svg("text", { x: 2, y: 12, class: "tick" });
  label.textContent = String(peak);
  chart.appendChild(label);
  hours.forEach((bucket, index) => {
    let y = height - bottom;
    sums[index].forEach((count, part) => {
      if (!count) {
        return;
      }
      const bar = svg("rect", {
        x: left + index * slot + 1,
        y: y - count * scale,
        width: Math.max(1, slot - 2),
        height: count * scale,
        fill: colour[destinations[part]],
        "data-destination": destinations[part],
        "data-count": count,
      });
      const tip = svg("title");
      tip.textContent = `${destinations[part] || "IVR hang-ups"}: ${count} (${when(bucket.start)})`;
      bar.appendChild(tip);
      chart.appendChild(bar);
      y -= count * scale;
    });
    if (index % 3 === 0) {
      const tick = svg("text", { x: left + index * slot, y: height - 6, class: "tick" });
      tick.textContent = new Date(bucket.start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      chart.appendChild(tick);
    }
  });
  destinations.forEach((destination, index) => {
    const key = svg("rect", { x: left + 8 + index * 120, y: 4, width: 10, height: 10, fill: colour[destination] });
    const name = svg("text", { x: left + 22 + index * 120, y: 13, class: "tick" });
    name.textContent = destination || "IVR hang-ups";
    chart.append(key, name);
  });
  return chart;
}

// -- changes ------------------------------------------------------------------------------

async function change(run, success) {
  try {
    const result = await run();
    notify(success(result), "ok");
    await refresh();
    return result;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      notify(error.message, "error");
    }
    return null;
  }
}

function askRollback(event) {
  event.preventDefault();
  const form = event.target;
  if (!form.reportValidity()) {
    return;
  }
  const body = { reason: form.reason.value.trim(), channel: form.channel.value };
  if (form.for.value) {
    body.for = form.for.value;
  }
  pendingRollback = body;
  const scope = body.channel === "all" ? "every channel" : `the ${body.channel} channel`;
  const span = body.for ? `for ${body.for}` : "until routing is changed again";
  $("rollback-confirm-text").textContent =
    `Send every new contact on ${scope} to the baseline (in-house) routing, ${span}?`;
  $("rollback-confirm").hidden = false;
  $("rollback-confirm-button").focus();
}

async function confirmRollback() {
  const body = pendingRollback;
  pendingRollback = null;
  $("rollback-confirm").hidden = true;
  if (!body) {
    return;
  }
  const result = await change(
    () => api("POST", "api/rollback", body),
    (row) => `Rolled back: version ${row.version} is in force.`,
  );
  if (result) {
    $("rollback-form").reset();
  }
}

function cancelRollback() {
  pendingRollback = null;
  $("rollback-confirm").hidden = true;
}

async function resume(event) {
  event.preventDefault();
  const form = event.target;
  const result = await change(
    () => api("POST", "api/resume", { reason: form.reason.value.trim() }),
    (row) => `Resumed: version ${row.version} is in force.`,
  );
  if (result) {
    form.reset();
  }
}

async function cutover(event) {
  event.preventDefault();
  const form = event.target;
  const preview = event.submitter && event.submitter.value === "preview";
  const body = {
    channel: form.channel.value,
    category: form.category.value,
    percent: Number(form.percent.value),
    reason: form.reason.value.trim(),
  };
  if (preview) {
    body.dry_run = true;
    try {
      showPreview(await api("POST", "api/cutover", body), body);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        notify(error.message, "error");
      }
    }
    return;
  }
  const result = await change(
    () => api("POST", "api/cutover", body),
    (row) => `Cut-over set: version ${row.version} is in force.`,
  );
  if (result) {
    $("preview").hidden = true;
  }
}

function showPreview(result, body) {
  const box = $("preview");
  box.replaceChildren();
  const title = document.createElement("p");
  const moved = Object.values(result.moves || {}).reduce(
    (sum, moves) => sum + Object.values(moves).reduce((a, b) => a + b, 0),
    0,
  );
  title.textContent =
    `${body.channel} × ${body.category} at ${body.percent} %: of ${result.contacts} contacts ` +
    `in the last ${result.days} days, ${moved} would have gone elsewhere.`;
  box.appendChild(title);
  const list = document.createElement("ul");
  for (const [channel, moves] of Object.entries(result.moves || {})) {
    for (const [move, count] of Object.entries(moves)) {
      const item = document.createElement("li");
      item.textContent = `${channel}: ${move}: ${count}`;
      list.appendChild(item);
    }
  }
  box.appendChild(list);
  box.hidden = false;
}

// -- start --------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("rollback-form").addEventListener("submit", askRollback);
  $("rollback-confirm-button").addEventListener("click", confirmRollback);
  $("rollback-cancel").addEventListener("click", cancelRollback);
  $("resume-form").addEventListener("submit", resume);
  $("cutover-form").addEventListener("submit", cutover);
  if (sessionStorage.getItem(TOKEN_KEY)) {
    signIn(sessionStorage.getItem(TOKEN_KEY));
  } else {
    signOut("");
  }
});
