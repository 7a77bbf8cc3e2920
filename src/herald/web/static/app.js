// Herald dashboard: plain modules, no build step, only the public JSON API.
// Every piece of data goes into the page as text (textContent / Text nodes), never as HTML.

const API = "api/v1"; // relative, so a proxy may serve Herald under a sub-path
const TOKEN_KEY = "herald.access_token";
const POLL_INTERVAL_MS = 1000;
const POLL_GIVE_UP_MS = 10 * 60 * 1000;
const HEALTH_INTERVAL_MS = 30 * 1000;
// Live events: reopen a failed stream after 1 s, 2 s, 4 s … at most 30 s.
const LIVE_RETRY_FIRST_MS = 1000;
const LIVE_RETRY_MAX_MS = 30 * 1000;
// A stream that stayed open this long was healthy: the next failure starts over at 1 s.
const LIVE_HEALTHY_MS = 10 * 1000;
// Events for deliveries this page has not seen are batched into one re-read.
const SYNC_DELAY_MS = 300;
const SECRET_NAME = /secret|token|password|passwd|key/i;

const HEALTH_LABELS = {
  database: "Database",
  broker: "Broker",
  workers: "Workers",
  scheduler: "Scheduler",
};
const STATE_TONES = {
  active: "good",
  needs_reconnect: "warn",
  paused: "neutral",
  draft: "neutral",
  in_review: "info",
  rejected: "warn",
  scheduled: "info",
  published: "good",
  partially_failed: "warn",
  failed: "bad",
};
// Each delivery state has a colour of its own (see .badge.delivery-* in app.css).
const DELIVERY_LABELS = {
  scheduled: "Scheduled",
  queued: "Queued",
  publishing: "Publishing",
  published: "Published",
  retry_wait: "Retry wait",
  failed: "Failed",
  unconfirmed: "Unconfirmed",
  cancelled: "Cancelled",
};
// The delivery state machine as the server declares it (GET publications/states): which
// states a delivery can still be cancelled in (active) or sent again from (retryable).
let deliveryGroups = { active: [], retryable: [] };
const inGroup = (group, state) => (deliveryGroups[group] || []).includes(state);

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- helpers

/** Build an element. Children that are strings become Text nodes, so they are never parsed. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const humanize = (value) => {
  const text = String(value).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
};

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const formatDate = (iso) => {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const badge = (state) => h("span", { class: `badge ${STATE_TONES[state] ?? "neutral"}` }, humanize(state));

/** Replace a list's children, keeping keyboard focus on the "same" control if it is re-created. */
function replaceKeepingFocus(list, children) {
  const key = document.activeElement?.dataset?.focusKey;
  list.replaceChildren(...children);
  if (key) list.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}

/** A delete button that asks once more in place instead of a modal dialog. */
function deleteButton(label, focusKey, onConfirm) {
  let timer = null;
  const button = h("button", { type: "button", class: "button small danger", "data-focus-key": focusKey }, "Delete");
  button.setAttribute("aria-label", `Delete ${label}`);
  const disarm = () => {
    clearTimeout(timer);
    delete button.dataset.armed;
    button.textContent = "Delete";
    button.setAttribute("aria-label", `Delete ${label}`);
  };
  button.addEventListener("click", async () => {
    if (!button.dataset.armed) {
      button.dataset.armed = "true";
      button.textContent = "Confirm delete";
      button.setAttribute("aria-label", `Confirm: delete ${label}`);
      timer = setTimeout(disarm, 4000);
      return;
    }
    disarm();
    button.disabled = true;
    try {
      await onConfirm();
    } finally {
      button.disabled = false;
    }
  });
  button.addEventListener("blur", disarm);
  return button;
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, detail, errors = [], retryAfter = null) {
    super(detail);
    this.status = status;
    this.errors = Array.isArray(errors) ? errors : [];
    this.retryAfter = retryAfter;
  }
}

/**
 * Call the API. Errors are RFC 9457 problem+json: their `detail` becomes the message.
 * `accept` lists non-2xx statuses whose body is still the answer (health's 503).
 */
async function api(path, { method = "GET", body, auth = true, accept = [] } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`${API}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "Herald cannot be reached. Check the connection and try again.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok || accept.includes(response.status)) return data;
  const detail =
    typeof data?.detail === "string" ? data.detail : `${response.status} ${response.statusText}`.trim();
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  if (auth && response.status === 401) endSession("Your session has ended. Sign in again.");
  throw new ApiError(response.status, detail, data?.errors, retryAfter);
}

// ---------------------------------------------------------------- forms

function formError(form) {
  return form.querySelector('[data-role="error"]');
}

function clearFormError(form) {
  const error = formError(form);
  if (error) error.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll("[data-error-for]")) el.textContent = "";
}

/**
 * Show the problem's detail, and mark the fields its `errors` point at. A form whose fields
 * have a message slot (`data-error-for="<name>"`, in the field's aria-describedby) gets
 * each field's message there, and a short pointer in the form's alert instead.
 */
function showFormError(form, error, fieldName = (loc) => loc[1]) {
  let message = error.message;
  if (error.status === 429 && error.retryAfter) message += ` Try again in ${error.retryAfter} s.`;
  let first = null;
  let placed = 0;
  for (const item of error.errors) {
    const loc = Array.isArray(item.loc) ? item.loc : [];
    if (loc[0] !== "body") continue;
    const name = String(fieldName(loc));
    const field = form.elements.namedItem(name);
    if (field instanceof HTMLElement && !field.disabled) {
      field.setAttribute("aria-invalid", "true");
      first ??= field;
      const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
      if (slot) {
        slot.textContent = slot.textContent ? `${slot.textContent} ${item.msg ?? ""}` : String(item.msg ?? message);
        placed += 1;
      }
    }
  }
  formError(form).textContent = placed ? (placed === 1 ? "Check the marked field." : "Check the marked fields.") : message;
  first?.focus();
}

/** Run a form submission with the submit button disabled and errors shown in the form. */
function onSubmit(form, handler, fieldName) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = form.querySelector('[type="submit"]');
    clearFormError(form);
    submit.disabled = true;
    try {
      await handler(new FormData(form));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status !== 401 || form.id === "signin-form") showFormError(form, error, fieldName);
    } finally {
      submit.disabled = false;
    }
  });
}

// ---------------------------------------------------------------- session

// One object per signed-in session: loops (job polling, health) stop when it is replaced.
let session = null;

function showSignin(notice = "") {
  $("app-view").hidden = true;
  $("signin-view").hidden = false;
  const el = $("signin-notice");
  el.textContent = notice;
  el.hidden = !notice;
  $("signin-email").focus();
}

function endSession(notice = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  if (session) {
    clearInterval(session.healthTimer);
    session.live?.close();
  }
  session = null;
  setLive("off");
  postUi.clear();
  deliveryPost.clear();
  refreshing.clear();
  clearTimeout(syncTimer);
  syncTimer = null;
  // Drop everything the previous user could see.
  for (const id of ["posts-list", "channels-list", "sources-list", "health-list"]) $(id).replaceChildren();
  for (const id of ["user-email", "user-role", "workspace-name", "posts-status", "channels-status", "sources-status"]) {
    $(id).textContent = "";
  }
  for (const form of document.querySelectorAll("#app-view form")) {
    form.reset();
    clearFormError(form);
  }
  checks.clear();
  clearSources();
  clearAgents();
  clearWebhooks();
  showSignin(notice);
}

async function startSession() {
  const current = { healthTimer: null, live: null };
  const owner = current;
  session = current;
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  current.healthTimer = setInterval(() => {
    if (!document.hidden) refreshHealth();
  }, HEALTH_INTERVAL_MS);
  current.live = connectLive(current);
  // Before the posts: their deliveries' buttons depend on the groups.
  await loadDeliveryStates().catch(() => {});
  await Promise.allSettled([
    // The agents' and webhooks' panels after the role: a reviewer's agent rows have no
    // manager's buttons, and a reviewer gets no webhooks panel.
    loadMe().finally(() => (owner === session ? Promise.allSettled([loadAgentsPanel(), loadWebhooks()]) : null)),
    refreshHealth(),
    loadPlatforms(),
    loadChannels(),
    loadPosts(),
    loadSources(),
  ]);
}

async function loadDeliveryStates() {
  deliveryGroups = (await api("/publications/states")).groups;
}

async function loadMe() {
  const me = await api("/auth/me");
  $("user-email").textContent = me.email;
  $("user-role").textContent = humanize(me.role);
  applyRole(me.role);
  $("workspace-name").textContent = me.workspace_name;
}

onSubmit($("signin-form"), async (data) => {
  const email = String(data.get("email")).trim();
  const password = String(data.get("password"));
  if (!email || !password) throw new ApiError(0, "Enter your email and password.");
  const token = await api("/auth/login", { method: "POST", auth: false, body: { email, password } });
  sessionStorage.setItem(TOKEN_KEY, token.access_token);
  $("signin-form").reset();
  $("signin-notice").hidden = true;
  await startSession();
});

$("signout").addEventListener("click", () => endSession("You have signed out."));

// ---------------------------------------------------------------- health

async function refreshHealth() {
  const list = $("health-list");
  let health;
  try {
    health = await api("/health", { auth: false, accept: [503] });
  } catch (error) {
    list.replaceChildren(h("li", { class: "health-item down" }, h("span", { class: "dot" }), error.message));
    return;
  }
  const components = health?.components ?? {};
  list.replaceChildren(
    ...Object.entries(components).map(([name, component]) => {
      const up = component.status === "up";
      const label = HEALTH_LABELS[name] ?? humanize(name);
      let note = up ? "up" : "down";
      if (name === "workers" && up && component.info?.count) note = `${component.info.count} up`;
      return h(
        "li",
        { class: `health-item ${up ? "up" : "down"}`, title: component.detail || null },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { class: "health-name" }, label),
        h("span", { class: "health-state" }, note),
        component.detail ? h("span", { class: "visually-hidden" }, `: ${component.detail}`) : null,
      );
    }),
  );
}

$("health-refresh").addEventListener("click", refreshHealth);

// ---------------------------------------------------------------- posts

const posts = { cursor: null, seq: 0 };

function postFilters() {
  const params = new URLSearchParams({ limit: "20" });
  const q = $("filter-q").value.trim();
  const state = $("filter-state").value;
  if (q) params.set("q", q);
  if (state) params.append("state", state);
  return params;
}

/** A one-line plain-text preview of Markdown: link text kept, markup characters dropped. */
const markdownPreview = (markdown) =>
  markdown
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/[#*_`>~|]+/g, "")
    .replace(/\s+/g, " ")
    .trim();

/** After a successful create: fold the form away and leave focus on its summary. */
function closeCreate(detailsId) {
  const details = $(detailsId);
  details.open = false;
  details.querySelector("summary").focus();
}

function postItem(post) {
  const preview = post.excerpt || markdownPreview(post.body);
  let canonical = null;
  if (post.canonical_url) {
    // Only http(s) becomes a link: an href is the one place text could turn into script.
    const safe = /^https?:\/\//i.test(post.canonical_url);
    canonical = safe
      ? h("a", { href: post.canonical_url, rel: "noopener noreferrer", target: "_blank" }, "canonical")
      : null;
  }
  const ui = uiFor(post);
  const item = h(
    "li",
    { class: "item post", "data-id": post.id },
    h(
      "div",
      { class: "item-main" },
      h("h3", { class: "item-title" }, post.title),
      preview ? h("p", { class: "item-preview" }, preview.slice(0, 180) + (preview.length > 180 ? "…" : "")) : null,
      h(
        "p",
        { class: "item-meta" },
        postStateBadge(post.state),
        h("time", { datetime: post.created_at }, formatDate(post.created_at)),
        post.tags.length ? h("span", { class: "tags" }, post.tags.map((tag) => h("span", { class: "tag" }, tag))) : null,
        canonical,
      ),
    ),
    h(
      "div",
      { class: "item-actions" },
      h(
        "button",
        {
          type: "button",
          class: "button small",
          "data-role": "publish-toggle",
          "data-focus-key": `post-publish-${post.id}`,
          "aria-label": `Publish ${post.title}`,
          "aria-expanded": String(ui.publishOpen),
          "aria-controls": `publish-${post.id}`,
          onclick: () => togglePublish(post.id),
        },
        "Publish",
      ),
      h(
        "button",
        {
          type: "button",
          class: "button small",
          "data-role": "deliveries-toggle",
          "data-focus-key": `post-deliveries-${post.id}`,
          "aria-label": `Deliveries of ${post.title}`,
          "aria-expanded": String(ui.deliveriesOpen),
          "aria-controls": `deliveries-${post.id}`,
          onclick: () => toggleDeliveries(post.id),
        },
        "Deliveries",
      ),
      deleteButton(`post “${post.title}”`, `post-delete-${post.id}`, async () => {
        await api(`/posts/${post.id}`, { method: "DELETE" });
        postUi.delete(post.id);
        $("posts-status").textContent = `Deleted “${post.title}”.`;
        await loadPosts();
      }),
    ),
    h("div", { class: "item-extra", "data-role": "publish-slot" }),
    h("div", { class: "item-extra", "data-role": "deliveries-slot" }),
  );
  renderPublish(post.id, item);
  renderDeliveries(post.id, item);
  return item;
}

const postStateBadge = (state) => {
  const el = badge(state);
  el.dataset.role = "post-state";
  el.dataset.state = state;
  return el;
};

async function loadPosts({ more = false } = {}) {
  const seq = ++posts.seq; // a newer request (another filter) wins over a slower older one
  const params = postFilters();
  if (more && posts.cursor) params.set("cursor", posts.cursor);
  const status = $("posts-status");
  const list = $("posts-list");
  list.setAttribute("aria-busy", "true");
  let page;
  try {
    page = await api(`/posts?${params}`);
  } catch (error) {
    if (seq === posts.seq && error.status !== 401) status.textContent = error.message;
    return;
  } finally {
    if (seq === posts.seq) list.removeAttribute("aria-busy");
  }
  if (seq !== posts.seq) return;
  const items = page.items.map(postItem);
  if (more) list.append(...items);
  else replaceKeepingFocus(list, items);
  posts.cursor = page.next_cursor ?? null;
  $("posts-more").hidden = !posts.cursor;
  for (const [sourceId, ui] of sourceUi) if (ui.itemsOpen && ui.items?.some((i) => i.drafts.length)) renderItems(sourceId);
  if (!list.children.length) {
    const filtered = params.has("q") || params.has("state");
    status.textContent = filtered ? "No posts match these filters." : "No posts yet. Create the first one above.";
  } else if (!more) {
    status.textContent = "";
  }
}

$("posts-more").addEventListener("click", () => loadPosts({ more: true }));

let searchTimer = null;
$("filter-q").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadPosts(), 300);
});
$("filter-state").addEventListener("change", () => loadPosts());
$("post-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(searchTimer);
  loadPosts();
});

