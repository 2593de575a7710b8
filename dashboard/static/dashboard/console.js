/* The operations console: draws the pipeline's state from one JSON endpoint and redraws it every
   2 s without reloading the page; its buttons replay or discard dead letters and run the
   invariants.

   Plain scripts, no build step and nothing inline, for the Content-Security-Policy (script-src
   'self'): the first state comes in the page as a JSON data block, and every text is set with
   textContent, never parsed as markup (error messages come from failed events). The helpers it
   uses (dom.js, format.js, charts.js) load before it. */
"use strict";

(() => {
  const POLL_MS = 2000;
  const { el, setText, setState, sync, table } = window.opsConsole.dom;
  const { count, ago, absolute, duration, rate } = window.opsConsole.format;
  const { chart, drawRate, drawLatency } = window.opsConsole.charts;

  const root = document.getElementById("ops-console");
  if (!root) return;
  const urls = {
    state: root.dataset.stateUrl,
    invariants: root.dataset.invariantsUrl,
    replay: root.dataset.replayUrl,
    discard: root.dataset.discardUrl,
  };
  const csrfToken = root.dataset.csrfToken;
  const byId = (id) => document.getElementById(id);

  let state = JSON.parse(byId("ops-state").textContent);
  let receivedAt = Date.now(); // when `state` arrived, by this browser's clock
  let connectionProblem = null; // a sentence while the endpoint does not answer
  let invariants = null; // {checks, at}
  let now = state.now; // the server's clock, advanced by the time since `state` arrived

  // Column drawers.
  const text = (f) => (td, item) => setText(td, f(item));
  const figure = (head, f, cls = "") => ({ head, num: true, cls, draw: text((item) => count(f(item))) });
  const time = (head, f) => ({
    head,
    draw(td, item) {
      const t = f(item);
      setText(td, t == null ? "never" : ago(now - t));
      td.title = t == null ? "" : absolute(t);
    },
  });
  const badWhenAny = (head, f, cls = "") => ({
    head,
    num: true,
    cls,
    draw(td, item) {
      setText(td, count(f(item)));
      td.classList.toggle("bad", f(item) > 0);
    },
  });

  // --- the sections --------------------------------------------------------------------------

  const STREAM_COLUMNS = [
    { head: "stream", draw: text((s) => s.stream) },
    { head: "read by", draw: text((s) => (s.partition ? s.owner || "nobody (lease free)" : "any consumer")) },
    figure("lag", (s) => s.lag, "lag"),
    figure("pending", (s) => s.pending, "pending"),
    badWhenAny("retrying", (s) => s.retrying, "retrying"),
  ];

  /* A process's name, with the partitions its heartbeat lists (if any) under it: a column of
     their own would push the figures out of the card. */
  const processName = (head) => ({
    head,
    cls: "name",
    draw(td, b) {
      if (!td.firstChild) td.append(el("span"), el("small", { class: "partitions" }));
      setText(td.firstChild, b.name);
      td.lastChild.hidden = !b.partitions.length;
      setText(td.lastChild, `partitions ${b.partitions.join(", ")}`);
      td.title = `last heartbeat ${ago(now - b.beat_at)}`;
    },
  });

  const CONSUMER_COLUMNS = [
    processName("consumer"),
    { head: "host", cls: "host", draw: text((b) => b.host) },
    { head: "pid", num: true, draw: text((b) => String(b.pid)) },
    time("started", (b) => b.started_at),
    time("last batch", (b) => b.last_batch_at),
    figure("batch in hand", (b) => b.batch_size, "batch"),
    figure("processed", (b) => b.processed, "processed"),
    figure("duplicates", (b) => b.duplicates, "duplicates"),
    figure("retries", (b) => b.retries, "retries"),
    badWhenAny("dead letters", (b) => b.dead, "dead"),
  ];

  const groupParts = new WeakMap();
  const NOT_CREATED = "Not created on its streams yet: no consumer has started.";

  function buildGroup(group) {
    const parts = {
      state: el("span"),
      rate: el("strong", { class: "ops-rate" }),
      totals: el("span", { class: "ops-quiet" }),
      chart: chart(`${group.group}: events handled per second, last 15 minutes`),
      streams: table(STREAM_COLUMNS),
      consumers: table(CONSUMER_COLUMNS),
      noStreams: el("p", { class: "ops-quiet" }),
    };
    const card = el(
      "section",
      { class: "ops-group", "data-group": group.group },
      el("h3", {}, el("span", { text: group.group }), " ", parts.state),
      el("div", { class: "ops-throughput" }, el("div", {}, parts.rate, " events/s ", parts.totals), parts.chart),
      el("div", { class: "ops-streams" }, parts.streams.node, parts.noStreams),
      el("div", { class: "ops-consumers" }, parts.consumers.node),
    );
    groupParts.set(card, parts);
    return card;
  }

  function updateGroup(card, group) {
    const parts = groupParts.get(card);
    const n = group.consumers.length;
    if (group.alive === null) setState(parts.state, "muted", "consumers unknown");
    else setState(parts.state, n ? "good" : "bad", n ? `${n} live consumer${n === 1 ? "" : "s"}` : "no live consumer");
    const handled = group.handled;
    setText(parts.rate, rate(handled.last_per_second));
    const t = handled.totals;
    setText(
      parts.totals,
      `(last 10 s) · 15 min: ${count(t.ok + t.duplicate)} handled, ${count(t.retry)} retries, ${count(t.dead)} dead`,
    );
    drawRate(parts.chart, handled.per_second);
    parts.streams.show(group.streams, (s) => s.stream);
    parts.noStreams.hidden = group.streams.length > 0;
    setText(parts.noStreams, state.redis === "ok" ? NOT_CREATED : "Unknown while Redis is unreachable.");
    parts.consumers.show(group.consumers, (b) => b.name);
    parts.consumers.node.hidden = n === 0;
  }

  /* What the relay does depends on who publishes: with publish-on-commit (the default) the
     process that commits an event publishes it, and the relay is the backstop for what that
     could not publish (a crash, Redis away), so "never a batch, 0 published" is the normal
     case, said as such rather than as figures that look like a fault. */
  const relayTable = table([
    processName("relay"),
    { head: "host", draw: text((b) => b.host) },
    { head: "pid", num: true, draw: text((b) => String(b.pid)) },
    time("started", (b) => b.started_at),
    {
      head: "last batch",
      draw(td, b) {
        const t = b.last_batch_at;
        setText(td, t == null ? (state.relay.backstop ? "none needed" : "none yet") : ago(now - t));
        td.title = t == null ? "" : absolute(t);
      },
    },
    figure("published", (b) => b.published, "published"),
  ]);
  const relayState = el("span");
  const relayWork = el("span", { class: "ops-relay-work" });
  const relayRole = el("p", { class: "ops-quiet ops-relay-role" });
  byId("ops-relay").append(el("p", {}, "Relay: ", relayState, " · ", relayWork), relayRole, relayTable.node);
  // The e-mail backlog (notifications' mailer): waiting, the oldest's age, dead letters.
  const emails = el("span", { class: "num" });
  const emailsOldest = el("span", { class: "num" });
  const emailsDead = el("a", { class: "num", href: "/admin/notifications/notification/?status__exact=dead" });
  byId("ops-relay").append(
    el("p", {}, "E-mail, not yet accepted: ", emails, " · oldest: ", emailsOldest, " · dead: ", emailsDead),
  );

  function drawEmail(email) {
    if (!email) return;
    setText(emails, count(email.waiting));
    setText(emailsOldest, email.waiting ? duration(email.oldest_age_s) : "none waiting");
    setText(emailsDead, count(email.dead));
    emailsDead.classList.toggle("bad", email.dead > 0);
  }

  function drawRelay(relay) {
    if (relay.alive === null) setState(relayState, "muted", "unknown");
    else setState(relayState, relay.alive ? "good" : "bad", relay.alive ? "alive" : "not running");
    const role = relay.backstop ? "backstop" : "publishing";
    const waiting = relay.outbox_backlog;
    if (!waiting) setText(relayWork, `${role}: idle, nothing waiting`);
    else setText(relayWork, `${role}: ${count(waiting)} waiting, oldest ${duration(relay.outbox_oldest_age_s)}`);
    relayWork.classList.toggle("bad", waiting > 1000);
    setText(
      relayRole,
      relay.backstop
        ? "Each process publishes the events it commits; the relay publishes only what that missed " +
            "(a crash, Redis away), so an idle relay with nothing published is the normal case."
        : "The relay publishes every event from the outbox (publish-on-commit is off).",
    );
    relayTable.show(relay.processes, (b) => b.name);
    relayTable.node.hidden = !relay.processes.length;
  }

  const stageParts = new WeakMap();

  function buildStage(stage) {
    const parts = {
      p50: el("span", { class: "p50" }),
      p99: el("span", { class: "p99" }),
      count: el("span", { class: "count" }),
      chart: chart(`placed to ${stage.stage}: p50 and p99, last 15 minutes`),
    };
    // The figures' colours are the chart's lines: the caption is the legend.
    const node = el(
      "figure",
      { class: "ops-stage", "data-stage": stage.stage },
      el(
        "figcaption",
        {},
        el("strong", { text: `placed → ${stage.stage}` }),
        " ",
        el("span", { class: "ops-p50" }, "p50 ", parts.p50),
        " · ",
        el("span", { class: "ops-p99" }, "p99 ", parts.p99),
        " · ",
        parts.count,
        " orders",
      ),
      parts.chart,
    );
    stageParts.set(node, parts);
    return node;
  }

  function updateStage(node, stage) {
    const parts = stageParts.get(node);
    const ceiling = state.latency_ceiling_s;
    // A quantile is its histogram bucket's upper bound; null past the last bound.
    const q = (v) => (!stage.count ? "–" : v == null ? `> ${duration(ceiling)}` : duration(v));
    setText(parts.p50, q(stage.p50));
    setText(parts.p99, q(stage.p99));
    setText(parts.count, count(stage.count));
    drawLatency(parts.chart, stage.points, ceiling);
  }

  const deadParts = new WeakMap();

  function buildDeadLetter(row) {
    const tr = el("tr");
    for (let i = 0; i < 9; i++) tr.append(el("td"));
    const [, , , dead, replayed, resolved, discarded] = tr.cells;
    for (const td of [dead, replayed, resolved, discarded]) td.className = "num";
    const parts = {
      row,
      replay: el("button", { type: "button", class: "button", text: "Replay" }),
      discard: el("button", { type: "button", class: "button", text: "Discard" }),
      list: el("a"), // the error, leading to the admin's list of exactly these letters
    };
    parts.replay.addEventListener("click", () => act("replay", parts.row, parts));
    parts.discard.addEventListener("click", () => act("discard", parts.row, parts));
    tr.cells[8].append(parts.replay, " ", parts.discard);
    tr.cells[0].className = "group";
    tr.cells[1].className = "error";
    tr.cells[1].append(parts.list);
    tr.cells[2].append(el("span"));
    deadParts.set(tr, parts);
    return tr;
  }

  const DEAD_STATES = { dead: "bad", replayed: "warn", resolved: "good", discarded: "muted" };

  function updateDeadLetter(tr, row) {
    const parts = deadParts.get(tr);
    parts.row = row;
    const cells = tr.cells;
    setText(cells[0], row.group);
    setText(parts.list, row.error);
    parts.list.title = `${row.error} (the admin's list of these dead letters)`;
    parts.list.href = row.admin_url;
    setState(cells[2].firstElementChild, DEAD_STATES[row.state], row.state);
    setText(cells[3], count(row.dead));
    cells[3].classList.toggle("bad", row.dead > 0);
    setText(cells[4], count(row.replayed));
    setText(cells[5], count(row.resolved));
    setText(cells[6], count(row.discarded));
    setText(cells[7], ago(now - row.newest));
    cells[7].title = absolute(row.newest);
    if (!parts.busy) parts.replay.disabled = parts.discard.disabled = row.dead === 0;
    parts.replay.title = `Replay the ${count(row.dead)} dead one(s) to ${row.group}`;
    parts.discard.title = `Discard the ${count(row.dead)} dead one(s): kept for the record, never replayed`;
  }

  function drawDeadLetters(rows) {
    const body = byId("ops-dead-letters").tBodies[0];
    sync(body, rows, (r) => `${r.group}\n${r.error}`, buildDeadLetter, updateDeadLetter);
    byId("ops-dead-letters").hidden = rows.length === 0;
    byId("ops-dead-letters-none").hidden = rows.length > 0;
  }

  function drawOrders(orders) {
    sync(
      byId("ops-orders").tBodies[0],
      orders.by_status,
      (s) => s.status,
      (s) => el("tr", {}, el("th", { scope: "row" }), el("td", { class: "num", "data-status": s.status })),
      (tr, s) => {
        setText(tr.cells[0], s.label);
        setText(tr.cells[1], count(s.count));
      },
    );
  }

  function drawProblems() {
    const lines = [];
    if (connectionProblem) lines.push({ level: "error", text: connectionProblem });
    for (const problem of state.problems) lines.push({ level: "error", text: problem });
    if (!lines.length) lines.push({ level: "success", text: "No problems: every group has a live consumer and the relay is alive." });
    sync(
      byId("ops-problems"),
      lines,
      (line) => line.text,
      () => el("li"),
      (li, line) => {
        li.className = line.level;
        setText(li, line.text);
      },
    );
  }

  function drawInvariants() {
    const section = byId("ops-invariants");
    section.hidden = !invariants;
    if (!invariants) return;
    setText(byId("ops-invariants-when"), `checked ${ago((Date.now() - invariants.at) / 1000)}`);
    sync(
      section.querySelector("tbody"),
      invariants.checks,
      (c) => c.name,
      () => el("tr", {}, el("td"), el("td", {}, el("span"), el("ul"))),
      (tr, c) => {
        tr.cells[0].className = c.ok ? "good" : "bad";
        setText(tr.cells[0], c.ok ? "ok" : "FAIL");
        setText(tr.cells[1].firstElementChild, c.ok ? c.name : `${c.name} (${count(c.total)})`);
        tr.cells[1].lastElementChild.replaceChildren(...c.violations.map((v) => el("li", { text: v })));
      },
    );
  }

  function draw() {
    now = state.now + (Date.now() - receivedAt) / 1000;
    drawProblems();
    sync(byId("ops-groups"), state.groups, (g) => g.group, buildGroup, updateGroup);
    drawRelay(state.relay);
    drawEmail(state.email);
    sync(byId("ops-stages"), state.stages, (s) => s.stage, buildStage, updateStage);
    drawDeadLetters(state.dead_letters);
    drawOrders(state.orders);
    drawInvariants();
    setText(byId("ops-updated"), `Updated ${ago((Date.now() - receivedAt) / 1000)}, every ${POLL_MS / 1000} s.`);
  }

  // --- talking to the server -----------------------------------------------------------------

  let timer = null;
  let polling = false;
  let pollAgain = false;

  async function poll() {
    clearTimeout(timer);
    if (polling) {
      pollAgain = true; // one more as soon as this one ends (a button asked for fresh figures)
      return;
    }
    polling = true;
    try {
      if (document.visibilityState !== "hidden") {
        const response = await fetch(urls.state, { headers: { Accept: "application/json" }, cache: "no-store" });
        if (response.status === 403) throw new Error("You are no longer signed in as staff: sign in again.");
        if (!response.ok) throw new Error(`The console's server answered HTTP ${response.status}; retrying every 2 s.`);
        state = await response.json();
        receivedAt = Date.now();
        connectionProblem = null;
      }
    } catch (error) {
      const message = error instanceof TypeError ? "The console cannot reach the server; retrying every 2 s." : error.message;
      connectionProblem = `${message} The figures below are from ${ago((Date.now() - receivedAt) / 1000)}.`;
    } finally {
      polling = false;
    }
    draw();
    if (pollAgain) {
      pollAgain = false;
      poll();
    } else {
      timer = setTimeout(poll, POLL_MS);
    }
  }

  async function post(url, fields) {
    const response = await fetch(url, {
      method: "POST",
      body: new URLSearchParams(fields),
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken },
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.detail || `The server refused (HTTP ${response.status}).`);
    return answer;
  }

  async function act(kind, row, parts) {
    if (
      kind === "discard" &&
      !window.confirm(`Discard ${count(row.dead)} dead letter(s) of ${row.group}? They are kept for the record and never replayed.`)
    ) {
      return;
    }
    const notice = byId("ops-notice");
    parts.busy = true;
    parts.replay.disabled = parts.discard.disabled = true;
    try {
      const answer = await post(urls[kind], { group: row.group, error: row.error });
      notice.className = "";
      notice.textContent =
        kind === "replay"
          ? `Replayed ${count(answer.replayed)} dead letter(s) to ${row.group}.`
          : `Discarded ${count(answer.discarded)} dead letter(s) of ${row.group}.`;
    } catch (error) {
      notice.className = "bad";
      notice.textContent = error instanceof TypeError ? "The console cannot reach the server: nothing was done." : error.message;
    } finally {
      parts.busy = false;
    }
    poll(); // the row's new state, now rather than in 2 s
  }

  async function checkInvariants(event) {
    const button = event.currentTarget;
    button.disabled = true;
    setText(button, "Checking…");
    try {
      const response = await fetch(urls.invariants, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      invariants = { checks: (await response.json()).checks, at: Date.now() };
      byId("ops-notice").textContent = "";
    } catch (error) {
      byId("ops-notice").className = "bad";
      byId("ops-notice").textContent = `The invariants could not be checked (${error.message}).`;
    } finally {
      button.disabled = false;
      setText(button, "Check invariants now");
    }
    drawInvariants();
  }

  byId("ops-check").addEventListener("click", checkInvariants);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") poll();
  });
  draw();
  timer = setTimeout(poll, POLL_MS);
})();
