// The installer's status page: reads the gateway's JSON API with a token kept in this browser.
// No framework and no build step; every value goes into the page as text (textContent), never
// as HTML, so nothing a device or a command body holds can run here.
"use strict";

const POLL_MS = 2000;
const KEY = "energy-gateway-token";
const $ = (id) => document.getElementById(id);

function storedToken() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
}

function forgetToken() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

class AuthError extends Error {}

async function api(path) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${storedToken()}` },
    cache: "no-store",
  });
  if (response.status === 401) throw new AuthError("the token was refused");
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  return { status: response.status, body, sandbox: response.headers.get("Energy-Gateway-Sandbox") === "true" };
}

function watts(value) {
  if (value === null || value === undefined) return "—";
  const abs = Math.abs(value);
  return abs >= 1000 ? `${(value / 1000).toFixed(2)} kW` : `${Math.round(value)} W`;
}

const DIRECTIONS = {
  solar: (w) => (w > 0 ? "producing" : "idle"),
  battery: (w) => (w > 0 ? "discharging" : w < 0 ? "charging" : "idle"),
  grid: (w) => (w > 0 ? "importing" : w < 0 ? "exporting" : "idle"),
  load: (w) => (w > 0 ? "using" : "idle"),
  car: (w) => (w > 0 ? "charging" : "idle"),
};

function setFlow(section, flow, value) {
  const node = section.querySelector(`.node[data-flow="${flow}"]`);
  node.dataset.value = value === null || value === undefined ? "" : String(value);
  node.querySelector(".watts").textContent = watts(value);
  const dir = value === null || value === undefined ? "" : DIRECTIONS[flow](value);
  node.querySelector(".dir").textContent = dir;
  node.dataset.direction = dir;
}

function localTime(iso) {
  if (!iso) return "never";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const today = at.toDateString() === new Date().toDateString();
  return today ? at.toLocaleTimeString() : at.toLocaleString();
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function siteSection(id, name) {
  let section = document.querySelector(`section.site[data-site="${id}"]`);
  if (!section) {
    section = $("site-template").content.firstElementChild.cloneNode(true);
    section.dataset.site = String(id);
    $("sites").appendChild(section);
  }
  section.querySelector(".site-name").textContent = name || `Site ${id}`;
  section.querySelector(".site-id").textContent = `#${id}`;
  return section;
}

function renderLive(section, live) {
  const offline = section.querySelector(".site-offline");
  if (live.status !== 200 || !live.body || !live.body.response) {
    section.dataset.online = "false";
    offline.hidden = false;
    offline.textContent = (live.body && live.body.error_description) || `live_status answered ${live.status}`;
    for (const flow of ["solar", "battery", "grid", "load", "car"]) setFlow(section, flow, null);
    section.querySelector('[data-flow="soc"]').dataset.value = "";
    section.querySelector(".soc-text").textContent = "—";
    section.querySelector(".soc-fill").style.width = "0";
    return;
  }
  const r = live.body.response;
  section.dataset.online = "true";
  offline.hidden = true;
  setFlow(section, "solar", r.solar_power);
  setFlow(section, "battery", r.battery_power);
  setFlow(section, "grid", r.grid_power);
  setFlow(section, "load", r.load_power);
  const chargers = r.wall_connectors || [];
  const car = section.querySelector(".node.car");
  car.hidden = chargers.length === 0;
  if (chargers.length) setFlow(section, "car", chargers.reduce((s, c) => s + (c.wall_connector_power || 0), 0));
  const soc = section.querySelector('[data-flow="soc"]');
  const pct = r.percentage_charged;
  soc.dataset.value = pct === undefined || pct === null ? "" : String(pct);
  section.querySelector(".soc-text").textContent = pct === undefined || pct === null ? "—" : `${pct.toFixed(1)} %`;
  section.querySelector(".soc-fill").style.width = `${Math.max(0, Math.min(100, pct || 0))}%`;
  section.querySelector(".grid .label").textContent = r.grid_status === "Inactive" ? "Grid (down)" : "Grid";
}

function renderStatus(section, status) {
  if (status.status !== 200 || !status.body) return;
  const s = status.body.response;
  const alerts = section.querySelector(".alerts");
  alerts.replaceChildren();
  for (const alert of s.alerts) {
    const li = document.createElement("li");
    li.className = `alert ${alert.kind}`;
    li.dataset.kind = alert.kind;
    li.textContent = alert.message;
    alerts.appendChild(li);
  }
  if (!s.alerts.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "none";
    alerts.appendChild(li);
  }
  const devices = section.querySelector(".devices tbody");
  devices.replaceChildren();
  for (const d of s.devices) {
    const row = document.createElement("tr");
    row.dataset.device = d.name;
    row.dataset.quality = d.quality;
    cell(row, `${d.name} (${d.type})`);
    cell(row, d.quality, `quality ${d.quality}`);
    cell(row, localTime(d.last_poll));
    cell(row, d.data_age_s === null ? "—" : `${d.data_age_s.toFixed(1)} s`);
    cell(row, d.last_error || "", "detail");
    devices.appendChild(row);
  }
  const journal = section.querySelector(".journal tbody");
  journal.replaceChildren();
  for (const e of s.journal) {
    const row = document.createElement("tr");
    row.dataset.status = e.status;
    cell(row, localTime(e.received_at));
    cell(row, e.command);
    cell(row, JSON.stringify(e.changes), "detail");
    const outcome = cell(row, e.status, `outcome ${e.status}`);
    if (e.detail) outcome.title = e.detail;
    journal.appendChild(row);
  }
  if (!s.journal.length) {
    const row = document.createElement("tr");
    cell(row, "no commands yet", "muted").colSpan = 4;
    journal.appendChild(row);
  }
}

let timer = null;

async function refresh() {
  try {
    const products = await api("/api/1/products");
    if (products.status !== 200) throw new Error((products.body && products.body.error_description) || `products answered ${products.status}`);
    for (const site of products.body.response) {
      const id = site.energy_site_id;
      const section = siteSection(id, site.site_name);
      const [live, status] = await Promise.all([
        api(`/api/1/energy_sites/${id}/live_status`),
        api(`/api/1/energy_sites/${id}/gateway_status?journal_limit=10`),
      ]);
      section.querySelector(".sandbox").hidden = !live.sandbox;
      renderLive(section, live);
      renderStatus(section, status);
      section.dataset.updated = String(Date.now());
    }
    $("problem").hidden = true;
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.ready = "true";
  } catch (error) {
    if (error instanceof AuthError) {
      forgetToken();
      showLogin("The gateway refused the token (expired, revoked or wrong). Paste a new one.");
      return;
    }
    $("problem").hidden = false;
    $("problem").textContent = `Gateway not reachable: ${error.message}`;
  }
  timer = setTimeout(refresh, POLL_MS);
}

function showLogin(message) {
  clearTimeout(timer);
  $("sites").replaceChildren();
  $("login").hidden = false;
  $("forget").hidden = true;
  $("login-error").textContent = message || "";
  $("token").focus();
}

function start() {
  $("login").hidden = true;
  $("forget").hidden = false;
  clearTimeout(timer);
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim().replace(/^Bearer\s+/i, "");
    if (!value) return;
    forgetToken();
    ($("remember").checked ? localStorage : sessionStorage).setItem(KEY, value);
    $("token").value = "";
    start();
  });
  $("forget").addEventListener("click", () => { forgetToken(); showLogin(); });
  if (storedToken()) start(); else showLogin();
});