onSubmit($("post-form"), async (data) => {
  const title = String(data.get("title")).trim();
  if (!title) throw new ApiError(422, "title: give the post a title.", [{ loc: ["body", "title"] }]);
  const canonical = String(data.get("canonical_url")).trim();
  const body = {
    title,
    body: String(data.get("body")),
    tags: String(data.get("tags"))
      .split(",")
      .map((tag) => tag.trim())
      .filter(Boolean),
  };
  if (canonical) body.canonical_url = canonical;
  const post = await api("/posts", { method: "POST", body });
  $("post-form").reset();
  closeCreate("post-create");
  $("posts-status").textContent = `Created “${post.title}”.`;
  await loadPosts();
});

// ---------------------------------------------------------------- channels

const platforms = new Map(); // platform key -> PlatformRead
const checks = new Map(); // channel id -> { tone, text, running } of its latest "Test"
let channels = [];

async function loadPlatforms() {
  const list = await api("/platforms", { auth: false });
  platforms.clear();
  for (const platform of list) platforms.set(platform.platform, platform);
  const select = $("channel-platform");
  select.replaceChildren(...list.map((p) => h("option", { value: p.platform }, p.display_name)));
  renderCredentialFields();
}

/** The non-null branch of `X | None` schemas. */
function plainSchema(schema) {
  const branches = schema.anyOf ?? schema.oneOf;
  if (!branches) return schema;
  return { ...schema, ...(branches.find((b) => b.type !== "null") ?? {}) };
}

function credentialField(name, rawSchema, required) {
  const schema = plainSchema(rawSchema);
  const id = `cred-${name}`;
  const hintId = `${id}-hint`;
  const label = h("label", { for: id }, schema.title ?? humanize(name), required ? null : h("span", { class: "hint-inline" }, "optional"));
  const common = {
    id,
    name: `cred:${name}`,
    required,
    "aria-describedby": schema.description ? hintId : null,
    "data-type": schema.type ?? "string",
  };
  let input;
  if (Array.isArray(schema.enum)) {
    input = h("select", common, schema.enum.map((value) => h("option", { value }, String(value))));
  } else if (schema.type === "boolean") {
    input = h("input", { ...common, type: "checkbox", checked: schema.default === true });
  } else {
    let type = "text";
    if (SECRET_NAME.test(name)) type = "password";
    else if (schema.type === "integer" || schema.type === "number") type = "number";
    else if (schema.format === "uri") type = "url";
    input = h("input", {
      ...common,
      type,
      // new-password: stop the browser from filling in the Herald sign-in password.
      autocomplete: type === "password" ? "new-password" : "off",
      spellcheck: "false",
      minlength: schema.minLength,
      maxlength: schema.maxLength,
      min: schema.minimum,
      max: schema.maximum,
      step: schema.type === "number" ? "any" : null,
    });
  }
  return h(
    "div",
    { class: schema.type === "boolean" ? "field checkbox" : "field" },
    label,
    input,
    schema.description ? h("p", { id: hintId, class: "hint" }, schema.description) : null,
  );
}

function renderCredentialFields() {
  const platform = platforms.get($("channel-platform").value);
  const schema = platform?.credentials_schema ?? {};
  const required = new Set(schema.required ?? []);
  $("channel-credentials").replaceChildren(
    ...Object.entries(schema.properties ?? {}).map(([name, prop]) => credentialField(name, prop, required.has(name))),
  );
}

$("channel-platform").addEventListener("change", renderCredentialFields);

function readCredentials(form) {
  const credentials = {};
  for (const el of form.querySelectorAll('[name^="cred:"]')) {
    const key = el.name.slice("cred:".length);
    if (el.type === "checkbox") credentials[key] = el.checked;
    else if (el.value === "" && !el.required) continue;
    else if (el.dataset.type === "integer" || el.dataset.type === "number") credentials[key] = Number(el.value);
    else credentials[key] = el.value;
  }
  return credentials;
}

onSubmit(
  $("channel-form"),
  async (data) => {
    const form = $("channel-form");
    const body = {
      platform: String(data.get("platform")),
      name: String(data.get("name")).trim(),
      credentials: readCredentials(form),
    };
    const channel = await api("/channels", { method: "POST", body });
    // Forget the credentials right away: nothing typed into the form stays in the page.
    const platform = body.platform;
    form.reset();
    $("channel-platform").value = platform;
    renderCredentialFields();
    closeCreate("channel-create");
    $("channels-status").textContent = `Added “${channel.name}”.`;
    await loadChannels();
  },
  (loc) => (loc[1] === "credentials" ? `cred:${loc[2]}` : loc[1]),
);

function checkStatus(channel) {
  const check = checks.get(channel.id);
  return h(
    "p",
    { class: `check ${check?.tone ?? ""}`, "data-check": channel.id, role: "status", "aria-live": "polite" },
    check?.text ?? "",
  );
}

function channelItem(channel) {
  const platform = platforms.get(channel.platform);
  const check = checks.get(channel.id);
  return h(
    "li",
    { class: "item", "data-id": channel.id },
    h(
      "div",
      { class: "item-main" },
      h("h3", { class: "item-title" }, channel.name),
      h(
        "p",
        { class: "item-meta" },
        badge(channel.state),
        h("span", {}, platform?.display_name ?? channel.platform),
      ),
      channel.state_reason ? h("p", { class: "item-preview" }, channel.state_reason) : null,
      checkStatus(channel),
    ),
    h(
      "div",
      { class: "item-actions" },
      h(
        "button",
        {
          type: "button",
          class: "button small",
          "data-focus-key": `channel-test-${channel.id}`,
          "aria-label": `Test ${channel.name}`,
          "aria-disabled": check?.running ? "true" : null,
          onclick: () => testChannel(channel),
        },
        check?.running ? "Testing…" : "Test",
      ),
      deleteButton(`channel “${channel.name}”`, `channel-delete-${channel.id}`, async () => {
        await api(`/channels/${channel.id}`, { method: "DELETE" });
        checks.delete(channel.id);
        $("channels-status").textContent = `Deleted “${channel.name}”.`;
        await loadChannels();
      }),
    ),
  );
}

function renderChannels() {
  const list = $("channels-list");
  replaceKeepingFocus(list, channels.map(channelItem));
  if (!channels.length) $("channels-status").textContent = "No channels yet. Add one to publish somewhere.";
  // Channel names and states also show in the posts' panels.
  for (const [postId, ui] of postUi) {
    if (ui.publishOpen) renderPublish(postId);
    if (ui.deliveriesOpen) renderDeliveries(postId);
  }
}

async function loadChannels() {
  try {
    channels = await api("/channels");
  } catch (error) {
    if (error.status !== 401) $("channels-status").textContent = error.message;
    return;
  }
  renderChannels();
}

/** Record a check's progress and update its line in place (no re-render, focus stays put). */
function setCheck(channelId, check) {
  checks.set(channelId, check);
  const line = document.querySelector(`[data-check="${CSS.escape(channelId)}"]`);
  if (line) {
    line.className = `check ${check.tone}`;
    line.textContent = check.text;
  }
}

async function testChannel(channel) {
  if (checks.get(channel.id)?.running) return;
  const owner = session;
  setCheck(channel.id, { tone: "pending", text: "Starting the check…", running: true });
  renderChannels();
  try {
    const started = await api(`/channels/${channel.id}/test`, { method: "POST" });
    const job = await pollJob(started.job_id, owner, (current, waited) => {
      const text =
        current.state === "PENDING"
          ? waited > 15000
            ? "Still queued: is a Herald worker running?"
            : "Queued…"
          : "Checking…";
      setCheck(channel.id, { tone: "pending", text, running: true });
    });
    if (!job || owner !== session) return;
    const ok = job.state === "SUCCESS";
    // The job's identity is not shown: for some platforms it is the credential itself.
    const text = ok ? "SUCCESS: the credentials work." : `${job.state}${job.error ? `: ${job.error}` : ""}`;
    setCheck(channel.id, { tone: ok ? "good" : "bad", text, running: false });
  } catch (error) {
    if (owner !== session) return;
    setCheck(channel.id, { tone: "bad", text: error.message, running: false });
  }
  await loadChannels(); // a failed check may have marked the channel needs_reconnect
}

async function pollJob(jobId, owner, onProgress) {
  const start = Date.now();
  while (owner === session) {
    const job = await api(`/jobs/${encodeURIComponent(jobId)}`);
    if (job.ready) return job;
    const waited = Date.now() - start;
    if (waited > POLL_GIVE_UP_MS) {
      throw new ApiError(0, `No result after ${POLL_GIVE_UP_MS / 60000} minutes; job ${jobId} is still ${job.state}.`);
    }
    onProgress(job, waited);
    await jobEventOr(jobId, POLL_INTERVAL_MS);
  }
  return null;
}

const jobWakers = new Map(); // job id -> cuts its poller's wait short (a job.state event came)

/** Wait `ms`, or less if a live event says the job changed. */
function jobEventOr(jobId, ms) {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      if (jobWakers.get(jobId) === wake) jobWakers.delete(jobId);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    jobWakers.set(jobId, wake);
  });
}

// ---------------------------------------------------------------- publishing and deliveries

// Each post's panels, kept apart from the list so a re-render (a new filter, a re-read
// after a reconnect) brings them back as they were.
const postUi = new Map(); // post id -> panel state, see uiFor()
const deliveryPost = new Map(); // publication id -> post id, to route live events
const refreshing = new Map(); // post id -> { again, done } while its re-read runs
const askedForChannels = new Set(); // channel ids looked up once because a delivery named them
let channelsTimer = null;

function uiFor(post) {
  let ui = postUi.get(post.id);
  if (!ui) {
    ui = {
      title: post.title,
      publishOpen: false,
      channelsLoading: false,
      selected: new Set(), // channel ids ticked in the publish panel
      publishError: "",
      sending: false,
      deliveriesOpen: false,
      publications: null, // null until read
      loadError: "",
      notes: new Map(), // publication id -> { tone, text }: the outcome of the last action
      busy: new Set(), // publication ids with a cancel or retry under way
    };
    postUi.set(post.id, ui);
  }
  ui.title = post.title;
  return ui;
}

const postRow = (postId) => $("posts-list").querySelector(`:scope > li[data-id="${CSS.escape(postId)}"]`);
const channelName = (channelId) => channels.find((c) => c.id === channelId)?.name ?? "Unknown channel";
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function deliveryBadge(state) {
  return h(
    "span",
    { class: `badge delivery-badge delivery-${state}`, "data-role": "delivery-state", "data-state": state },
    DELIVERY_LABELS[state] ?? humanize(state),
  );
}

/** Only an http(s) address becomes a link: an href is the one place text could turn into script. */
function externalAddress(url) {
  let safe = false;
  try {
    const parsed = new URL(url);
    safe = parsed.protocol === "http:" || parsed.protocol === "https:";
  } catch {
    safe = false;
  }
  return h(
    "p",
    { class: "delivery-url" },
    safe
      ? h("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, url)
      : h("span", { class: "url-text", title: "Not a web address, so not a link" }, url),
  );
}

function deliveryWhen(p) {
  let label = null;
  let iso = null;
  if (p.state === "published" && p.published_at) [label, iso] = ["Published", p.published_at];
  else if (p.state === "scheduled" && p.due_at) [label, iso] = ["Due", p.due_at];
  else if (p.state === "retry_wait" && p.error_kind === "auth") {
    return h("span", { class: "delivery-when" }, "Held: update the channel to send it");
  } else if (p.state === "retry_wait" && p.due_at) [label, iso] = ["Next try", p.due_at];
  if (!iso) return null;
  return h("span", { class: "delivery-when" }, `${label} `, h("time", { datetime: iso }, formatDate(iso)));
}

function deliveryItem(postId, ui, p) {
  const name = channelName(p.channel_id);
  const note = ui.notes.get(p.id);
  const busy = ui.busy.has(p.id) ? "true" : null;
  const error =
    p.state !== "published" && p.last_error && !(p.state === "cancelled" && p.last_error === "cancelled")
      ? p.last_error
      : null;
  const serious = ["failed", "unconfirmed", "retry_wait"].includes(p.state);
  return h(
    "li",
    { class: "delivery", "data-publication": p.id, "data-state": p.state },
    h(
      "div",
      { class: "delivery-main" },
      h(
        "p",
        { class: "delivery-head" },
        h("span", { class: "delivery-channel" }, name),
        deliveryBadge(p.state),
        h("span", { class: "delivery-attempt", title: "Attempts made, of those allowed" }, `Attempt ${p.attempt}/${p.max_attempts}`),
        deliveryWhen(p),
      ),
      p.external_url ? externalAddress(p.external_url) : null,
      error
        ? h("p", { class: `delivery-error${serious ? "" : " muted"}` }, serious ? "" : "Last error: ", error)
        : null,
      note ? h("p", { class: `check ${note.tone}`, role: "status" }, note.text) : null,
    ),
    h(
      "div",
      { class: "delivery-actions" },
      inGroup("active", p.state) ? deliveryButton("Cancel", p, name, busy, () => cancelDelivery(postId, p.id)) : null,
      inGroup("retryable", p.state) ? deliveryButton("Retry", p, name, busy, () => retryDelivery(postId, p.id)) : null,
    ),
  );
}

function renderDeliveries(postId, row = postRow(postId)) {
  const ui = postUi.get(postId);
  if (!row || !ui) return;
  row.querySelector('[data-role="deliveries-toggle"]').setAttribute("aria-expanded", String(ui.deliveriesOpen));
  const slot = row.querySelector('[data-role="deliveries-slot"]');
  if (!ui.deliveriesOpen) {
    slot.replaceChildren();
    return;
  }
  let body;
  if (ui.publications === null) body = ui.loadError ? null : h("p", { class: "status" }, "Loading deliveries…");
  else if (!ui.publications.length) body = h("p", { class: "status" }, "Not sent anywhere yet: use Publish.");
  else body = h("ul", { class: "deliveries" }, ui.publications.map((p) => deliveryItem(postId, ui, p)));
  replaceKeepingFocus(slot, [
    h(
      "section",
      { id: `deliveries-${postId}`, class: "subpanel", "aria-label": `Deliveries of “${ui.title}”` },
      h("h4", { class: "subpanel-title" }, "Deliveries"),
      ui.loadError ? h("p", { class: "form-error", role: "alert" }, ui.loadError) : null,
      body,
    ),
  ]);
}

function renderPublish(postId, row = postRow(postId)) {
  const ui = postUi.get(postId);
  if (!row || !ui) return;
  row.querySelector('[data-role="publish-toggle"]').setAttribute("aria-expanded", String(ui.publishOpen));
  const slot = row.querySelector('[data-role="publish-slot"]');
  if (!ui.publishOpen) {
    slot.replaceChildren();
    return;
  }
  let choices;
  if (ui.channelsLoading && !channels.length) choices = [h("p", { class: "hint" }, "Loading channels…")];
  else if (!channels.length) choices = [h("p", { class: "hint" }, "No channels yet. Add one under Channels first.")];
  else {
    choices = channels.map((channel) => {
      const usable = channel.state === "active";
      if (!usable) ui.selected.delete(channel.id);
      return h(
        "label",
        { class: `choice${usable ? "" : " disabled"}`, title: usable ? null : channel.state_reason },
        h("input", {
          type: "checkbox",
          name: "channel_ids",
          value: channel.id,
          "data-focus-key": `publish-${postId}-${channel.id}`,
          disabled: !usable,
          checked: ui.selected.has(channel.id),
          onchange: (event) => {
            if (event.target.checked) ui.selected.add(channel.id);
            else ui.selected.delete(channel.id);
          },
        }),
        h("span", { class: "choice-name" }, channel.name),
        h("span", { class: "hint-inline" }, platforms.get(channel.platform)?.display_name ?? channel.platform),
        usable ? null : badge(channel.state),
      );
    });
  }
  const anyUsable = channels.some((c) => c.state === "active");
  const form = h(
    "form",
    { id: `publish-${postId}`, class: "subpanel publish", "aria-label": `Publish “${ui.title}”`, novalidate: true },
    h("fieldset", { class: "choices" }, h("legend", {}, "Send now to"), choices),
    h("p", { class: "form-error", role: "alert", "data-role": "error" }, ui.publishError),
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          class: "button small quiet",
          "data-focus-key": `publish-close-${postId}`,
          onclick: () => togglePublish(postId),
        },
        "Close",
      ),
      h(
        "button",
        {
          type: "submit",
          class: "button small primary",
          "data-focus-key": `publish-send-${postId}`,
          "aria-disabled": ui.sending || !anyUsable ? "true" : null,
        },
        ui.sending ? "Sending…" : "Send",
      ),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendPublish(postId);
  });
  replaceKeepingFocus(slot, [form]);
}

