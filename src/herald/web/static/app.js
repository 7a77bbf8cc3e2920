// Herald dashboard: plain modules, no build step, only the public JSON API.
// Every piece of data goes into the page as text (textContent / Text nodes), never as HTML.

const API = "api/v1"; // relative, so a proxy may serve Herald under a sub-path
const TOKEN_KEY = "herald.access_token";
const POLL_INTERVAL_MS = 1000;
const POLL_GIVE_UP_MS = 10 * 60 * 1000;
const HEALTH_INTERVAL_MS = 30 * 1000;
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
  scheduled: "info",
  published: "good",
  partially_failed: "warn",
  failed: "bad",
};

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
}

/** Show the problem's detail, and mark the fields its `errors` point at. */
function showFormError(form, error, fieldName = (loc) => loc[1]) {
  let message = error.message;
  if (error.status === 429 && error.retryAfter) message += ` Try again in ${error.retryAfter} s.`;
  formError(form).textContent = message;
  let first = null;
  for (const item of error.errors) {
    const loc = Array.isArray(item.loc) ? item.loc : [];
    if (loc[0] !== "body") continue;
    const field = form.elements.namedItem(String(fieldName(loc)));
    if (field instanceof HTMLElement) {
      field.setAttribute("aria-invalid", "true");
      first ??= field;
    }
  }
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
  if (session) clearInterval(session.healthTimer);
  session = null;
  // Drop everything the previous user could see.
  for (const id of ["posts-list", "channels-list", "health-list"]) $(id).replaceChildren();
  for (const id of ["user-email", "user-role", "workspace-name", "posts-status", "channels-status"]) {
    $(id).textContent = "";
  }
  for (const form of document.querySelectorAll("#app-view form")) {
    form.reset();
    clearFormError(form);
  }
  checks.clear();
  showSignin(notice);
}

async function startSession() {
  const current = { healthTimer: null };
  session = current;
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  current.healthTimer = setInterval(() => {
    if (!document.hidden) refreshHealth();
  }, HEALTH_INTERVAL_MS);
  await Promise.allSettled([loadMe(), refreshHealth(), loadPlatforms(), loadChannels(), loadPosts()]);
}

async function loadMe() {
  const me = await api("/auth/me");
  $("user-email").textContent = me.email;
  $("user-role").textContent = humanize(me.role);
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
  return h(
    "li",
    { class: "item", "data-id": post.id },
    h(
      "div",
      { class: "item-main" },
      h("h3", { class: "item-title" }, post.title),
      preview ? h("p", { class: "item-preview" }, preview.slice(0, 180) + (preview.length > 180 ? "…" : "")) : null,
      h(
        "p",
        { class: "item-meta" },
        badge(post.state),
        h("time", { datetime: post.created_at }, formatDate(post.created_at)),
        post.tags.length ? h("span", { class: "tags" }, post.tags.map((tag) => h("span", { class: "tag" }, tag))) : null,
        canonical,
      ),
    ),
    h(
      "div",
      { class: "item-actions" },
      deleteButton(`post “${post.title}”`, `post-delete-${post.id}`, async () => {
        await api(`/posts/${post.id}`, { method: "DELETE" });
        $("posts-status").textContent = `Deleted “${post.title}”.`;
        await loadPosts();
      }),
    ),
  );
}

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
    await sleep(POLL_INTERVAL_MS);
  }
  return null;
}

// ---------------------------------------------------------------- start

if (sessionStorage.getItem(TOKEN_KEY)) startSession();
else showSignin();
