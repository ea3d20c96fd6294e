// sigver operator console: plain JavaScript over the public HTTP API.
// The API key lives in sessionStorage (this tab only) and travels in the
// X-API-Key header, never in a URL. Server text is inserted with textContent only.
"use strict";

(() => {
  const KEY_STORAGE = "sigver.apiKey";
  const USER_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
  const $ = (id) => document.getElementById(id);

  const state = {
    key: sessionStorage.getItem(KEY_STORAGE),
    health: null,
    audit: false,
    users: [],
    enrollItems: [], // {file, result}
    verifyItem: null, // {file, result}
    detailUser: null,
  };

  // -- HTTP -------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, data) {
      super(describeError(status, data));
      this.status = status;
      this.data = data;
    }
  }

  function describeError(status, data) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) {
      detail = detail.map((d) => `${(d.loc || []).slice(-1)[0] || "input"}: ${d.msg}`).join("; ");
    }
    if (status === 401) return "No API key was sent.";
    if (status === 403) return "This API key was refused (wrong or revoked).";
    if (data && data.source && data.reason) return `${data.source}: ${data.reason}`;
    return detail ? String(detail) : `The service answered ${status}.`;
  }

  async function api(method, path, { form, json, key } = {}) {
    const headers = { "X-API-Key": key || state.key || "" };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: "no-store", credentials: "omit" });
    } catch (err) {
      throw new ApiError(0, { detail: "The service cannot be reached." });
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if ((response.status === 401 || response.status === 403) && !key) signOut(error.message);
      throw error;
    }
    return data;
  }

  const fmt = (x) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(3) : "—");
  const pngSrc = (b64) => `data:image/png;base64,${b64}`;

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function setFacts(dl, pairs) {
    dl.replaceChildren();
    for (const [term, value] of pairs) {
      dl.append(el("dt", { text: term }), el("dd", { text: value }));
    }
  }

  // -- sign in, navigation ----------------------------------------------------------

  async function signIn(key) {
    await api("GET", "/v1/users", { key }); // throws ApiError on a refused key
    state.key = key;
    sessionStorage.setItem(KEY_STORAGE, key);
    await startSession();
  }

  function signOut(message) {
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    $("tabs").hidden = true;
    $("signout").hidden = true;
    for (const id of ["enroll", "verify", "users"]) $(id).hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("api-key").value = "";
    $("api-key").focus();
  }

  async function startSession() {
    $("signin").hidden = true;
    $("signin-error").textContent = "";
    $("tabs").hidden = false;
    $("signout").hidden = false;
    await Promise.all([loadHealth(), detectAudit(), loadUsers()]);
    showTab(location.hash.slice(1) || "verify", false);
  }

  async function loadHealth() {
    try {
      const h = await (await fetch("/health", { cache: "no-store" })).json();
      state.health = h;
      $("service-info").textContent =
        `model ${h.model_id} · default threshold ${fmt(h.default_threshold)} · v${h.version}`;
    } catch (err) {
      $("service-info").textContent = "service health unknown";
    }
  }

  async function detectAudit() {
    // The audit trail is optional: a 404 means this service has none, so the
    // history panel stays hidden.
    try {
      await api("GET", "/v1/audit?limit=1");
      state.audit = true;
    } catch (err) {
      state.audit = false;
    }
  }

  function showTab(name, focus = true) {
    if (!["enroll", "verify", "users"].includes(name)) name = "verify";
    for (const button of document.querySelectorAll("#tabs button")) {
      const active = button.dataset.tab === name;
      if (active) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
      $(button.dataset.tab).hidden = !active;
    }
    if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    if (focus) $(`${name}-title`).focus();
  }

  // -- users ----------------------------------------------------------------------

  async function loadUsers() {
    const data = await api("GET", "/v1/users");
    state.users = data.users;
    renderUsers();
    renderUserSelect();
  }

  function thresholdText(user) {
    const def = state.health ? state.health.default_threshold : null;
    return user.threshold === null || user.threshold === undefined
      ? `${fmt(def)} (model default)`
      : `${fmt(user.threshold)} (override)`;
  }

  function renderUsers() {
    const query = $("users-search").value.trim().toLowerCase();
    const shown = state.users.filter((u) => u.user_id.toLowerCase().includes(query));
    const tbody = $("users-table").tBodies[0];
    tbody.replaceChildren();
    for (const user of shown) {
      const manage = el("button", {
        type: "button", className: "secondary", text: "Manage",
        "aria-label": `Manage ${user.user_id}`, onclick: () => openUser(user.user_id),
      });
      const verify = el("button", {
        type: "button", className: "secondary", text: "Verify",
        "aria-label": `Verify a signature of ${user.user_id}`,
        onclick: () => { $("verify-user").value = user.user_id; showTab("verify"); },
      });
      tbody.append(el("tr", { "data-user": user.user_id },
        el("th", { scope: "row", text: user.user_id }),
        el("td", { text: String(user.n_references) }),
        el("td", { text: thresholdText(user) }),
        el("td", { text: (user.updated_at || "").replace("T", " ").slice(0, 19) }),
        el("td", { className: "row-actions" }, manage, verify)));
    }
    $("users-count").textContent = query
      ? `${shown.length} of ${state.users.length} users match “${query}”.`
      : `${state.users.length} enrolled users.`;
  }

  function renderUserSelect() {
    const select = $("verify-user");
    const current = select.value;
    select.replaceChildren(el("option", { value: "", text: "— choose a user —" }));
    for (const user of state.users) select.append(el("option", { value: user.user_id, text: user.user_id }));
    if (state.users.some((u) => u.user_id === current)) select.value = current;
    updateVerifyButton();
  }

  async function openUser(userId) {
    const user = await api("GET", `/v1/users/${encodeURIComponent(userId)}`);
    state.detailUser = user;
    $("user-detail").hidden = false;
    $("user-detail-title").textContent = user.user_id;
    setFacts($("user-facts"), [
      ["References", `${user.n_references} (${user.stored_images} images kept)`],
      ["Threshold in force", `${fmt(user.effective_threshold)} ${user.threshold === null ? "(model default)" : "(override)"}`],
      ["Model", user.model_id],
      ["Enrolled", user.created_at],
      ["Updated", `${user.updated_at} (revision ${user.revision})`],
    ]);
    $("threshold-value").value = user.threshold === null ? "" : String(user.threshold);
    $("threshold-help").textContent =
      `Scores at or above the threshold are accepted. Model default: ${fmt(state.health && state.health.default_threshold)}.`;
    $("users-status").textContent = "";
    await loadHistory(user.user_id);
    $("user-detail-title").focus();
  }

  async function loadHistory(userId) {
    const panel = $("history");
    if (!state.audit) {
      panel.hidden = true;
      return;
    }
    try {
      const data = await api("GET", `/v1/audit?user_id=${encodeURIComponent(userId)}&limit=50`);
      const tbody = $("history-table").tBodies[0];
      tbody.replaceChildren();
      for (const ev of data.events || []) {
        tbody.append(el("tr", {},
          el("td", { text: ev.time || "" }),
          el("td", { text: ev.action || "" }),
          el("td", { text: ev.decision || "" }),
          el("td", { text: fmt(ev.score) }),
          el("td", { text: ev.operating_point || "" }),
          el("td", { text: ev.key_id || "" })));
      }
      $("history-note").textContent = (data.events || []).length ? "" : "No recorded events for this user.";
      panel.hidden = false;
    } catch (err) {
      panel.hidden = true;
      if (err.status === 404) state.audit = false;
    }
  }

  async function setThreshold(value) {
    const user = state.detailUser;
    if (!user) return;
    try {
      await api("PUT", `/v1/users/${encodeURIComponent(user.user_id)}/threshold`, { json: { threshold: value } });
      await loadUsers();
      await openUser(user.user_id);
      $("users-status").textContent = value === null
        ? `${user.user_id} now uses the model's default threshold.`
        : `Threshold of ${user.user_id} set to ${fmt(value)}.`;
    } catch (err) {
      $("users-status").textContent = err.message;
    }
  }

  async function removeUser() {
    const user = state.detailUser;
    if (!user || !window.confirm(`Remove ${user.user_id} and all their references?`)) return;
    try {
      await api("DELETE", `/v1/users/${encodeURIComponent(user.user_id)}`);
      state.detailUser = null;
      $("user-detail").hidden = true;
      await loadUsers();
      $("users-status").textContent = `Removed ${user.user_id}.`;
      $("users-search").focus();
    } catch (err) {
      $("users-status").textContent = err.message;
    }
  }

  // -- preprocessing checks -------------------------------------------------------

  async function preprocess(files) {
    const form = new FormData();
    for (const file of files) form.append("images", file, file.name);
    return api("POST", "/v1/preprocess", { form });
  }

  function thumbItem(name, result, extra) {
    const item = el("li", { className: result.ok ? "thumb ok" : "thumb bad", "data-file": name });
    if (result.ok) {
      item.append(el("img", { src: pngSrc(result.png_base64), alt: `${name} after preprocessing` }));
    } else {
      item.append(el("div", { className: "thumb-error", text: result.reason || "refused" }));
    }
    item.append(el("span", { className: "thumb-name", text: name }));
    if (extra) item.append(extra);
    return item;
  }

  // -- enroll -----------------------------------------------------------------------

  async function addEnrollFiles(fileList) {
    const files = Array.from(fileList);
    if (!files.length) return;
    $("enroll-check").textContent = `Checking ${files.length} file(s)…`;
    try {
      const data = await preprocess(files);
      data.results.forEach((result, i) => state.enrollItems.push({ file: files[i], result }));
      state.minReferences = data.min_references;
    } catch (err) {
      $("enroll-check").textContent = err.message;
      return;
    }
    $("enroll-files").value = "";
    renderEnrollList();
  }

  function usableEnrollItems() {
    const seen = new Map();
    const usable = [];
    for (const item of state.enrollItems) {
      item.duplicateOf = null;
      if (!item.result.ok) continue;
      if (seen.has(item.result.sha256)) {
        item.duplicateOf = seen.get(item.result.sha256);
        continue;
      }
      seen.set(item.result.sha256, item.file.name);
      usable.push(item);
    }
    return usable;
  }

  function renderEnrollList() {
    const usable = usableEnrollItems();
    const list = $("enroll-list");
    list.replaceChildren();
    state.enrollItems.forEach((item, index) => {
      const remove = el("button", {
        type: "button", className: "link", text: "Remove",
        "aria-label": `Remove ${item.file.name}`,
        onclick: () => { state.enrollItems.splice(index, 1); renderEnrollList(); },
      });
      const note = item.duplicateOf ? el("span", { className: "thumb-note", text: `same image as ${item.duplicateOf}` }) : null;
      const li = thumbItem(item.file.name, item.result, remove);
      if (note) li.insertBefore(note, remove);
      list.append(li);
    });
    const bad = state.enrollItems.filter((i) => !i.result.ok).length;
    const min = state.minReferences || 1;
    const parts = [];
    if (state.enrollItems.length) parts.push(`${usable.length} usable`);
    if (bad) parts.push(`${bad} refused (not sent)`);
    const dup = state.enrollItems.filter((i) => i.duplicateOf).length;
    if (dup) parts.push(`${dup} duplicate(s) counted once`);
    if (state.enrollItems.length && usable.length < min) parts.push(`at least ${min} needed for a new enrollment`);
    $("enroll-check").textContent = parts.join(" · ");
    $("enroll-submit").textContent = usable.length ? `Enroll ${usable.length} signature(s)` : "Enroll";
    updateEnrollButton();
  }

  function updateEnrollButton() {
    const ok = USER_ID.test($("enroll-user").value.trim()) && usableEnrollItems().length > 0;
    $("enroll-submit").disabled = !ok;
  }

  async function submitEnroll(event) {
    event.preventDefault();
    const userId = $("enroll-user").value.trim();
    const status = $("enroll-status");
    if (!USER_ID.test(userId)) {
      status.textContent = "Enter a valid user id first.";
      $("enroll-user").focus();
      return;
    }
    const usable = usableEnrollItems();
    const mode = document.querySelector("input[name=mode]:checked").value;
    const form = new FormData();
    for (const item of usable) form.append("images", item.file, item.file.name);
    if (mode === "add") form.append("add", "true");
    if (mode === "force") form.append("force", "true");
    form.append("store_images", $("enroll-keep").checked ? "true" : "false");
    $("enroll-submit").disabled = true;
    status.className = "status";
    status.textContent = `Enrolling ${userId}…`;
    try {
      const r = await api("POST", `/v1/users/${encodeURIComponent(userId)}/enroll`, { form });
      status.className = "status success";
      status.textContent =
        `Enrolled ${r.user_id}: ${r.n_references} references (${r.added} new), ` +
        `threshold ${fmt(r.threshold)}, ${r.seconds} s.`;
      state.enrollItems = [];
      renderEnrollList();
      await loadUsers();
    } catch (err) {
      status.className = "status failure";
      status.textContent = `Not enrolled: ${err.message}`;
    } finally {
      updateEnrollButton();
    }
  }

  // -- verify -----------------------------------------------------------------------

  function updateVerifyButton() {
    const item = state.verifyItem;
    $("verify-submit").disabled = !($("verify-user").value && item && item.result.ok);
  }

  async function setVerifyFile(file) {
    state.verifyItem = null;
    $("verify-result").hidden = true;
    $("verify-error").textContent = "";
    updateVerifyButton();
    if (!file) return;
    $("verify-check").textContent = `Checking ${file.name}…`;
    try {
      const data = await preprocess([file]);
      state.verifyItem = { file, result: data.results[0] };
      const r = data.results[0];
      $("verify-check").textContent = r.ok ? `${file.name} is readable.` : `${file.name}: ${r.reason}`;
    } catch (err) {
      $("verify-check").textContent = err.message;
    }
    updateVerifyButton();
  }

  function drawGauge(score, threshold) {
    // Centre the threshold; the scale widens so that the score always fits.
    const span = Math.max(1, Math.abs(score - threshold) * 1.25);
    const lo = threshold - span;
    const pos = Math.min(1, Math.max(0, (score - lo) / (2 * span)));
    const gauge = $("verify-gauge");
    gauge.setAttribute("aria-valuemin", (lo).toFixed(3));
    gauge.setAttribute("aria-valuemax", (threshold + span).toFixed(3));
    gauge.setAttribute("aria-valuenow", score.toFixed(3));
    gauge.setAttribute("aria-valuetext", `score ${score.toFixed(3)}, threshold ${threshold.toFixed(3)}`);
    gauge.querySelector(".gauge-score").style.left = `${(pos * 100).toFixed(1)}%`;
    gauge.classList.toggle("accepted", score >= threshold);
    $("verify-gauge-label").textContent =
      `Score ${score.toFixed(3)} ${score >= threshold ? "≥" : "<"} threshold ${threshold.toFixed(3)} ` +
      `(margin ${(score - threshold >= 0 ? "+" : "") + (score - threshold).toFixed(3)})`;
  }

  async function submitVerify(event) {
    event.preventDefault();
    const userId = $("verify-user").value;
    const item = state.verifyItem;
    if (!userId || !item || !item.result.ok) return;
    const form = new FormData();
    form.append("image", item.file, item.file.name);
    $("verify-error").textContent = "";
    $("verify-submit").disabled = true;
    try {
      const [data, user, refs] = await Promise.all([
        api("POST", `/v1/users/${encodeURIComponent(userId)}/verify`, { form }),
        api("GET", `/v1/users/${encodeURIComponent(userId)}`),
        api("GET", `/v1/users/${encodeURIComponent(userId)}/references`).catch(() => null),
      ]);
      renderVerdict(data.results[0], user, refs, item);
    } catch (err) {
      $("verify-result").hidden = true;
      $("verify-error").textContent = err.message;
    } finally {
      updateVerifyButton();
    }
  }

  function renderVerdict(result, user, refs, item) {
    const box = $("verify-result");
    const decision = $("verify-decision");
    decision.className = `decision ${result.accepted ? "accepted" : "rejected"}`;
    decision.textContent = `${result.accepted ? "Accepted" : "Rejected"}: ${item.file.name} ` +
      `${result.accepted ? "matches" : "does not match"} ${result.user_id}`;
    drawGauge(result.score, result.threshold);
    const facts = [
      ["Decision", result.decision],
      ["Score", fmt(result.score)],
      ["Threshold", `${fmt(result.threshold)} ${user.threshold === null ? "(model default)" : "(user override)"}`],
    ];
    if (result.operating_point !== undefined && result.operating_point !== null) {
      facts.push(["Operating point", String(result.operating_point)]);
    }
    if (Number.isInteger(result.references)) {
      // The calibrated rates hold best at the reference count they were measured with.
      const cal = result.calibrated_references;
      let text = String(result.references);
      if (Number.isInteger(cal)) {
        text += cal === result.references
          ? " (as the operating point was calibrated)"
          : ` (the operating point was calibrated with ${cal}: its error rates may differ)`;
      }
      facts.push(["References", text]);
    }
    facts.push(["Model", result.model_id], ["Image SHA-256", result.image_sha256]);
    setFacts($("verify-facts"), facts);
    const q = $("verify-questioned");
    q.src = pngSrc(item.result.png_base64);
    q.alt = `Questioned signature ${item.file.name} after preprocessing`;
    const list = $("verify-refs");
    list.replaceChildren();
    const note = $("verify-refs-note");
    if (!refs) {
      note.textContent = "The references could not be loaded.";
    } else if (!refs.stored) {
      note.textContent = `${refs.n_references} references enrolled; their images were not kept, so none can be shown.`;
    } else {
      note.textContent = `${refs.stored} of ${refs.n_references} references (images kept at enrollment).`;
      refs.references.forEach((ref, i) => {
        const ok = Boolean(ref.png_base64);
        list.append(thumbItem(`reference ${i + 1}`, { ok, png_base64: ref.png_base64, reason: ref.reason }));
      });
    }
    box.hidden = false;
  }

  // -- wiring ------------------------------------------------------------------------

  function dropZone(zone, onFiles) {
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files.length) onFiles(e.dataTransfer.files);
    });
  }

  function init() {
    $("signin-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) {
        $("signin-error").textContent = "Enter an API key.";
        return;
      }
      try {
        await signIn(key);
      } catch (err) {
        $("signin-error").textContent = err.message;
      }
    });
    $("signout").addEventListener("click", () => signOut("Signed out."));
    for (const button of document.querySelectorAll("#tabs button")) {
      button.addEventListener("click", () => showTab(button.dataset.tab));
    }

    $("enroll-files").addEventListener("change", (e) => addEnrollFiles(e.target.files));
    dropZone($("enroll-drop"), addEnrollFiles);
    $("enroll-user").addEventListener("input", updateEnrollButton);
    $("enroll-clear").addEventListener("click", () => { state.enrollItems = []; renderEnrollList(); });
    $("enroll-form").addEventListener("submit", submitEnroll);

    $("verify-file").addEventListener("change", (e) => setVerifyFile(e.target.files[0]));
    dropZone($("verify-drop"), (files) => setVerifyFile(files[0]));
    $("verify-user").addEventListener("change", () => { $("verify-result").hidden = true; updateVerifyButton(); });
    $("verify-form").addEventListener("submit", submitVerify);

    $("users-search").addEventListener("input", renderUsers);
    $("users-refresh").addEventListener("click", () => loadUsers().catch((err) => { $("users-status").textContent = err.message; }));
    $("threshold-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const raw = $("threshold-value").value.trim();
      const value = Number(raw);
      if (!raw || !Number.isFinite(value)) {
        $("users-status").textContent = "Enter a number, or use the model default.";
        return;
      }
      setThreshold(value);
    });
    $("threshold-clear").addEventListener("click", () => setThreshold(null));
    $("user-remove").addEventListener("click", removeUser);

    if (state.key) {
      startSession().catch((err) => signOut(err.message));
    } else {
      signOut("");
    }
  }

  document.addEventListener("DOMContentLoaded", init);
})();