async function togglePublish(postId) {
  const ui = postUi.get(postId);
  if (!ui) return;
  ui.publishOpen = !ui.publishOpen;
  ui.publishError = "";
  if (!ui.publishOpen) {
    renderPublish(postId);
    postRow(postId)?.querySelector('[data-role="publish-toggle"]')?.focus();
    return;
  }
  ui.channelsLoading = true;
  renderPublish(postId);
  await loadChannels(); // the states as they are now: one may need reconnecting since
  ui.channelsLoading = false;
  if (!ui.publishOpen) return;
  renderPublish(postId);
  postRow(postId)?.querySelector('input[name="channel_ids"]:not(:disabled)')?.focus();
}

function toggleDeliveries(postId) {
  const ui = postUi.get(postId);
  if (!ui) return;
  ui.deliveriesOpen = !ui.deliveriesOpen;
  renderDeliveries(postId);
  if (ui.deliveriesOpen) refreshPost(postId);
}

async function sendPublish(postId) {
  const ui = postUi.get(postId);
  if (!ui || ui.sending) return;
  const ids = channels.filter((c) => c.state === "active" && ui.selected.has(c.id)).map((c) => c.id);
  if (!ids.length) {
    ui.publishError = "Pick at least one channel.";
    renderPublish(postId);
    return;
  }
  const owner = session;
  ui.sending = true;
  ui.publishError = "";
  renderPublish(postId);
  try {
    const accepted = await api(`/posts/${postId}/publish`, { method: "POST", body: { channel_ids: ids } });
    if (owner !== session) return;
    ui.publishOpen = false;
    ui.selected.clear();
    ui.deliveriesOpen = true;
    mergePublications(postId, accepted.publications);
    const already = accepted.publications.filter((p) => p.state === "published").map((p) => channelName(p.channel_id));
    $("posts-status").textContent =
      `Sending “${ui.title}” to ${plural(ids.length, "channel")}.` +
      (already.length ? ` Already published on ${already.join(", ")}.` : "");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (owner !== session || error.status === 401) return;
    ui.publishError = error.message;
  } finally {
    ui.sending = false;
  }
  renderPublish(postId);
  renderDeliveries(postId);
  if (!ui.publishOpen) postRow(postId)?.querySelector('[data-role="publish-toggle"]')?.focus();
  await refreshPost(postId);
}

/** Add or replace deliveries (by id), oldest first, as the API lists them. */
function mergePublications(postId, list) {
  const ui = postUi.get(postId);
  if (!ui) return;
  const byId = new Map((ui.publications ?? []).map((p) => [p.id, p]));
  for (const p of list) {
    byId.set(p.id, p);
    deliveryPost.set(p.id, postId);
  }
  ui.publications = [...byId.values()].sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
  const unknown = list.filter((p) => !channels.some((c) => c.id === p.channel_id) && !askedForChannels.has(p.channel_id));
  if (unknown.length) {
    for (const p of unknown) askedForChannels.add(p.channel_id);
    loadChannelsSoon(); // a channel added in another tab: fetch its name
  }
}

function setPublications(postId, list) {
  const ui = postUi.get(postId);
  if (!ui) return;
  ui.publications = [];
  mergePublications(postId, list);
}

async function deliveryAction(postId, publicationId, run) {
  const ui = postUi.get(postId);
  const publication = ui?.publications?.find((p) => p.id === publicationId);
  if (!publication || ui.busy.has(publicationId)) return;
  const owner = session;
  ui.notes.delete(publicationId);
  ui.busy.add(publicationId);
  renderDeliveries(postId);
  let note = null;
  try {
    note = await run(publication);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (owner !== session || error.status === 401) return;
    note = { tone: "bad", text: error.message };
  } finally {
    ui.busy.delete(publicationId);
  }
  if (owner !== session) return;
  if (note) ui.notes.set(publicationId, note);
  renderDeliveries(postId);
  await refreshPost(postId);
}

/** A delivery's Cancel or Retry button; its focus key survives the row's re-render. */
function deliveryButton(label, p, channelName, busy, onclick) {
  return h(
    "button",
    {
      type: "button",
      class: "button small",
      "data-focus-key": `delivery-${label.toLowerCase()}-${p.id}`,
      "aria-label": `${label} delivery to ${channelName}`,
      "aria-disabled": busy,
      onclick,
    },
    label,
  );
}

function cancelDelivery(postId, publicationId) {
  return deliveryAction(postId, publicationId, async (p) => {
    const result = await api(`/tasks/cancel/${encodeURIComponent(p.task_id)}`, { method: "DELETE" });
    if (result.outcome === "cancelled") return null;
    if (result.outcome === "cancel_requested") {
      return { tone: "pending", text: "Cancel requested: it stops unless it has already gone out." };
    }
    const label = DELIVERY_LABELS[result.outcome] ?? humanize(result.outcome);
    return { tone: "bad", text: `Not cancelled: it is already ${label.toLowerCase()}.` };
  });
}

function retryDelivery(postId, publicationId) {
  return deliveryAction(postId, publicationId, async (p) => {
    const updated = await api(`/publications/${encodeURIComponent(p.id)}/retry`, { method: "POST" });
    mergePublications(postId, [updated]);
    return null;
  });
}

function patchPostState(post) {
  const current = postRow(post.id)?.querySelector('[data-role="post-state"]');
  if (current && current.dataset.state !== post.state) current.replaceWith(postStateBadge(post.state));
}

/**
 * Re-read one post's state (and its deliveries while they are shown). Calls that come
 * while one runs fold into a single re-read after it.
 */
function refreshPost(postId) {
  const running = refreshing.get(postId);
  if (running) {
    running.again = true;
    return running.done;
  }
  const owner = session;
  const entry = { again: false, done: null };
  refreshing.set(postId, entry);
  entry.done = (async () => {
    try {
      do {
        entry.again = false;
        const ui = postUi.get(postId);
        const [post, publications] = await Promise.all([
          api(`/posts/${postId}`),
          ui?.deliveriesOpen ? api(`/posts/${postId}/publications`) : null,
        ]);
        if (owner !== session) return;
        patchPostState(post);
        if (publications && ui) {
          ui.loadError = "";
          setPublications(postId, publications);
          renderDeliveries(postId);
        }
      } while (entry.again && owner === session);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (owner !== session || error.status === 401) return;
      const ui = postUi.get(postId);
      if (ui?.deliveriesOpen) {
        ui.loadError = error.status === 404 ? "This post was deleted." : error.message;
        renderDeliveries(postId);
      }
    } finally {
      if (refreshing.get(postId) === entry) refreshing.delete(postId);
    }
  })();
  return entry.done;
}

function loadChannelsSoon() {
  if (channelsTimer) return;
  channelsTimer = setTimeout(() => {
    channelsTimer = null;
    if (session) loadChannels();
  }, 500);
}

// ---------------------------------------------------------------- sources

const SOURCE_KINDS = {
  feed: {
    label: "Feed",
    hint: "An RSS, Atom or JSON Feed; a web page that advertises one works too.",
    url: { label: "Feed or page URL", hint: "The feed itself, or a page with a <link rel=\"alternate\"> to it." },
  },
  reddit: {
    label: "Reddit",
    hint: "A subreddit's new posts, or a Reddit search.",
    query: { label: "Subreddit or search", hint: "r/python for a subreddit's new posts, or words to search for." },
  },
  hackernews: {
    label: "Hacker News",
    hint: "Hacker News stories matching a search, newest first.",
    query: { label: "Search", hint: "Words to search for." },
  },
  discourse: {
    label: "Discourse",
    hint: "A Discourse forum's latest topics, or its search results.",
    url: {
      label: "Forum URL",
      hint: "The forum's address, or one category's (…/c/dev/7) to watch only that category.",
    },
    query: { label: "Search", hint: "Optional: words to search for; empty watches the latest topics." },
  },
};
// The connection test's answer, in the order it is shown (absent or null fields are left out).
const TEST_FIELDS = [
  ["reachable", "Reachable"],
  ["status", "HTTP status"],
  ["content_type", "Content type"],
  ["format", "Format"],
  ["title", "Title"],
  ["item_count", "Items"],
  ["newest_item_at", "Newest item"],
  ["conditional_get", "Conditional GET"],
  ["elapsed_seconds", "Time taken"],
  ["feed_url", "Feed found"],
];
const ITEMS_PAGE = 20;

let sourceList = []; // SourceRead, as the API lists them (by name)
let sourcesSeq = 0;
// Each source's panels and notes, kept apart from the list so a re-render keeps them.
const sourceUi = new Map(); // source id -> see sourceUiFor()
const sourceJobs = new Map(); // job id -> source id, for the checks and tests this page started

function sourceUiFor(sourceId) {
  let ui = sourceUi.get(sourceId);
  if (!ui) {
    ui = {
      note: null, // { tone, text }: the last check's or test's progress or outcome
      running: null, // "check" | "test" while one runs
      test: null, // the last connection test's result
      itemsOpen: false,
      items: null, // ItemRead[] once read
      cursor: null,
      itemsError: "",
      itemsLoading: false,
      itemsSeq: 0,
    };
    sourceUi.set(sourceId, ui);
  }
  return ui;
}

function clearSources() {
  sourceList = [];
  sourceUi.clear();
  sourceJobs.clear();
  sourcesSeq += 1;
  showSourceFields();
}

const sourceRow = (sourceId) => $("sources-list").querySelector(`:scope > li[data-id="${CSS.escape(sourceId)}"]`);

/** Only an http(s) address becomes a link: an href is the one place text could turn into script. */
function isHttpUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:";
  } catch {
    return false;
  }
}

const externalLink = (url, text, props = {}) =>
  isHttpUrl(url) ? h("a", { href: url, rel: "noopener noreferrer", target: "_blank", ...props }, text) : h("span", {}, text);

const FORMAT_NAMES = { rss: "RSS", atom: "Atom", json: "JSON Feed" };

/** feedparser's version names ("rss20", "atom10", "json11") as people write them. */
function formatVersion(version) {
  const match = /^(rss|atom|json)(\d)(\d*)[a-z]?$/.exec(version ?? "");
  if (!match) return version === "unknown" ? null : version;
  return `${FORMAT_NAMES[match[1]]} ${match[2]}.${match[3] || "0"}`;
}

function formatMinutes(minutes) {
  if (minutes % 1440 === 0) return plural(minutes / 1440, "day");
  if (minutes % 60 === 0) return plural(minutes / 60, "hour");
  return `${minutes} min`;
}

function sourceState(source) {
  if (!source.enabled) {
    const byPerson = !source.disabled_reason || source.disabled_reason === "disabled by a person";
    return byPerson
      ? { label: "Paused", tone: "neutral", why: null }
      : { label: "Disabled", tone: "warn", why: source.disabled_reason };
  }
  if (source.checking) return { label: "Checking", tone: "info", why: null };
  if (source.last_error) {
    const times = source.failures > 1 ? ` (${source.failures} failed checks in a row)` : "";
    return { label: "Failing", tone: "bad", why: `${source.last_error}${times}` };
  }
  if (!source.last_checked_at) return { label: "Not checked yet", tone: "neutral", why: null };
  return { label: "OK", tone: "good", why: null };
}

const when = (label, iso) => h("span", {}, `${label} `, h("time", { datetime: iso }, formatDate(iso)));

function sourceButton(source, role, label, text, onclick, extra = {}) {
  return h(
    "button",
    {
      type: "button",
      class: "button small",
      "data-role": role,
      "data-focus-key": `source-${role}-${source.id}`,
      "aria-label": `${label} ${source.name}`,
      onclick,
      ...extra,
    },
    text,
  );
}

function sourceItem(source) {
  const ui = sourceUiFor(source.id);
  const state = sourceState(source);
  const kind = SOURCE_KINDS[source.kind]?.label ?? humanize(source.kind);
  const watched = [];
  if (source.url) watched.push(h("span", { class: "source-url" }, externalLink(source.url, source.url)));
  if (source.page_url && source.page_url !== source.url) {
    watched.push(h("span", { class: "hint-inline" }, "found through ", externalLink(source.page_url, source.page_url)));
  }
  if (source.query) watched.push(h("span", { class: "source-query" }, `“${source.query}”`));
  const hinted = source.hinted_interval_seconds;
  const interval = `Every ${formatMinutes(source.interval_minutes)}`;
  const asked =
    hinted && hinted > source.interval_minutes * 60 ? ` (the source asks for ${formatMinutes(Math.ceil(hinted / 60))})` : "";
  const busy = ui.running ? "true" : null;
  return h(
    "li",
    { class: "item source", "data-id": source.id },
    h(
      "div",
      { class: "item-main" },
      h("h3", { class: "item-title" }, source.name, source.title && source.title !== source.name ? h("span", { class: "hint-inline" }, source.title) : null),
      h(
        "p",
        { class: "item-meta" },
        h("span", { class: `badge ${state.tone}`, "data-role": "source-state" }, state.label),
        h("span", { "data-role": "source-kind" }, kind),
        h("span", {}, interval + asked),
        source.format ? h("span", { "data-role": "source-format" }, formatVersion(source.format)) : null,
      ),
      watched.length ? h("p", { class: "item-preview source-watch" }, watched) : null,
      state.why ? h("p", { class: `source-why ${state.tone}` }, state.why) : null,
      h(
        "p",
        { class: "item-meta" },
        source.last_checked_at ? when("Last check", source.last_checked_at) : h("span", {}, "Never checked"),
        source.enabled ? when("Next check", source.next_check_at) : null,
        source.checks ? h("span", {}, `${plural(source.checks, "check")}, ${source.not_modified} not modified`) : null,
      ),
      h(
        "p",
        { class: `check ${ui.note?.tone ?? ""}`, "data-role": "source-note", role: "status", "aria-live": "polite" },
        ui.note?.text ?? "",
      ),
    ),
    h(
      "div",
      { class: "item-actions" },
      sourceButton(source, "check", "Check now", ui.running === "check" ? "Checking…" : "Check now", () => checkSource(source.id), {
        "aria-disabled": busy,
      }),
      sourceButton(source, "test", "Test", ui.running === "test" ? "Testing…" : "Test", () => testSource(source.id), {
        "aria-disabled": busy,
      }),
      sourceButton(source, "items", "Items of", "Items", () => toggleItems(source.id), {
        "aria-expanded": String(ui.itemsOpen),
        "aria-controls": `source-items-${source.id}`,
      }),
      sourceButton(source, "enable", source.enabled ? "Pause" : "Resume", source.enabled ? "Pause" : "Resume", () =>
        setSourceEnabled(source.id, !source.enabled),
      ),
      deleteButton(`source “${source.name}”`, `source-delete-${source.id}`, async () => {
        await api(`/sources/${source.id}`, { method: "DELETE" });
        sourceUi.delete(source.id);
        $("sources-status").textContent = `Deleted “${source.name}”.`;
        await loadSources();
      }),
    ),
    h("div", { class: "item-extra", "data-role": "test-slot" }, testResult(source, ui)),
    h("div", { class: "item-extra", "data-role": "items-slot" }, itemsPanel(source, ui)),
  );
}

function renderSources() {
  const list = $("sources-list");
  replaceKeepingFocus(list, sourceList.map(sourceItem));
  const status = $("sources-status");
  if (!sourceList.length && !status.textContent) status.textContent = "No sources yet. Add a feed or a site to watch.";
}

/** Re-draw one source's row in place, keeping focus on the same control. */
function renderSource(sourceId) {
  const source = sourceList.find((s) => s.id === sourceId);
  const row = sourceRow(sourceId);
  if (!source || !row) return;
  const key = row.contains(document.activeElement) ? document.activeElement.dataset?.focusKey : null;
  const fresh = sourceItem(source);
  row.replaceWith(fresh);
  if (key) fresh.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}

async function loadSources() {
  const seq = ++sourcesSeq;
  let list;
  try {
    list = await api("/sources");
  } catch (error) {
    if (seq === sourcesSeq && error.status !== 401) $("sources-status").textContent = error.message;
    return;
  }
  if (seq !== sourcesSeq) return;
  sourceList = list;
  for (const id of sourceUi.keys()) if (!list.some((s) => s.id === id)) sourceUi.delete(id);
  if (list.length && $("sources-status").textContent.startsWith("No sources yet")) $("sources-status").textContent = "";
  renderSources();
}

/** Re-read one source (and its open item list) after a live event or an action. */
async function refreshSource(sourceId, { items = true } = {}) {
  const owner = session;
  let source;
  try {
    source = await api(`/sources/${sourceId}`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (owner === session && error.status === 404) await loadSources(); // deleted elsewhere
    return;
  }
  if (owner !== session) return;
  const index = sourceList.findIndex((s) => s.id === sourceId);
  if (index < 0) {
    await loadSources(); // added in another tab
    return;
  }
  sourceList[index] = source;
  renderSource(sourceId);
  if (items && sourceUi.get(sourceId)?.itemsOpen) await loadItems(sourceId);
}

function setSourceNote(sourceId, note) {
  const ui = sourceUiFor(sourceId);
  ui.note = note;
  const line = sourceRow(sourceId)?.querySelector('[data-role="source-note"]');
  if (line) {
    line.className = `check ${note?.tone ?? ""}`;
    line.textContent = note?.text ?? "";
  }
}

function jobProgressText(job, waited, doing) {
  if (job.state === "PENDING" || job.state === "RETRY") {
    return waited > 15000 ? "Still queued: is a Herald worker running?" : "Queued…";
  }
  if (job.progress_total) return `${doing} ${job.progress_done}/${job.progress_total}`;
  return job.message ? `${doing} ${job.message}` : doing;
}

function checkOutcome(result, wasFirst) {
  if (result?.not_modified) return "Not modified since the last check (HTTP 304): nothing new.";
  const fresh = result?.new?.length ?? 0;
  const updated = result?.updated?.length ?? 0;
  const drafts = result?.drafts?.length ?? 0;
  const text = `${fresh} new, ${updated} updated, ${plural(drafts, "draft")}.`;
  return wasFirst && !fresh ? `${text} First check: what it found is the baseline, so none of it counts as new.` : text;
}

/** Start a job for the source (check or test) and follow it to its end. */
async function runSourceJob(sourceId, kind, path, doing, finish) {
  const ui = sourceUiFor(sourceId);
  if (ui.running) return;
  const owner = session;
  ui.running = kind;
  ui.note = { tone: "pending", text: "Starting…" };
  renderSource(sourceId);
  let jobId = null;
  try {
    const started = await api(`/sources/${sourceId}/${path}`, { method: "POST" });
    jobId = started.task_id;
    sourceJobs.set(jobId, { sourceId, doing });
    const job = await pollJob(jobId, owner, (current, waited) =>
      setSourceNote(sourceId, { tone: "pending", text: jobProgressText(current, waited, doing) }),
    );
    if (!job || owner !== session) return;
    ui.note =
      job.state === "SUCCESS"
        ? finish(job.result)
        : { tone: "bad", text: job.error ? `Failed: ${job.error}` : humanize(job.state.toLowerCase()) };
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (owner !== session || error.status === 401) return;
    ui.note = { tone: "bad", text: error.message };
  } finally {
    if (jobId) sourceJobs.delete(jobId);
    ui.running = null;
  }
  renderSource(sourceId);
}

async function checkSource(sourceId) {
  const before = sourceList.find((s) => s.id === sourceId);
  const wasFirst = !before?.subscribed_at;
  let drafts = 0;
  await runSourceJob(sourceId, "check", "check", "Checking…", (result) => {
    drafts = result?.drafts?.length ?? 0;
    return { tone: "good", text: checkOutcome(result, wasFirst) };
  });
  if (!session) return;
  if (drafts) await loadPosts(); // the drafts it made, first: the items link to them
  await refreshSource(sourceId); // last and next check, state; its items if shown
}

async function testSource(sourceId) {
  const ui = sourceUiFor(sourceId);
  await runSourceJob(sourceId, "test", "test", "Testing…", (result) => {
    ui.test = result ?? {};
    if (result?.error) return { tone: "bad", text: `Test: ${result.error}` };
    return result?.reachable ? { tone: "good", text: "Test: the source answered." } : { tone: "bad", text: "Test: not reachable." };
  });
  renderSource(sourceId);
}

function testValue(key, value) {
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (key === "conditional_get") return value ? "yes" : "no";
  if (key === "newest_item_at") return h("time", { datetime: value }, formatDate(value));
  if (key === "elapsed_seconds") return `${Number(value).toFixed(2)} s`;
  if (key === "feed_url") return externalLink(value, value);
  return String(value);
}

function testResult(source, ui) {
  const result = ui.test;
  if (!result) return null;
  const rows = [];
  for (const [key, label] of TEST_FIELDS) {
    let value = result[key];
    if (key === "format") value = formatVersion(result.version) ?? value;
    if (key === "feed_url" && value === source.url) continue;
    if (key === "conditional_get" && value === null) value = "not tried";
    if (value === null || value === undefined || value === "") continue;
    rows.push(h("dt", {}, label), h("dd", { "data-field": key }, value === "not tried" ? value : testValue(key, value)));
  }
  return h(
    "section",
    { class: "subpanel", "aria-label": `Connection test of “${source.name}”`, "data-role": "test-result" },
    h("h4", { class: "subpanel-title" }, "Connection test"),
    result.error ? h("p", { class: "delivery-error" }, result.error) : null,
    result.problem ? h("p", { class: "hint" }, `Note: ${result.problem}`) : null,
    h("dl", { class: "facts" }, rows),
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          class: "button small quiet",
          "data-focus-key": `source-test-close-${source.id}`,
          onclick: () => {
            ui.test = null;
            renderSource(source.id);
            sourceRow(source.id)?.querySelector('[data-role="test"]')?.focus();
          },
        },
        "Hide test",
      ),
    ),
  );
}

async function setSourceEnabled(sourceId, enabled) {
  const owner = session;
  try {
    const source = await api(`/sources/${sourceId}`, { method: "PATCH", body: { enabled } });
    if (owner !== session) return;
    const index = sourceList.findIndex((s) => s.id === sourceId);
    if (index >= 0) sourceList[index] = source;
    setSourceNote(sourceId, null);
    renderSource(sourceId);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (owner !== session || error.status === 401) return;
    setSourceNote(sourceId, { tone: "bad", text: error.message });
  }
}

// -- a source's items

function toggleItems(sourceId) {
  const ui = sourceUiFor(sourceId);
  ui.itemsOpen = !ui.itemsOpen;
  renderSource(sourceId);
  if (ui.itemsOpen) loadItems(sourceId);
}

/**
 * Read the source's items, newest first. `more` appends the next page; otherwise the list
 * is read again from the top, as many as were shown.
 */
async function loadItems(sourceId, { more = false } = {}) {
  const ui = sourceUiFor(sourceId);
  const seq = ++ui.itemsSeq;
  const owner = session;
  const shown = ui.items?.length ?? 0;
  const params = new URLSearchParams({ limit: String(more ? ITEMS_PAGE : Math.min(200, Math.max(ITEMS_PAGE, shown))) });
  if (more && ui.cursor) params.set("cursor", ui.cursor);
  ui.itemsLoading = true;
  renderItems(sourceId);
  let page;
  try {
    page = await api(`/sources/${sourceId}/items?${params}`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (owner !== session || seq !== ui.itemsSeq || error.status === 401) return;
    ui.itemsLoading = false;
    ui.itemsError = error.status === 404 ? "This source was deleted." : error.message;
    renderItems(sourceId);
    return;
  }
  if (owner !== session || seq !== ui.itemsSeq) return;
  ui.itemsLoading = false;
  ui.itemsError = "";
  const firstNew = more ? page.items[0]?.id : null;
  ui.items = more ? [...(ui.items ?? []), ...page.items] : page.items;
  ui.cursor = page.next_cursor ?? null;
  renderItems(sourceId);
  if (firstNew) {
    // Keyboard users continue where the new page starts.
    sourceRow(sourceId)?.querySelector(`[data-item="${CSS.escape(firstNew)}"] [data-role="item-title"]`)?.focus();
  }
}

function reloadOpenItems() {
  return Promise.allSettled([...sourceUi].filter(([, ui]) => ui.itemsOpen).map(([id]) => loadItems(id)));
}

function renderItems(sourceId) {
  const source = sourceList.find((s) => s.id === sourceId);
  const slot = sourceRow(sourceId)?.querySelector('[data-role="items-slot"]');
  if (!source || !slot) return;
  const panel = itemsPanel(source, sourceUiFor(sourceId));
  replaceKeepingFocus(slot, panel ? [panel] : []);
}

function draftLinks(item) {
  if (!item.drafts.length) return null;
  return h(
    "p",
    { class: "item-meta" },
    h("span", {}, item.drafts.length === 1 ? "Draft:" : "Drafts:"),
    item.drafts.map((postId) => {
      const title = postRow(postId)?.querySelector(".item-title")?.textContent;
      if (!title) return h("code", { class: "post-id", title: "A post not shown in the Posts list" }, postId);
      return h(
        "button",
        {
          type: "button",
          class: "link-button",
          "data-focus-key": `item-draft-${item.id}-${postId}`,
          onclick: () => showPost(postId),
        },
        title,
      );
    }),
  );
}

/** Bring a post of the Posts panel into view and put focus on it. */
function showPost(postId) {
  const row = postRow(postId);
  if (!row) {
    $("posts-status").textContent = `Post ${postId} is not in the list shown (check the filters).`;
    return;
  }
  row.scrollIntoView({ block: "center" });
  row.querySelector('[data-role="publish-toggle"]')?.focus();
}

function feedItem(item) {
  const title = isHttpUrl(item.link)
    ? h(
        "a",
        {
          href: item.link,
          rel: "noopener noreferrer",
          target: "_blank",
          "data-role": "item-title",
          "data-focus-key": `item-${item.id}`,
        },
        item.title,
      )
    : h("span", { "data-role": "item-title", tabindex: "-1" }, item.title);
  const summary = item.summary_text?.trim() ?? "";
  return h(
    "li",
    { class: "feed-item", "data-item": item.id },
    h(
      "p",
      { class: "feed-item-title" },
      title,
      item.seen_at_subscribe
        ? h(
            "span",
            { class: "badge neutral", "data-role": "baseline", title: "Found by the first check: taken as already seen" },
            "Baseline",
          )
        : null,
    ),
    h(
      "p",
      { class: "item-meta" },
      item.published_at
        ? h("time", { datetime: item.published_at, "data-role": "published" }, formatDate(item.published_at))
        : h("span", { "data-role": "published", title: `First seen ${formatDate(item.first_seen_at)}` }, "undated"),
      item.author ? h("span", {}, `by ${item.author}`) : null,
      item.score !== null && item.score !== undefined ? h("span", {}, plural(item.score, "point")) : null,
      item.comments !== null && item.comments !== undefined
        ? item.comments_url
          ? externalLink(item.comments_url, plural(item.comments, "comment"))
          : h("span", {}, plural(item.comments, "comment"))
        : null,
      item.revision > 1 && item.changed_at ? h("span", {}, "edited ", h("time", { datetime: item.changed_at }, formatDate(item.changed_at))) : null,
    ),
    // The plain-text summary only: no markup from a feed reaches the page.
    summary ? h("p", { class: "item-preview" }, summary.length > 240 ? `${summary.slice(0, 240)}…` : summary) : null,
    draftLinks(item),
  );
}

function itemsPanel(source, ui) {
  if (!ui.itemsOpen) return null;
  let body;
  if (ui.items === null) body = ui.itemsError ? null : h("p", { class: "status" }, "Loading items…");
  else if (!ui.items.length) {
    body = h("p", { class: "status" }, source.last_checked_at ? "No items yet." : "No items yet: the source has not been checked.");
  } else body = h("ul", { class: "feed-items", "aria-label": `Items of “${source.name}”, newest first` }, ui.items.map(feedItem));
  return h(
    "section",
    {
      id: `source-items-${source.id}`,
      class: "subpanel",
      "aria-label": `Items of “${source.name}”`,
      "aria-busy": ui.itemsLoading ? "true" : null,
    },
    h("h4", { class: "subpanel-title" }, "Items", ui.items?.length ? h("span", { class: "hint-inline" }, `${ui.items.length}${ui.cursor ? "+" : ""} shown`) : null),
    ui.itemsError ? h("p", { class: "form-error", role: "alert" }, ui.itemsError) : null,
    body,
    ui.cursor
      ? h(
          "div",
          { class: "load-more" },
          h(
            "button",
            {
              type: "button",
              class: "button small",
              "data-focus-key": `source-items-more-${source.id}`,
              "aria-label": `Load more items of ${source.name}`,
              "aria-disabled": ui.itemsLoading ? "true" : null,
              onclick: () => !ui.itemsLoading && loadItems(source.id, { more: true }),
            },
            "Load more",
          ),
        )
      : null,
  );
}

// -- live

function onJobEvent(data) {
  if (typeof data.id !== "string") return;
  const started = sourceJobs.get(data.id);
  if (started && data.state && !["SUCCESS", "FAILURE", "REVOKED"].includes(data.state)) {
    setSourceNote(started.sourceId, { tone: "pending", text: jobProgressText(data, 0, started.doing) });
  }
  jobWakers.get(data.id)?.(); // its poller reads the outcome now instead of in a second
}

async function onSourceItemsEvent(data) {
  if (typeof data.source_id !== "string") return;
  if (Array.isArray(data.drafts) && data.drafts.length) await loadPosts(); // first: the items link to them
  if (!sourceList.some((s) => s.id === data.source_id)) await loadSources(); // one this page has not listed
  else await refreshSource(data.source_id);
}

// -- the "Add source" form

function showSourceFields() {
  const form = $("source-form");
  const kind = form.elements.namedItem("kind").value;
  const spec = SOURCE_KINDS[kind] ?? SOURCE_KINDS.feed;
  form.querySelector('[data-role="kind-hint"]').textContent = spec.hint;
  for (const field of form.querySelectorAll("[data-kinds]")) {
    const shown = field.dataset.kinds.split(" ").includes(kind);
    field.hidden = !shown;
    for (const input of field.querySelectorAll("input")) input.disabled = !shown;
  }
  for (const name of ["url", "query"]) {
    if (!spec[name]) continue;
    form.querySelector(`[data-role="${name}-label"]`).textContent = spec[name].label;
    form.querySelector(`[data-role="${name}-hint"]`).textContent = spec[name].hint;
  }
}

$("source-kind").addEventListener("change", () => {
  clearFormError($("source-form"));
  showSourceFields();
});

/** A whole number typed into a number field, or a 422 on that field. */
function wholeNumber(data, name, label) {
  const raw = String(data.get(name) ?? "").trim();
  const value = Number(raw);
  if (!raw || !Number.isInteger(value)) {
    throw new ApiError(422, `${label}: give a whole number.`, [{ loc: ["body", name], msg: `${label}: give a whole number.` }]);
  }
  return value;
}

onSubmit($("source-form"), async (data) => {
  const form = $("source-form");
  const kind = String(data.get("kind"));
  const name = String(data.get("name") ?? "").trim();
  if (!name) throw new ApiError(422, "Give the source a label.", [{ loc: ["body", "name"], msg: "Give the source a label." }]);
  const body = {
    kind,
    name,
    interval_minutes: wholeNumber(data, "interval_minutes", "Interval"),
    backfill: wholeNumber(data, "backfill", "Backfill"),
    auto_generate: data.get("auto_generate") === "on",
  };
  for (const field of ["url", "query"]) {
    const value = String(data.get(field) ?? "").trim(); // a hidden field is disabled: not in data
    if (value) body[field] = value;
  }
  let source;
  try {
    source = await api("/sources", { method: "POST", body });
  } catch (error) {
    // The one conflict is the label: another source of the workspace has it.
    if (error instanceof ApiError && error.status === 409) {
      throw new ApiError(409, error.message, [{ loc: ["body", "name"], msg: error.message }]);
    }
    throw error;
  }
  form.reset();
  $("source-kind").value = kind;
  showSourceFields();
  closeCreate("source-create");
  $("sources-status").textContent = `Added “${source.name}”. Its first check takes what it finds as the baseline.`;
  await loadSources();
});

$("sources-refresh").addEventListener("click", () => loadSources());
showSourceFields();

// ---------------------------------------------------------------- agents

// The panel a reviewer opens: drafts waiting for review first, then the agents that write
// them, what they cost this month, and the providers they call. Reviewers decide on
// drafts but manage nothing, so they get no add, remove, run or test controls.
const REVIEW_MODES = { required: "Review required", auto_publish: "Auto-publish" };
const RUN_TONES = { pending: "neutral", running: "info", succeeded: "good", failed: "bad", refused: "warn" };
const SEO_FACTS = [
  ["word_count", "Words"],
  ["reading_time_minutes", "Reading time (min)"],
  ["flesch_reading_ease", "Flesch reading ease"],
  ["flesch_kincaid_grade", "Grade"],
  ["title_length", "Title length"],
  ["meta_description_length", "Description length"],
];

let role = null; // the signed-in user's role, from /auth/me
const isReviewer = () => role === "reviewer";
let agentList = [];
let providerList = [];
let reviewList = [];
let agentsSeq = 0;
const agentUi = new Map(); // agent id -> { note, running, runsOpen, runs, runsError, draft }
const reviewUi = new Map(); // post id -> { open, decision: { mode, at, note, channels } }
const agentJobs = new Map(); // job id -> agent id, for the runs this page started
const providerNotes = new Map(); // provider id -> { tone, text, running }
let reviewItems = null; // ItemRead[] of the workspace's newest items: what drafts drew on
let agentsTimer = null;

/** A time as the clock reads in the agent's zone, with its weekday: its cron is read there. */
function zonedDate(iso, zone) {
  try {
    const format = new Intl.DateTimeFormat(undefined, {
      weekday: "short",
      year: "numeric",
      month: "short",
      day: "numeric",
      hour: "numeric",
      minute: "2-digit",
      timeZone: zone,
    });
    return format.format(new Date(iso));
  } catch {
    return formatDate(iso); // a zone this browser does not know
  }
}
const agentName = (agentId) => agentList.find((a) => a.id === agentId)?.name ?? "An agent";
const agentRow = (agentId) => $("agents-list").querySelector(`:scope > li[data-id="${CSS.escape(agentId)}"]`);
const reviewRow = (postId) => $("review-list").querySelector(`:scope > li[data-id="${CSS.escape(postId)}"]`);
const money = (value, currency = "USD") =>
  new Intl.NumberFormat(undefined, { style: "currency", currency, maximumFractionDigits: 4 }).format(value ?? 0);
const count = (value) => new Intl.NumberFormat().format(value ?? 0);
const ms = (value) => (value === null || value === undefined ? "–" : `${count(value)} ms`);

function clearAgents() {
  agentList = [];
  providerList = [];
  reviewList = [];
  reviewItems = null;
  agentUi.clear();
  reviewUi.clear();
  agentJobs.clear();
  providerNotes.clear();
  agentsSeq += 1;
  role = null;
  for (const id of ["review-list", "agents-list", "providers-list", "usage-table"]) $(id).replaceChildren();
  for (const id of ["review-status", "agents-status", "providers-status", "usage-totals"]) $(id).textContent = "";
}

function applyRole(value) {
  role = value;
  $("agent-create").hidden = isReviewer();
  $("provider-create").hidden = isReviewer();
  $("webhooks-panel").hidden = isReviewer();
}

async function loadAgentsPanel() {
  await Promise.allSettled([loadProviders(), loadAgents()]);
  await Promise.allSettled([loadReview(), loadUsage()]);
}

/** Re-read the agents' panel once, shortly: a run ended, a draft was decided elsewhere. */
function loadAgentsSoon() {
  if (agentsTimer) return;
  agentsTimer = setTimeout(async () => {
    agentsTimer = null;
    if (session) await loadAgentsPanel();
  }, SYNC_DELAY_MS);
}

// -- the review queue

async function loadReview() {
  const seq = agentsSeq;
  let page;
  try {
    page = await api("/posts?state=in_review&limit=50");
  } catch (error) {
    if (seq === agentsSeq && error.status !== 401) $("review-status").textContent = error.message;
    return;
  }
  if (seq !== agentsSeq) return;
  reviewList = page.items;
  for (const id of reviewUi.keys()) if (!reviewList.some((p) => p.id === id)) reviewUi.delete(id);
  renderReview();
}

function renderReview() {
  const list = $("review-list");
  // A row already shown for the same version of the post is kept: a half-written note or
  // the picked channels survive a re-read.
  const rows = reviewList.map((post) => {
    const row = reviewRow(post.id);
    return row && row.dataset.updated === post.updated_at ? row : reviewItem(post);
  });
  replaceKeepingFocus(list, rows);
  const status = $("review-status");
  // An outcome ("Approved …") stays until the next one; an empty queue says so otherwise.
  if (!reviewList.length && !status.textContent) status.textContent = "Nothing waiting for review.";
  else if (status.textContent === "Nothing waiting for review.") status.textContent = "";
}

function reviewUiFor(post) {
  let ui = reviewUi.get(post.id);
  if (!ui) {
    const agent = agentList.find((a) => a.id === post.agent_id);
    // What the reviewer picked or wrote, kept so a re-drawn row (the post changed) keeps it.
    const decision = { mode: "now", at: "", note: "", channels: new Set(agent?.channel_ids ?? []) };
    ui = { open: false, decision };
    reviewUi.set(post.id, ui);
  }
  return ui;
}

function reviewItem(post) {
  const ui = reviewUiFor(post);
  const warnings = post.seo?.warnings?.length ?? 0;
  const row = h(
    "li",
    { class: "item review", "data-id": post.id, "data-updated": post.updated_at },
    h(
      "div",
      { class: "item-main" },
      h("h3", { class: "item-title" }, post.title),
      h(
        "p",
        { class: "item-meta" },
        h("span", { "data-role": "review-agent" }, post.agent_id ? agentName(post.agent_id) : "A person"),
        h("time", { datetime: post.created_at }, formatDate(post.created_at)),
        post.seo ? h("span", { "data-role": "word-count" }, plural(post.seo.word_count, "word")) : null,
        h(
          "span",
          { class: `badge ${warnings ? "warn" : "good"}`, "data-role": "seo-warnings" },
          warnings ? plural(warnings, "SEO warning") : "No SEO warnings",
        ),
      ),
    ),
    h(
      "div",
      { class: "item-actions" },
      h(
        "button",
        {
          type: "button",
          class: "button small",
          "data-focus-key": `review-open-${post.id}`,
          "aria-label": `Review ${post.title}`,
          "aria-expanded": String(ui.open),
          "aria-controls": `review-${post.id}`,
          onclick: () => toggleReview(post.id),
        },
        ui.open ? "Close" : "Review",
      ),
    ),
    h("div", { class: "item-extra", id: `review-${post.id}`, "data-role": "review-slot" }, ui.open ? reviewPanel(post, ui) : null),
  );
  return row;
}

async function toggleReview(postId) {
  const post = reviewList.find((p) => p.id === postId);
  if (!post) return;
  const ui = reviewUiFor(post);
  ui.open = !ui.open;
  const row = reviewRow(postId);
  const fresh = reviewItem(post);
  row?.replaceWith(fresh);
  fresh.querySelector(`[data-focus-key="review-open-${CSS.escape(postId)}"]`)?.focus();
  if (ui.open) await loadReviewItems(); // newer drafts may have drawn on newer items
}

/** The items drafts drew on: each item lists the posts drafted from it. Only the newest 200
 * of the workspace are read: a draft from older items says so. */
async function loadReviewItems() {
  try {
    reviewItems = (await api("/items?limit=200")).items;
  } catch {
    reviewItems = [];
  }
  for (const post of reviewList) {
    const slot = reviewRow(post.id)?.querySelector('[data-role="drew-on"]');
    if (slot) slot.replaceWith(drewOn(post));
  }
}

function drewOn(post) {
  const used = (reviewItems ?? []).filter((item) => item.drafts.includes(post.id));
  if (reviewItems === null) return h("p", { class: "hint", "data-role": "drew-on" }, "Reading the items it drew on…");
  if (!used.length) return h("p", { class: "hint", "data-role": "drew-on" }, "It drew on none of the workspace's newest 200 items.");
  return h(
    "div",
    { "data-role": "drew-on" },
    h("h4", { class: "subpanel-title" }, "Drew on"),
    h("ul", { class: "drew-on" }, used.map((item) => {
      const from = sourceList.find((s) => s.id === item.source_id)?.name ?? item.site;
      return h("li", {}, externalLink(item.link, item.title), ` · ${from}`);
    })),
  );
}

function seoFacts(seo) {
  const facts = SEO_FACTS.filter(([key]) => seo[key] !== null && seo[key] !== undefined).map(([key, label]) => [
    label,
    String(seo[key]),
    key,
  ]);
  facts.push(["Links", `${seo.links.total} (${seo.links.external} external)`, "links"]);
  if (seo.images.total) facts.push(["Images with alt text", `${seo.images.with_alt}/${seo.images.total}`, "images"]);
  for (const [keyword, density] of Object.entries(seo.keyword_density ?? {})) {
    facts.push([`“${keyword}”`, `${density}%`, `density-${keyword}`]);
  }
  return h(
    "dl",
    { class: "facts", "data-role": "seo" },
    facts.flatMap(([label, value, key]) => [h("dt", {}, label), h("dd", { "data-field": key }, value)]),
  );
}

function reviewPanel(post, ui) {
  const seo = post.seo;
  const decision = ui.decision;
  const approveForm = h("form", { class: "review-form", "data-role": "approve-form", novalidate: true });
  const channelsBox = h(
    "fieldset",
    { class: "choices-box" },
    h("legend", {}, "Publish to"),
    channels.length
      ? h(
          "div",
          { class: "choices" },
          channels.map((channel) =>
            h(
              "label",
              { class: "choice" },
              h("input", {
                type: "checkbox",
                name: "channel_ids",
                value: channel.id,
                checked: decision.channels.has(channel.id),
                onchange: (event) =>
                  event.target.checked ? decision.channels.add(channel.id) : decision.channels.delete(channel.id),
              }),
              h("span", { class: "choice-name" }, channel.name),
            ),
          ),
        )
      : h("p", { class: "hint" }, "No channels: approving publishes nowhere."),
  );
  const at = h("input", {
    type: "datetime-local",
    name: "at",
    "aria-label": "Publish at",
    value: decision.at,
    oninput: (event) => (decision.at = event.target.value),
  });
  const mode = (value, text) =>
    h(
      "label",
      { class: "choice" },
      h("input", {
        type: "radio",
        name: "when",
        value,
        checked: decision.mode === value,
        onchange: () => (decision.mode = value),
      }),
      text,
    );
  approveForm.append(
    channelsBox,
    h("fieldset", { class: "choices-box" }, h("legend", {}, "When"), h("div", { class: "choices" }, mode("now", "Now"), mode("queue", "Next queue slot"), mode("at", "At"), at)),
    h("p", { class: "form-error", role: "alert", "data-role": "error" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button primary", "aria-label": `Approve ${post.title}` }, "Approve")),
  );
  onSubmit(approveForm, () => approve(post, ui));

  const rejectForm = h(
    "form",
    { class: "review-form", "data-role": "reject-form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: `reject-note-${post.id}` }, "Why reject it"),
      h(
        "textarea",
        {
          id: `reject-note-${post.id}`,
          name: "note",
          rows: "2",
          maxlength: "2000",
          required: true,
          oninput: (event) => (decision.note = event.target.value),
        },
        decision.note ?? "",
      ),
    ),
    h("p", { class: "form-error", role: "alert", "data-role": "error" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button danger", "aria-label": `Reject ${post.title}` }, "Reject")),
  );
  onSubmit(rejectForm, (data) => reject(post, String(data.get("note") ?? "").trim()));

  return h(
    "div",
    { class: "subpanel review-panel" },
    post.excerpt ? h("p", { class: "item-preview" }, post.excerpt) : null,
    // The Markdown as written, as text: nothing in a draft is ever parsed as HTML.
    h("pre", { class: "review-body", "data-role": "review-body" }, post.body),
    seo ? seoFacts(seo) : h("p", { class: "hint" }, "No SEO metrics yet."),
    seo?.warnings?.length
      ? h("ul", { class: "seo-warnings", "data-role": "seo-warning-list" }, seo.warnings.map((w) => h("li", { "data-code": w.code }, w.message)))
      : null,
    drewOn(post),
    h("div", { class: "review-actions" }, approveForm, rejectForm),
  );
}

async function approve(post, ui) {
  const body = { channel_ids: [...ui.decision.channels] };
  if (ui.decision.mode === "queue") body.schedule = "queue";
  if (ui.decision.mode === "at") {
    const at = new Date(ui.decision.at);
    if (!ui.decision.at || Number.isNaN(at.getTime())) throw new ApiError(422, "Pick the time to publish at.");
    body.schedule = at.toISOString();
  }
  const answer = await api(`/posts/${post.id}/approve`, { method: "POST", body });
  const sent = answer.publications.length;
  $("review-status").textContent = `Approved “${post.title}”${sent ? `: ${plural(sent, "delivery")}` : ""}.`;
  await Promise.allSettled([loadReview(), loadPosts()]);
}

async function reject(post, note) {
  if (!note) throw new ApiError(422, "Write a note: the agent's owner reads it to fix the draft.", [{ loc: ["body", "note"] }]);
  await api(`/posts/${post.id}/reject`, { method: "POST", body: { note } });
  $("review-status").textContent = `Rejected “${post.title}”.`;
  await Promise.allSettled([loadReview(), loadPosts()]);
}

// -- the agents

async function loadAgents() {
  const seq = agentsSeq;
  let list;
  try {
    list = await api("/agents");
  } catch (error) {
    if (seq === agentsSeq && error.status !== 401) $("agents-status").textContent = error.message;
    return;
  }
  if (seq !== agentsSeq) return;
  agentList = list;
  for (const id of agentUi.keys()) if (!list.some((a) => a.id === id)) agentUi.delete(id);
  renderAgents();
}

function agentUiFor(agentId) {
  let ui = agentUi.get(agentId);
  if (!ui) {
    ui = { note: null, running: false, draft: null, runsOpen: false, runs: null, runsError: "" };
    agentUi.set(agentId, ui);
  }
  return ui;
}

function renderAgents() {
  replaceKeepingFocus($("agents-list"), agentList.map(agentItem));
  const status = $("agents-status");
  if (!agentList.length && !status.textContent) status.textContent = "No agents yet. Add one to draft posts from your sources.";
  else if (agentList.length && status.textContent.startsWith("No agents yet")) status.textContent = "";
}

function renderAgent(agentId) {
  const agent = agentList.find((a) => a.id === agentId);
  const row = agentRow(agentId);
  if (!agent || !row) return;
  const key = row.contains(document.activeElement) ? document.activeElement.dataset?.focusKey : null;
  const fresh = agentItem(agent);
  row.replaceWith(fresh);
  if (key) fresh.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}

function agentButton(agent, role_, label, text, onclick, extra = {}) {
  return h(
    "button",
    {
      type: "button",
      class: "button small",
      "data-role": role_,
      "data-focus-key": `agent-${role_}-${agent.id}`,
      "aria-label": `${label} ${agent.name}`,
      onclick,
      ...extra,
    },
    text,
  );
}

function agentItem(agent) {
  const ui = agentUiFor(agent.id);
  const schedule = agent.schedule_cron ? `${agent.schedule_cron} (${agent.timezone})` : "No schedule: run by hand";
  const draft = ui.draft
    ? h(
        "button",
        { type: "button", class: "link-button", "data-role": "agent-draft", onclick: () => showDraft(ui.draft.post_id) },
        ui.draft.title,
      )
    : null;
  return h(
    "li",
    { class: "item agent", "data-id": agent.id },
    h(
      "div",
      { class: "item-main" },
      h("h3", { class: "item-title" }, agent.name, h("span", { class: "hint-inline" }, agent.topic)),
      h(
        "p",
        { class: "item-meta" },
        h("span", { class: `badge ${agent.enabled ? "good" : "neutral"}` }, agent.enabled ? "Enabled" : "Paused"),
        h("span", { "data-role": "agent-provider" }, `${agent.provider.name} (${agent.provider.kind})`),
        h("span", { class: "badge neutral", "data-role": "agent-review" }, REVIEW_MODES[agent.review] ?? humanize(agent.review)),
      ),
      h(
        "p",
        { class: "item-meta" },
        h("span", { "data-role": "agent-schedule" }, schedule),
        agent.next_run_at
          ? h(
              "span",
              { "data-role": "agent-next-run" },
              "Next run ",
              h("time", { datetime: agent.next_run_at }, zonedDate(agent.next_run_at, agent.timezone)),
            )
          : null,
        agent.last_run_at ? when("Last run", agent.last_run_at) : h("span", {}, "Never run"),
      ),
      h(
        "p",
        { class: `check ${ui.note?.tone ?? ""}`, "data-role": "agent-note", role: "status", "aria-live": "polite" },
        ui.note?.text ?? "",
        draft ? " " : null,
        draft,
      ),
    ),
    h(
      "div",
      { class: "item-actions" },
      isReviewer()
        ? null
        : agentButton(agent, "run", "Run now", ui.running ? "Running…" : "Run now", () => runAgent(agent.id), {
            "aria-disabled": ui.running ? "true" : null,
          }),
      agentButton(agent, "runs", "Runs of", "Runs", () => toggleRuns(agent.id), {
        "aria-expanded": String(ui.runsOpen),
        "aria-controls": `agent-runs-${agent.id}`,
      }),
      isReviewer()
        ? null
        : deleteButton(`agent “${agent.name}”`, `agent-delete-${agent.id}`, async () => {
            await api(`/agents/${agent.id}`, { method: "DELETE" });
            agentUi.delete(agent.id);
            $("agents-status").textContent = `Deleted “${agent.name}”.`;
            await loadAgents();
          }),
    ),
    h("div", { class: "item-extra", id: `agent-runs-${agent.id}`, "data-role": "runs-slot" }, ui.runsOpen ? runsTable(ui) : null),
  );
}

/** Bring a draft into view: in the review queue if it waits there, else in the Posts panel. */
function showDraft(postId) {
  const row = reviewRow(postId);
  if (!row) {
    showPost(postId);
    return;
  }
  row.scrollIntoView({ block: "center" });
  row.querySelector(`[data-focus-key="review-open-${CSS.escape(postId)}"]`)?.focus();
}

function setAgentNote(agentId, note) {
  agentUiFor(agentId).note = note;
  renderAgent(agentId);
}

async function runAgent(agentId) {
  const ui = agentUiFor(agentId);
  if (ui.running) return;
  const owner = session;
  ui.running = true;
  ui.draft = null;
  setAgentNote(agentId, { tone: "pending", text: "Starting…" });
  let jobId = null;
  try {
    const started = await api("/tasks/generate-post", { method: "POST", body: { agent_id: agentId } });
    jobId = started.task_id;
    agentJobs.set(jobId, agentId);
    const job = await pollJob(jobId, owner, (current, waited) =>
      setAgentNote(agentId, { tone: "pending", text: jobProgressText(current, waited, "Writing…") }),
    );
    if (!job || owner !== session) return;
    if (job.state === "SUCCESS" && job.result?.post_id) {
      ui.draft = { post_id: job.result.post_id, title: job.result.title };
      const words = job.result.word_count ? `, ${plural(job.result.word_count, "word")}` : "";
      ui.note = { tone: "good", text: `SUCCESS: drafted (${humanize(job.result.status)}${words}):` };
    } else {
      ui.note = { tone: "bad", text: `${job.state}${job.error ? `: ${job.error}` : ""}` };
    }
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (owner !== session || error.status === 401) return;
    ui.note = { tone: "bad", text: error.message };
  } finally {
    if (jobId) agentJobs.delete(jobId);
    ui.running = false;
  }
  await Promise.allSettled([loadReview(), loadPosts(), loadUsage(), loadAgents()]);
  if (ui.runsOpen) await loadRuns(agentId);
}

async function toggleRuns(agentId) {
  const ui = agentUiFor(agentId);
  ui.runsOpen = !ui.runsOpen;
  renderAgent(agentId);
  if (ui.runsOpen) await loadRuns(agentId);
}

async function loadRuns(agentId) {
  const ui = agentUiFor(agentId);
  try {
    ui.runs = (await api(`/agents/${agentId}/runs?limit=20`)).items;
    ui.runsError = "";
  } catch (error) {
    ui.runsError = error.message;
  }
  renderAgent(agentId);
}

function runsTable(ui) {
  if (ui.runsError) return h("p", { class: "status" }, ui.runsError);
  if (ui.runs === null) return h("p", { class: "status" }, "Reading the runs…");
  if (!ui.runs.length) return h("p", { class: "status" }, "No runs yet.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data-table", "data-role": "runs" },
      h("thead", {}, h("tr", {}, ["Started", "State", "Tokens", "Cost", "Latency", "Draft", "Error"].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        ui.runs.map((run) =>
          h(
            "tr",
            { "data-id": run.id },
            h("td", {}, h("time", { datetime: run.created_at }, formatDate(run.created_at))),
            h("td", {}, h("span", { class: `badge ${RUN_TONES[run.state] ?? "neutral"}`, "data-role": "run-state" }, humanize(run.state))),
            h("td", { class: "num" }, count(run.input_tokens + run.output_tokens)),
            h("td", { class: "num" }, money(run.cost)),
            h("td", { class: "num" }, ms(run.latency_ms)),
            h("td", {}, run.post_id ? h("button", { type: "button", class: "link-button", onclick: () => showDraft(run.post_id) }, "Open") : "–"),
            h("td", { class: "run-error" }, run.error ?? ""),
          ),
        ),
      ),
    ),
  );
}

// -- the "Add agent" form

function fillAgentChoices() {
  const form = $("agent-form");
  const ticked = (name) => new Set([...form.querySelectorAll(`[name="${name}"]:checked`)].map((el) => el.value));
  const choices = (name, list, empty) => {
    const keep = ticked(name);
    if (!list.length) return [h("p", { class: "hint" }, empty)];
    return list.map((row) =>
      h(
        "label",
        { class: "choice" },
        h("input", { type: "checkbox", name, value: row.id, checked: keep.has(row.id) }),
        h("span", { class: "choice-name" }, row.name),
      ),
    );
  };
  $("agent-sources").replaceChildren(...choices("source_ids", sourceList, "No sources yet: add one in Sources."));
  $("agent-channels").replaceChildren(...choices("channel_ids", channels, "No channels yet."));
  const select = $("agent-provider");
  const picked = select.value;
  select.replaceChildren(
    h("option", { value: "" }, "The workspace's default"),
    ...providerList.map((p) => h("option", { value: p.id }, `${p.name} (${p.kind})`)),
  );
  select.value = providerList.some((p) => p.id === picked) ? picked : "";
}

$("agent-create").addEventListener("toggle", () => {
  if ($("agent-create").open) fillAgentChoices();
});

function optionalNumber(data, name) {
  const raw = String(data.get(name) ?? "").trim();
  if (!raw) return null;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new ApiError(422, `${name}: give a number.`, [{ loc: ["body", name] }]);
  return value;
}

onSubmit(
  $("agent-form"),
  async (data) => {
    const body = {
      name: String(data.get("name")).trim(),
      topic: String(data.get("topic")).trim(),
      keywords: String(data.get("keywords"))
        .split(",")
        .map((k) => k.trim())
        .filter(Boolean),
      source_ids: data.getAll("source_ids").map(String),
      channel_ids: data.getAll("channel_ids").map(String),
      timezone: String(data.get("timezone")).trim() || "UTC",
      review: String(data.get("review")),
      quota: {},
    };
    const cron = String(data.get("schedule_cron")).trim();
    if (cron) body.schedule_cron = cron;
    const provider = String(data.get("provider_id"));
    if (provider) body.provider_id = provider;
    for (const name of ["drafts_per_month", "tokens_per_month", "cost_per_month"]) {
      const value = optionalNumber(data, name);
      if (value !== null) body.quota[name] = value;
    }
    const agent = await api("/agents", { method: "POST", body });
    $("agent-form").reset();
    closeCreate("agent-create");
    const next = agent.next_runs.map((iso) => zonedDate(iso, agent.timezone)).join("; ");
    $("agents-status").textContent = `Added “${agent.name}”.${next ? ` Next runs (${agent.timezone}): ${next}.` : ""}`;
    await loadAgents();
  },
  // A quota limit's error points at body.quota.<limit>: its field is named by the limit.
  (loc) => (loc[1] === "quota" && loc.length > 2 ? loc[2] : loc[1]),
);

// -- usage this month

async function loadUsage() {
  const seq = agentsSeq;
  let report;
  try {
    report = await api("/usage?group_by=agent");
  } catch (error) {
    if (seq === agentsSeq && error.status !== 401) $("usage-totals").textContent = error.message;
    return;
  }
  if (seq !== agentsSeq) return;
  const t = report.totals;
  $("usage-totals").textContent =
    `${plural(t.runs, "run")}, ${count(t.tokens)} tokens, ${money(t.cost, report.currency)}` +
    (t.quota_left ? `; workspace quota left: ${quotaLeft(t.quota_left, report.currency)}` : "");
  if (!report.rows.length) {
    $("usage-table").replaceChildren(h("p", { class: "status" }, "No provider calls this month."));
    return;
  }
  const top = Math.max(...report.rows.map((r) => r.tokens), 1);
  $("usage-table").replaceChildren(
    h(
      "table",
      { class: "data-table", "data-role": "usage" },
      h(
        "thead",
        {},
        h("tr", {}, ["Agent", "Runs", "Tokens", "Cost", "p50", "p95", "Quota left", ""].map((t) => h("th", { scope: "col" }, t))),
      ),
      h(
        "tbody",
        {},
        report.rows.map((row) =>
          h(
            "tr",
            { "data-key": row.key ?? "" },
            h("th", { scope: "row" }, row.label),
            h("td", { class: "num", "data-field": "runs" }, count(row.runs)),
            h("td", { class: "num", "data-field": "tokens" }, count(row.tokens)),
            h("td", { class: "num", "data-field": "cost" }, money(row.cost, report.currency)),
            h("td", { class: "num" }, ms(row.latency_p50_ms)),
            h("td", { class: "num" }, ms(row.latency_p95_ms)),
            h("td", {}, row.quota_left ? quotaLeft(row.quota_left, report.currency) : "No limit"),
            h(
              "td",
              { class: "bar-cell", "aria-hidden": "true" },
              h("span", { class: "bar", style: `width: ${Math.round((row.tokens / top) * 100)}%` }),
            ),
          ),
        ),
      ),
    ),
  );
}

function quotaLeft(left, currency) {
  const parts = [];
  if (left.drafts !== null) parts.push(plural(left.drafts, "draft"));
  if (left.tokens !== null) parts.push(`${count(left.tokens)} tokens`);
  if (left.cost !== null) parts.push(money(left.cost, currency));
  return parts.join(", ") || "No limit";
}

// -- providers

async function loadProviders() {
  const seq = agentsSeq;
  let list;
  try {
    list = await api("/providers");
  } catch (error) {
    if (seq === agentsSeq && error.status !== 401) $("providers-status").textContent = error.message;
    return;
  }
  if (seq !== agentsSeq) return;
  providerList = list;
  renderProviders();
}

function renderProviders() {
  replaceKeepingFocus($("providers-list"), providerList.map(providerItem));
  $("providers-status").textContent = providerList.length
    ? ""
    : "No providers: agents use the built-in digest (offline, no model).";
}

function providerItem(provider) {
  const note = providerNotes.get(provider.id);
  const prices =
    provider.price_source === "unknown"
      ? "price unknown: calls count as free"
      : `${money(provider.input_price_per_million)} in / ${money(provider.output_price_per_million)} out per million tokens`;
  return h(
    "li",
    { class: "item provider", "data-id": provider.id },
    h(
      "div",
      { class: "item-main" },
      h("h3", { class: "item-title" }, provider.name, h("span", { class: "hint-inline" }, provider.kind)),
      h(
        "p",
        { class: "item-meta" },
        badge(provider.state),
        provider.model ? h("span", {}, provider.model) : null,
        provider.base_url ? h("span", { class: "source-url" }, provider.base_url) : null,
        provider.kind === "openai" ? h("span", {}, provider.has_api_key ? "key stored" : "no key") : null,
        provider.kind === "openai" ? h("span", {}, prices) : null,
      ),
      provider.state_reason ? h("p", { class: "source-why warn" }, provider.state_reason) : null,
      h("p", { class: `check ${note?.tone ?? ""}`, "data-role": "provider-note", role: "status", "aria-live": "polite" }, note?.text ?? ""),
    ),
    isReviewer()
      ? null
      : h(
          "div",
          { class: "item-actions" },
          h(
            "button",
            {
              type: "button",
              class: "button small",
              "data-focus-key": `provider-test-${provider.id}`,
              "aria-label": `Test ${provider.name}`,
              "aria-disabled": note?.running ? "true" : null,
              onclick: () => testProvider(provider.id),
            },
            note?.running ? "Testing…" : "Test",
          ),
          deleteButton(`provider “${provider.name}”`, `provider-delete-${provider.id}`, async () => {
            await api(`/providers/${provider.id}`, { method: "DELETE" });
            providerNotes.delete(provider.id);
            await Promise.allSettled([loadProviders(), loadAgents()]);
            $("providers-status").textContent = `Deleted “${provider.name}”.`;
          }),
        ),
  );
}

async function testProvider(providerId) {
  if (providerNotes.get(providerId)?.running) return;
  const owner = session;
  const set = (note) => {
    providerNotes.set(providerId, note);
    renderProviders();
  };
  set({ tone: "pending", text: "Starting the test…", running: true });
  try {
    const started = await api(`/providers/${providerId}/test`, { method: "POST" });
    const job = await pollJob(started.task_id, owner, (current, waited) =>
      set({ tone: "pending", text: jobProgressText(current, waited, "Testing…"), running: true }),
    );
    if (!job || owner !== session) return;
    const r = job.result ?? {};
    set(
      job.state === "SUCCESS"
        ? {
            tone: "good",
            text: r.latency_ms
              ? `SUCCESS: “${r.reply}” in ${ms(r.latency_ms)}, ${count(r.input_tokens + r.output_tokens)} tokens, ${money(r.cost)}.`
              : `SUCCESS: ${r.reply}`,
          }
        : { tone: "bad", text: `${job.state}${job.error ? `: ${job.error}` : ""}` },
    );
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (owner === session) set({ tone: "bad", text: error.message });
  }
  await Promise.allSettled([loadProviders(), loadUsage()]); // a refused key marks it; a call is usage
}

function showProviderFields() {
  const form = $("provider-form");
  const kind = form.elements.namedItem("kind").value;
  for (const el of form.querySelectorAll("[data-kinds]")) {
    const shown = el.dataset.kinds.split(" ").includes(kind);
    el.hidden = !shown;
    for (const input of el.querySelectorAll("input")) input.disabled = !shown;
    if (el instanceof HTMLInputElement) el.disabled = !shown;
  }
}

$("provider-kind").addEventListener("change", showProviderFields);
showProviderFields();

onSubmit($("provider-form"), async (data) => {
  const body = { kind: String(data.get("kind")), name: String(data.get("name")).trim() };
  if (body.kind === "openai") {
    for (const name of ["base_url", "model", "api_key"]) {
      const value = String(data.get(name) ?? "").trim();
      if (value) body[name] = value;
    }
    for (const name of ["input_price_per_million", "output_price_per_million"]) {
      const value = optionalNumber(data, name);
      if (value !== null) body[name] = value;
    }
  }
  const provider = await api("/providers", { method: "POST", body });
  $("provider-form").reset(); // the key leaves the page with the form's other fields
  showProviderFields();
  closeCreate("provider-create");
  await loadProviders();
  $("providers-status").textContent = `Added “${provider.name}”.`;
});

$("agents-refresh").addEventListener("click", () => loadAgentsPanel());

// -- live

function onAgentJobEvent(data) {
  const agentId = agentJobs.get(data.id);
  if (agentId && data.state && !["SUCCESS", "FAILURE", "REVOKED"].includes(data.state)) {
    setAgentNote(agentId, { tone: "pending", text: jobProgressText(data, 0, "Writing…") });
  }
  // A run this page did not start (the schedule, a source, another tab) ended: its draft
  // may wait for review, and the agent's last run and usage changed.
  if (data.kind === "agent.generate" && !agentId && ["SUCCESS", "FAILURE"].includes(data.state)) loadAgentsSoon();
}

function onReviewedEvent(data) {
  scheduleSync(); // the Posts panel's rows
  if (typeof data.post_id === "string") loadReview();
}

// ---------------------------------------------------------------- webhooks

// Event webhooks: endpoints Herald POSTs the workspace's events to (docs/webhooks.md).
// Managers' tools: a reviewer cannot even list them (403), so the panel stays hidden and
// unread for one. The API does not list the event types, so they are here; the browser
// test keeps this list equal to herald.webhooks.events.NAMES.
const WEBHOOK_EVENTS = [
  "delivery.published",
  "delivery.failed",
  "delivery.unconfirmed",
  "post.scheduled",
  "post.reviewed",
  "job.finished",
  "draft.created",
  "channel.needs_reconnect",
  "backup.finished",
  "webhook.test",
];
const ALL_EVENTS = "*";
const WEBHOOK_TONES = { pending: "neutral", sending: "info", delivered: "good", failed: "bad" };
const WEBHOOK_LOG_SIZE = 20;
const DISABLED_BY_PERSON = "disabled by a person";

let webhookList = [];
let webhooksSeq = 0;
const webhookUi = new Map(); // webhook id -> { busy, logOpen, log, logError }

const webhookRow = (webhookId) => $("webhooks-list").querySelector(`:scope > li[data-id="${CSS.escape(webhookId)}"]`);

function webhookUiFor(webhookId) {
  let ui = webhookUi.get(webhookId);
  if (!ui) {
    ui = { busy: false, logOpen: false, log: null, logError: "" };
    webhookUi.set(webhookId, ui);
  }
  return ui;
}

function clearWebhooks() {
  webhookList = [];
  webhookUi.clear();
  webhooksSeq += 1;
  $("webhooks-panel").hidden = true;
  $("webhooks-list").replaceChildren();
  for (const id of ["webhooks-status", "webhooks-alert"]) $(id).textContent = "";
  hideSecret();
}

/** Say what went wrong in the panel's alert area (an API problem's detail). */
function webhookAlert(error) {
  if (!(error instanceof ApiError)) throw error;
  if (error.status !== 401) $("webhooks-alert").textContent = error.message;
}

function webhookNote(text) {
  $("webhooks-alert").textContent = "";
  $("webhooks-status").textContent = text;
}

// -- the secret, shown once (after an add or a rotation) and then only in this box

function showSecret(webhook, rotated) {
  const box = $("webhook-secret");
  box.querySelector('[data-role="secret-title"]').textContent = rotated
    ? `New signing secret for ${webhook.url} (the old one still signs for 24 hours)`
    : `Signing secret for ${webhook.url}`;
  $("webhook-secret-value").textContent = webhook.secret;
  box.querySelector('[data-role="copy-note"]').textContent = "";
  box.hidden = false;
  $("webhook-secret-copy").focus();
}

function hideSecret() {
  $("webhook-secret").hidden = true;
  $("webhook-secret-value").textContent = "";
  $("webhook-secret").querySelector('[data-role="copy-note"]').textContent = "";
}

$("webhook-secret-copy").addEventListener("click", async () => {
  const value = $("webhook-secret-value");
  const note = $("webhook-secret").querySelector('[data-role="copy-note"]');
  try {
    await navigator.clipboard.writeText(value.textContent);
    note.className = "check good";
    note.textContent = "Copied.";
  } catch {
    // No clipboard (an insecure origin, a refused permission): select it for Ctrl+C.
    getSelection().selectAllChildren(value);
    note.className = "check";
    note.textContent = "Selected: press Ctrl+C (⌘C) to copy it.";
  }
});

$("webhook-secret-done").addEventListener("click", () => {
  hideSecret();
  $("webhooks-title").focus();
});

// -- the list

async function loadWebhooks() {
  if (isReviewer()) return;
  const seq = webhooksSeq;
  let list;
  try {
    list = await api("/webhooks");
  } catch (error) {
    if (seq === webhooksSeq) webhookAlert(error);
    return;
  }
  if (seq !== webhooksSeq) return;
  webhookList = list;
  for (const id of webhookUi.keys()) if (!list.some((w) => w.id === id)) webhookUi.delete(id);
  renderWebhooks();
  await Promise.allSettled(list.filter((w) => webhookUiFor(w.id).logOpen).map((w) => loadWebhookLog(w.id)));
}

function renderWebhooks() {
  replaceKeepingFocus($("webhooks-list"), webhookList.map(webhookItem));
  const status = $("webhooks-status");
  if (!webhookList.length && !status.textContent) status.textContent = "No endpoints yet. Add one to receive events.";
  else if (webhookList.length && status.textContent.startsWith("No endpoints yet")) status.textContent = "";
}

function renderWebhook(webhookId) {
  const webhook = webhookList.find((w) => w.id === webhookId);
  const row = webhookRow(webhookId);
  if (!webhook || !row) return;
  const key = row.contains(document.activeElement) ? document.activeElement.dataset?.focusKey : null;
  const fresh = webhookItem(webhook);
  row.replaceWith(fresh);
  if (key) fresh.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}

function webhookButton(webhook, role_, label, text, onclick, extra = {}) {
  return h(
    "button",
    {
      type: "button",
      class: "button small",
      "data-role": role_,
      "data-focus-key": `webhook-${role_}-${webhook.id}`,
      "aria-label": `${label} ${webhook.url}`,
      onclick,
      ...extra,
    },
    text,
  );
}

function webhookState(webhook) {
  if (webhook.state === "active") return { tone: "good", label: "Active" };
  // Disabled by Herald (24 h of failures, a 410 Gone) needs a look; by a person, not.
  return webhook.disabled_reason === DISABLED_BY_PERSON ? { tone: "neutral", label: "Disabled" } : { tone: "bad", label: "Disabled" };
}

function webhookItem(webhook) {
  const ui = webhookUiFor(webhook.id);
  const state = webhookState(webhook);
  const active = webhook.state === "active";
  const events = webhook.events.includes(ALL_EVENTS) ? ["All events"] : webhook.events;
  return h(
    "li",
    { class: "item webhook", "data-id": webhook.id },
    h(
      "div",
      { class: "item-main" },
      h("h3", { class: "item-title", "data-role": "webhook-url" }, webhook.url),
      webhook.description ? h("p", { class: "item-preview" }, webhook.description) : null,
      h(
        "p",
        { class: "item-meta" },
        h("span", { class: `badge ${state.tone}`, "data-role": "webhook-state" }, state.label),
        h("span", { class: "tags", "data-role": "webhook-events" }, events.map((name) => h("span", { class: "tag" }, name))),
      ),
      webhook.disabled_reason ? h("p", { class: "check bad", "data-role": "disabled-reason" }, `Disabled: ${webhook.disabled_reason}`) : null,
      webhook.consecutive_failures
        ? h(
            "p",
            { class: "item-meta", "data-role": "failures" },
            `${plural(webhook.consecutive_failures, "failed attempt")} in a row`,
            webhook.failing_since ? h("span", {}, " since ", h("time", { datetime: webhook.failing_since }, formatDate(webhook.failing_since))) : null,
          )
        : null,
    ),
    h(
      "div",
      { class: "item-actions" },
      webhookButton(webhook, "test", "Send a test event to", "Send test", () => testWebhook(webhook.id), {
        "aria-disabled": ui.busy || !active ? "true" : null,
        title: active ? null : "Enable it first",
      }),
      webhookButton(webhook, "log", "Delivery log of", "Deliveries", () => toggleWebhookLog(webhook.id), {
        "aria-expanded": String(ui.logOpen),
        "aria-controls": `webhook-log-${webhook.id}`,
      }),
      webhookButton(
        webhook,
        "toggle",
        active ? "Disable" : "Enable",
        active ? "Disable" : "Enable",
        () => setWebhookState(webhook.id, active ? "disabled" : "active"),
        { "aria-disabled": ui.busy ? "true" : null },
      ),
      webhookButton(webhook, "rotate", "Rotate the secret of", "Rotate secret", () => rotateWebhookSecret(webhook.id), {
        "aria-disabled": ui.busy ? "true" : null,
      }),
      deleteButton(`webhook ${webhook.url}`, `webhook-delete-${webhook.id}`, async () => {
        try {
          await api(`/webhooks/${webhook.id}`, { method: "DELETE" });
        } catch (error) {
          webhookAlert(error);
          return;
        }
        webhookUi.delete(webhook.id);
        webhookNote(`Deleted the endpoint ${webhook.url} and its delivery log.`);
        await loadWebhooks();
      }),
    ),
    h("div", { class: "item-extra", id: `webhook-log-${webhook.id}`, "data-role": "log-slot" }, ui.logOpen ? webhookLog(webhook, ui) : null),
  );
}

/** Run one change on an endpoint: one at a time per endpoint, errors in the alert area. */
async function webhookAction(webhookId, run) {
  const ui = webhookUiFor(webhookId);
  if (ui.busy) return;
  const owner = session;
  ui.busy = true;
  renderWebhook(webhookId);
  try {
    await run();
  } catch (error) {
    if (owner === session) webhookAlert(error);
  } finally {
    ui.busy = false;
  }
  if (owner !== session) return;
  await loadWebhooks();
}

function testWebhook(webhookId) {
  const webhook = webhookList.find((w) => w.id === webhookId);
  if (webhook?.state !== "active") {
    $("webhooks-alert").textContent = "The endpoint is disabled: enable it before sending a test.";
    return null;
  }
  return webhookAction(webhookId, async () => {
    const sent = await api(`/webhooks/${webhookId}/test`, { method: "POST" });
    webhookNote(`Test event sent to ${webhook.url}: follow it in its delivery log.`);
    const ui = webhookUiFor(webhookId);
    ui.logOpen = true;
    ui.log = [sent, ...(ui.log ?? []).filter((d) => d.id !== sent.id)];
  });
}

function setWebhookState(webhookId, state) {
  return webhookAction(webhookId, async () => {
    const webhook = await api(`/webhooks/${webhookId}`, { method: "PATCH", body: { state } });
    webhookNote(state === "active" ? `Enabled ${webhook.url}; what waited is sent now.` : `Disabled ${webhook.url}; its events wait.`);
  });
}

function rotateWebhookSecret(webhookId) {
  return webhookAction(webhookId, async () => {
    const webhook = await api(`/webhooks/${webhookId}`, { method: "PATCH", body: { rotate_secret: true } });
    webhookNote(`Rotated the secret of ${webhook.url}.`);
    showSecret(webhook, true);
  });
}

// -- an endpoint's delivery log

async function toggleWebhookLog(webhookId) {
  const ui = webhookUiFor(webhookId);
  ui.logOpen = !ui.logOpen;
  renderWebhook(webhookId);
  if (ui.logOpen) await loadWebhookLog(webhookId);
}

async function loadWebhookLog(webhookId) {
  const ui = webhookUiFor(webhookId);
  const seq = webhooksSeq;
  try {
    ui.log = (await api(`/webhooks/${webhookId}/deliveries?limit=${WEBHOOK_LOG_SIZE}`)).items;
    ui.logError = "";
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    ui.logError = error.message;
  }
  if (seq === webhooksSeq) renderWebhook(webhookId);
}

function redeliver(webhookId, delivery) {
  return webhookAction(webhookId, async () => {
    await api(`/webhooks/${webhookId}/deliveries/${delivery.id}/redeliver`, { method: "POST" });
    webhookNote(`${delivery.event_type} of ${formatDate(delivery.created_at)} is sent again (same event id).`);
  });
}

function webhookLog(webhook, ui) {
  const head = h(
    "div",
    { class: "panel-head" },
    h("h4", { class: "subpanel-title" }, `Last ${WEBHOOK_LOG_SIZE} deliveries`),
    webhookButton(webhook, "log-refresh", "Refresh the delivery log of", "Refresh", () => loadWebhookLog(webhook.id), {
      class: "button small quiet",
    }),
  );
  let body;
  if (ui.logError) body = h("p", { class: "form-error", role: "alert" }, ui.logError);
  else if (ui.log === null) body = h("p", { class: "status" }, "Reading the delivery log…");
  else if (!ui.log.length) body = h("p", { class: "status" }, "Nothing sent yet.");
  else {
    body = h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "data-table", "data-role": "deliveries" },
        h(
          "thead",
          {},
          h("tr", {}, ["Time", "Event", "State", "Attempts", "Last status", "Error", ""].map((t) => h("th", { scope: "col" }, t))),
        ),
        h(
          "tbody",
          {},
          ui.log.map((d) =>
            h(
              "tr",
              { "data-id": d.id },
              h("td", {}, h("time", { datetime: d.created_at }, formatDate(d.created_at))),
              h("td", { "data-role": "event-type" }, d.event_type),
              h("td", {}, h("span", { class: `badge ${WEBHOOK_TONES[d.state] ?? "neutral"}`, "data-role": "delivery-state" }, humanize(d.state))),
              h("td", { class: "num", "data-role": "attempts" }, String(d.attempts)),
              h("td", { class: "num", "data-role": "last-status" }, d.last_status === null ? "–" : String(d.last_status)),
              h("td", { class: "run-error", "data-role": "last-error" }, d.last_error ?? ""),
              h(
                "td",
                {},
                d.state === "sending"
                  ? null
                  : h(
                      "button",
                      {
                        type: "button",
                        class: "button small",
                        "data-focus-key": `webhook-redeliver-${d.id}`,
                        "aria-label": `Redeliver ${d.event_type} of ${formatDate(d.created_at)}`,
                        onclick: () => redeliver(webhook.id, d),
                      },
                      "Redeliver",
                    ),
              ),
            ),
          ),
        ),
      ),
    );
  }
  return h("section", { class: "subpanel", "aria-label": `Delivery log of ${webhook.url}`, "data-role": "delivery-log" }, head, body);
}

// -- the "Add endpoint" form

function renderWebhookEventChoices() {
  const choice = (value, name, hint) =>
    h(
      "label",
      { class: "choice" },
      h("input", { type: "checkbox", name: "events", value }),
      h("span", { class: "choice-name" }, name),
      hint ? h("span", { class: "hint-inline" }, hint) : null,
    );
  $("webhook-events").replaceChildren(
    choice(ALL_EVENTS, "All events", "including ones added later"),
    ...WEBHOOK_EVENTS.map((name) => choice(name, name)),
  );
}

renderWebhookEventChoices();

/** "All events" covers every one: the single ones are greyed out while it is ticked. */
function syncWebhookEventChoices() {
  const all = $("webhook-events").querySelector(`input[value="${ALL_EVENTS}"]`).checked;
  for (const input of $("webhook-events").querySelectorAll('input[name="events"]')) {
    if (input.value === ALL_EVENTS) continue;
    input.disabled = all;
    input.closest(".choice").classList.toggle("disabled", all);
  }
}

$("webhook-events").addEventListener("change", syncWebhookEventChoices);
// reset() restores the boxes after this event: look once it is done.
$("webhook-form").addEventListener("reset", () => setTimeout(syncWebhookEventChoices));

onSubmit($("webhook-form"), async (data) => {
  const picked = data.getAll("events").map(String);
  const events = picked.includes(ALL_EVENTS) ? [ALL_EVENTS] : picked;
  if (!events.length) throw new ApiError(422, "Pick at least one event.", [{ loc: ["body", "events"], msg: "Pick at least one event." }]);
  const body = { url: String(data.get("url")).trim(), events };
  const description = String(data.get("description")).trim();
  if (description) body.description = description;
  const webhook = await api("/webhooks", { method: "POST", body });
  $("webhook-form").reset();
  closeCreate("webhook-create");
  webhookNote(`Added the endpoint ${webhook.url}.`);
  showSecret(webhook, false);
  await loadWebhooks();
});

$("webhooks-refresh").addEventListener("click", () => loadWebhooks());

// -- live

function onWebhookDisabledEvent() {
  // Herald disabled an endpoint (24 h of failures, a 410 Gone): show why.
  if (session && !isReviewer()) loadWebhooks();
}

// ---------------------------------------------------------------- live events

let syncTimer = null;
let syncChannels = false;

/** Re-read what the page shows, once, shortly: events for unknown deliveries, a reset, a reconnect. */
function scheduleSync({ channels: alsoChannels = false } = {}) {
  syncChannels ||= alsoChannels;
  if (syncTimer) return;
  syncTimer = setTimeout(async () => {
    syncTimer = null;
    const withChannels = syncChannels;
    syncChannels = false;
    if (session) await syncVisible(withChannels);
  }, SYNC_DELAY_MS);
}

async function syncVisible(withChannels) {
  const owner = session;
  const tasks = [];
  if (withChannels) tasks.push(loadChannels(), loadSources().then(reloadOpenItems), loadAgentsPanel(), loadWebhooks());
  const rows = $("posts-list").children.length;
  if (rows) {
    // The same filters, as many rows as are shown: patch the state badges in place.
    const params = postFilters();
    params.set("limit", String(Math.min(100, Math.max(20, rows))));
    tasks.push(
      api(`/posts?${params}`).then(
        (page) => owner === session && page.items.forEach(patchPostState),
        () => null,
      ),
    );
  }
  for (const [postId, ui] of postUi) {
    if (ui.deliveriesOpen && postRow(postId)) tasks.push(refreshPost(postId));
  }
  await Promise.allSettled(tasks);
}

function onPublicationEvent(data) {
  if (["retry_wait", "failed"].includes(data.state)) loadChannelsSoon(); // refused credentials mark the channel
  const postId = deliveryPost.get(data.publication_id) ?? data.post_id;
  if (typeof postId !== "string") {
    scheduleSync(); // a delivery this page has not listed, from an event that does not say whose post
    return;
  }
  const ui = postUi.get(postId);
  if (!ui) return;
  ui.notes.delete(data.publication_id);
  const shown = ui.publications?.find((p) => p.id === data.publication_id);
  if (shown && data.state && shown.state !== data.state) {
    shown.state = data.state; // at once; the re-read below brings attempt, error and address
    renderDeliveries(postId);
  }
  if (postRow(postId)) refreshPost(postId);
}

const LIVE_TEXT = { off: "", connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };

function setLive(state, detail = "") {
  const el = $("live");
  el.dataset.state = state;
  el.hidden = state === "off";
  el.title = detail;
  el.querySelector('[data-role="text"]').textContent = LIVE_TEXT[state];
  el.querySelector('[data-role="detail"]').textContent = detail ? `: ${detail}` : "";
}

/**
 * Ask the events endpoint, with the token in a header, why the stream failed; the body of
 * an error is a problem+json. Null when it would answer now.
 */
async function probeLive() {
  const controller = new AbortController();
  try {
    const response = await fetch(`${API}/events`, {
      headers: {
        Accept: "text/event-stream, application/problem+json",
        Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ""}`,
      },
      cache: "no-store",
      signal: controller.signal,
    });
    if (response.ok) return null;
    const data = await response.json().catch(() => null);
    return { status: response.status, detail: typeof data?.detail === "string" ? data.detail : "" };
  } catch {
    return { status: 0, detail: "Herald cannot be reached." };
  } finally {
    controller.abort(); // a stream that answered 200 is not read: this was only a question
  }
}

/**
 * The workspace's event stream, reopened on failure after 1 s, 2 s, 4 s … 30 s. A browser's
 * EventSource gives up for good on a 401 or 503, so every error closes it and the page
 * reopens it itself, resuming after the last event seen; what the page shows is re-read
 * once it is back, in case something was missed in between.
 */
function connectLive(owner) {
  let source = null;
  let timer = null;
  let delay = LIVE_RETRY_FIRST_MS;
  let openedAt = 0;
  let lastId = "";
  let missedSome = false;
  let closed = false;

  const alive = () => !closed && owner === session;

  const open = () => {
    const params = new URLSearchParams({ access_token: sessionStorage.getItem(TOKEN_KEY) ?? "" });
    if (lastId) params.set("last_event_id", lastId);
    const mine = new EventSource(`${API}/events?${params}`);
    source = mine;
    const track = (event) => {
      if (event.lastEventId) lastId = event.lastEventId;
    };
    mine.addEventListener("open", () => {
      if (source !== mine) return;
      openedAt = Date.now();
      setLive("live");
      if (missedSome) {
        missedSome = false;
        scheduleSync({ channels: true });
      }
    });
    mine.addEventListener("publication.state", (event) => {
      if (source !== mine) return;
      track(event);
      let data = null;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (typeof data?.publication_id === "string") onPublicationEvent(data);
    });
    const listen = (kind, handle) =>
      mine.addEventListener(kind, (event) => {
        if (source !== mine) return;
        track(event);
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        if (data && typeof data === "object") handle(data);
      });
    listen("job.state", (data) => {
      onJobEvent(data);
      onAgentJobEvent(data);
    });
    listen("source.items", onSourceItemsEvent);
    listen("post.reviewed", onReviewedEvent); // approved or rejected: re-read the posts shown
    listen("webhook.disabled", onWebhookDisabledEvent);
    mine.addEventListener("reset", (event) => {
      if (source !== mine) return;
      track(event);
      scheduleSync({ channels: true });
    });
    mine.addEventListener("error", () => {
      if (source !== mine) return;
      mine.close();
      source = null;
      if (openedAt && Date.now() - openedAt >= LIVE_HEALTHY_MS) delay = LIVE_RETRY_FIRST_MS;
      openedAt = 0;
      missedSome = true;
      setLive("reconnecting");
      later();
    });
  };

  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(reopen, delay);
    delay = Math.min(delay * 2, LIVE_RETRY_MAX_MS);
  };

  const reopen = async () => {
    timer = null;
    if (!alive()) return;
    const problem = await probeLive();
    if (!alive() || source) return;
    if (problem?.status === 401) {
      endSession("Your session has ended. Sign in again.");
      return;
    }
    if (problem) {
      setLive("reconnecting", problem.detail);
      later();
      return;
    }
    open();
  };

  const online = () => {
    if (timer && alive()) {
      clearTimeout(timer);
      delay = LIVE_RETRY_FIRST_MS;
      reopen();
    }
  };
  window.addEventListener("online", online);

  setLive("connecting");
  open();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      source?.close();
      source = null;
      window.removeEventListener("online", online);
    },
  };
}

// ---------------------------------------------------------------- start

if (sessionStorage.getItem(TOKEN_KEY)) startSession();
else showSignin();
