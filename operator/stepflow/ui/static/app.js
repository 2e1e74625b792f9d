// stepflow ui: the workflow list and the workflow page, fed by the server's event stream.
// Every text from the cluster goes into the page as textContent, never as markup.

import { el, svg } from "./dom.js";
import { copyOf, drawBox, isBox, matrixFacts, matrixSection, noLog, stepCount } from "./fanout.js";
import { layOut, startLayoutWorker } from "./layout.js";

const PHASES = ["Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled", "Suspended"];
const BAND_TITLE = 22;

// What tests and benchmarks read: when the graph was drawn, and when each update was shown.
const probe = (window.stepflowUI = { renderedAt: null, applied: {}, layoutMs: null });

let stream = null; // the open EventSource; one page has one
let timer = null;

function duration(seconds) {
  if (seconds == null || seconds < 0) return "";
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.floor(seconds)}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

let clockOffset = 0; // the browser's clock minus the server's, in seconds
const serverNow = () => Date.now() / 1000 - clockOffset;

function listen(url, handlers) {
  if (stream) stream.close();
  stream = new EventSource(url);
  for (const [event, handler] of Object.entries(handlers)) {
    stream.addEventListener(event, (message) => handler(JSON.parse(message.data)));
  }
  stream.addEventListener("connection", (message) => showConnection(JSON.parse(message.data).connected));
  stream.onerror = () => showConnection(false);
  stream.onopen = () => showConnection(true);
}

function showConnection(connected) {
  document.getElementById("connection").hidden = connected;
}

function every(seconds, fn) {
  if (timer) clearInterval(timer);
  timer = setInterval(fn, seconds * 1000);
}

// --- the workflow list --------------------------------------------------------------------------

function listPage() {
  const main = document.getElementById("main");
  const namespace = el("select", { "aria-label": "namespace" }, el("option", { value: "", text: "all namespaces" }));
  const phase = el("select", { "aria-label": "phase" }, el("option", { value: "", text: "all phases" }),
    ...PHASES.map((p) => el("option", { value: p, text: p })));
  const search = el("input", { type: "search", placeholder: "name contains…", "aria-label": "name" });
  const body = el("tbody");
  const empty = el("div", { class: "empty", text: "No workflows yet." });
  const table = el("table", { class: "workflows" },
    el("thead", {}, el("tr", {}, ...["Namespace", "Name", "Phase", "Progress", "Age", "Duration", "Message"]
      .map((h) => el("th", { text: h })))), body);
  main.replaceChildren(el("div", { class: "filters" }, namespace, phase, search), table, empty);
  const rows = new Map();
  const filter = () => {
    let shown = 0;
    for (const row of rows.values()) {
      const s = row.summary;
      row.tr.hidden = (namespace.value && s.namespace !== namespace.value) || (phase.value && s.phase !== phase.value) ||
        (search.value && !s.name.includes(search.value));
      if (!row.tr.hidden) shown += 1;
    }
    empty.hidden = shown > 0;
    empty.textContent = rows.size ? "No workflow matches the filters." : "No workflows yet.";
  };
  const namespaces = () => {
    const known = [...new Set([...rows.values()].map((r) => r.summary.namespace))].sort();
    const have = [...namespace.options].slice(1).map((o) => o.value);
    if (known.join() !== have.join()) {
      const chosen = namespace.value;
      namespace.replaceChildren(namespace.options[0], ...known.map((n) => el("option", { value: n, text: n })));
      namespace.value = known.includes(chosen) ? chosen : "";
    }
  };
  const upsert = (s) => {
    const key = `${s.namespace}/${s.name}`;
    let row = rows.get(key);
    if (!row) {
      const tr = el("tr", { "data-key": key });
      row = { tr, cells: {} };
      for (const c of ["namespace", "name", "phase", "progress", "age", "duration", "message"]) {
        row.cells[c] = el("td", { class: c });
        tr.append(row.cells[c]);
      }
      row.cells.name.append(el("a", { href: `#/w/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.name)}`, text: s.name }));
      row.cells.namespace.textContent = s.namespace;
      rows.set(key, row);
      const after = [...rows.keys()].sort().find((k) => k > key);
      body.insertBefore(tr, after ? rows.get(after).tr : null);
    }
    row.summary = s;
    row.cells.phase.replaceChildren(el("span", { class: "badge", "data-phase": s.phase, text: s.phase }));
    const bar = el("span", { class: "meter" }, el("span"));
    bar.firstChild.style.setProperty("--done", s.total ? s.done / s.total : 0);
    row.cells.progress.replaceChildren(bar, s.progress || `${s.done}/${s.total}`);
    row.cells.message.textContent = s.reason && s.phase === "Failed" ? `${s.reason}: ${s.message}` : s.message;
    tick(row);
  };
  const tick = (row) => {
    const s = row.summary, now = serverNow();
    row.cells.age.textContent = s.created ? duration(now - s.created) : "";
    row.cells.duration.textContent = s.startedAt ? duration((s.finishedAt || now) - s.startedAt) : "";
  };
  for (const control of [namespace, phase, search]) control.addEventListener("input", filter);
  listen("/api/events", {
    snapshot: (data) => {
      clockOffset = Date.now() / 1000 - data.now;
      for (const row of rows.values()) row.tr.remove();
      rows.clear();
      data.workflows.forEach(upsert);
      namespaces();
      filter();
      document.body.dataset.loaded = "list";
    },
    workflow: (s) => { upsert(s); namespaces(); filter(); },
    deleted: (s) => {
      const key = `${s.namespace}/${s.name}`;
      rows.get(key)?.tr.remove();
      rows.delete(key);
      namespaces();
      filter();
    },
  });
  every(1, () => rows.forEach(tick));
}

// --- the workflow page --------------------------------------------------------------------------

function workflowPage(namespace, name) {
  const main = document.getElementById("main");
  const title = el("h1", { text: `${namespace}/${name}` });
  const badge = el("span", { class: "badge", "data-phase": "Pending", text: "…" });
  const facts = el("span", { class: "muted" });
  const message = el("div", { class: "message" });
  const zoomOut = el("button", { type: "button", title: "zoom out", text: "−" });
  const zoomIn = el("button", { type: "button", title: "zoom in", text: "+" });
  const fit = el("button", { type: "button", title: "fit to the window", text: "fit" });
  const layoutNote = el("span", { class: "muted" });
  const dag = el("div", { class: "dag", id: "dag" });
  const errors = el("div", { class: "errors" });
  const axis = el("div", { class: "axis" }, el("span"), el("span"), el("div", { class: "ticks" }));
  const gantt = el("div", { class: "gantt", id: "gantt" });
  const panel = el("aside", { class: "card panel", id: "panel" }, el("p", { class: "muted", text: "Select a step to see its details and logs." }));
  main.replaceChildren(
    el("div", { class: "card" }, el("a", { href: "#/", text: "← all workflows" }), title, badge, " ", facts, message),
    el("div", { class: "layout" },
      el("div", {},
        el("div", { class: "card" }, el("div", { class: "toolbar" }, el("h2", { text: "Graph" }), zoomOut, zoomIn, fit, layoutNote), errors, dag),
        el("div", { class: "card" }, el("h2", { text: "Timeline" }), axis, gantt)),
      panel));

  const page = { steps: {}, specs: new Map(), nodes: new Map(), rows: new Map(), selected: null, origin: null, summary: null, scale: 1, size: null,
    graph: null, open: new Set() }; // open: the matrix steps whose box lists its copies

  const header = (data) => {
    clockOffset = Date.now() / 1000 - data.now;
    page.summary = data.summary;
    page.origin = data.origin;
    const s = data.summary;
    badge.dataset.phase = s.phase;
    badge.textContent = s.phase;
    facts.textContent = [s.progress || `${s.done}/${s.total}`, s.startedAt ? duration((s.finishedAt || serverNow()) - s.startedAt) : ""]
      .filter(Boolean).join(" · ");
    message.textContent = s.reason && s.phase !== "Succeeded" ? `${s.reason}: ${s.message}` : s.message;
  };

  const applyStep = (step, view) => {
    page.steps[step] = view;
    page.nodes.get(step)?.update(view);
    page.rows.get(step)?.update(view);
    if (page.selected === step) showPanel(step);
    probe.applied[step] = { phase: view.phase, at: Date.now() };
  };

  const zoom = (factor) => {
    if (!page.size) return;
    page.scale = factor === "fit" ? Math.min(1, (dag.clientWidth - 4) / page.size.width) : Math.min(2, Math.max(0.05, page.scale * factor));
    const svgEl = dag.querySelector("svg");
    svgEl.setAttribute("width", page.size.width * page.scale);
    svgEl.setAttribute("height", page.size.height * page.scale);
  };
  zoomIn.onclick = () => zoom(1.25);
  zoomOut.onclick = () => zoom(0.8);
  fit.onclick = () => zoom("fit");

  // What the graph marks for a step: its node, or its row in an open box, or its closed box.
  const marked = (step) => page.nodes.get(step) ?? page.nodes.get(page.specs.get(step)?.copyOf);

  const select = (step) => {
    marked(page.selected)?.g.classList.remove("selected");
    page.rows.get(page.selected)?.row.classList.remove("selected");
    page.selected = step;
    marked(step)?.g.classList.add("selected");
    page.rows.get(step)?.row.classList.add("selected");
    page.logsFor = null;
    showPanel(step);
  };

  const showPanel = (step) => {
    const view = page.steps[step] || { phase: "Pending", phaseLabel: "Pending" };
    const spec = page.specs.get(step) || {};
    const facts = [
      ["type", spec.type], ["phase", view.phaseLabel || view.phase], ...matrixFacts(view, spec), ["group", view.groupLabel], ["reason", view.reason],
      ["message", view.message], ["exit code", view.exitCode], ["attempts", view.attempts], ["job", view.jobName],
      ["started", view.startedAt], ["finished", view.finishedAt],
      ["duration", view.start != null ? duration((view.end ?? (serverNow() - page.origin)) - view.start) : null],
      ["termination message", view.terminationMessage],
    ].filter(([, v]) => v !== undefined && v !== null && v !== "");
    const list = el("dl");
    for (const [k, v] of facts) list.append(el("dt", { text: k }), el("dd", { "data-field": k.replace(/ /g, "-"), text: String(v) }));
    const children = [el("h2", { text: step }), ...copyOf(view, spec, select), list, ...matrixSection(view, spec)];
    if (spec.params && Object.keys(spec.params).length) {
      const params = el("table", { class: "params" });
      for (const [k, v] of Object.entries(spec.params)) params.append(el("tr", {}, el("td", { text: k }), el("td", { text: v })));
      children.push(el("h2", { text: "Params" }), params);
    }
    if (view.outputs && Object.keys(view.outputs).length) {
      const outputs = el("table", { class: "outputs" });
      for (const [k, v] of Object.entries(view.outputs)) outputs.append(el("tr", {}, el("td", { text: k }), el("td", { text: v })));
      children.push(el("h2", { text: "Outputs" }), outputs);
    }
    const note = noLog(view, spec);
    if (note) {
      children.push(el("p", { class: "muted", text: note }));
      panel.replaceChildren(...children);
      return;
    }
    const logs = el("pre", { class: "logs", text: page.logText ?? "…" });
    const refresh = el("button", { type: "button", text: "reload" });
    children.push(el("div", { class: "toolbar" }, el("h2", { text: "Log (last 200 lines)" }), refresh), logs);
    panel.replaceChildren(...children);
    refresh.onclick = () => { page.logsFor = null; loadLogs(step, logs); };
    const version = `${step}:${view.phase}:${view.attempts}`;
    if (!view.jobName) {
      page.logText = "(not started: no logs yet)";
      logs.textContent = page.logText;
    } else if (page.logsFor !== version) loadLogs(step, logs, version);
  };

  const loadLogs = async (step, pre, version = null) => {
    page.logsFor = version;
    page.logText = "…";
    pre.textContent = "…";
    const url = `/api/workflows/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/steps/${encodeURIComponent(step)}/logs`;
    try {
      const response = await fetch(url);
      const text = await response.text();
      page.logText = response.ok ? text || "(the log is empty)" : text || `(no logs: ${response.status})`;
    } catch (error) {
      page.logText = `(no logs: ${error})`;
    }
    // The panel may have been drawn again meanwhile (an update of the step): fill the live one.
    const live = panel.querySelector("pre.logs");
    if (page.selected === step && live) live.textContent = page.logText;
  };

  const drawGantt = (order) => {
    gantt.replaceChildren();
    page.rows.clear();
    for (const step of order) {
      const bar = el("div", { class: "bar", "data-phase": "Pending" });
      const row = el("div", { class: "row", "data-step": step },
        el("span", { class: "label", text: step, title: step }), el("span", { class: "group" }),
        el("div", { class: "track" }, bar));
      row.onclick = () => select(step);
      const entry = {
        row, bar,
        update(view) {
          bar.dataset.phase = view.phase;
          if (view.matrix) row.firstChild.textContent = `${step} (${Object.values(view.matrix).join(", ")})`;
          row.children[1].textContent = view.groupLabel || "";
          bar.hidden = view.start == null || view.kept;
          bar.style.setProperty("--start", view.start ?? 0);
          bar.style.setProperty("--end", view.end ?? view.start ?? 0);
          bar.title = `${step}: ${view.phaseLabel || view.phase}`;
        },
      };
      page.rows.set(step, entry);
      gantt.append(row);
    }
  };

  const tickGantt = () => {
    if (page.origin == null) return;
    const running = page.summary && !page.summary.finishedAt;
    const now = serverNow() - page.origin;
    let span = page.summary?.finishedAt ? page.summary.finishedAt - page.origin : 0;
    for (const [step, view] of Object.entries(page.steps)) {
      if (view.kept || view.start == null) continue;
      const end = view.end ?? now;
      span = Math.max(span, end);
      if (view.end == null) page.rows.get(step)?.bar.style.setProperty("--end", end);
    }
    if (running) span = Math.max(span, now);
    span = Math.max(span, 0.001);
    gantt.style.setProperty("--span", span);
    const ticks = axis.querySelector(".ticks");
    ticks.style.setProperty("--span", span);
    const step = niceStep(span / 6);
    const labels = [];
    for (let t = 0; t <= span + 1e-9; t += step) labels.push(t);
    if (ticks.childElementCount !== labels.length || ticks.dataset.step !== String(step)) {
      ticks.dataset.step = step;
      ticks.replaceChildren(...labels.map((t) => {
        const tick = el("span", { class: "tick", text: duration(t) || "0s" });
        tick.style.setProperty("--at", t);
        return tick;
      }));
    }
  };

  const drawGraph = async (graph, refit = true) => {
    errors.textContent = graph.errors ? `This workflow is invalid:\n${graph.errors.join("\n")}` : "";
    const started = performance.now();
    const layout = await layOut(graph, page.open);
    probe.layoutMs = performance.now() - started;
    layoutNote.textContent = `${stepCount(graph)} steps, laid out in ${Math.round(probe.layoutMs)} ms`;
    page.nodes.clear();
    const width = layout.width + 20, height = layout.height + BAND_TITLE + 20;
    page.size = { width, height };
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "workflow graph" });
    const defs = svg("defs");
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
    defs.append(marker);
    root.append(defs);
    const content = svg("g", { transform: `translate(10, ${BAND_TITLE + 10})` });
    const byId = new Map(layout.children.map((n) => [n.id, n]));
    for (const group of graph.groups) {
      const members = graph.nodes.filter((n) => n.column === group.column && !n.join).map((n) => byId.get(n.id));
      if (!members.length) continue;
      const left = Math.min(...members.map((n) => n.x)) - 8, right = Math.max(...members.map((n) => n.x + n.width)) + 8;
      const band = svg("rect", { class: `band${group.finally ? " finally" : ""}`, x: left, y: -BAND_TITLE, width: right - left, height: layout.height + BAND_TITLE, rx: 4, "data-column": group.column });
      const label = svg("text", { class: "band-title", x: left + 6, y: -BAND_TITLE + 14 });
      label.textContent = group.title;
      content.append(band, label);
    }
    const edges = svg("g");
    for (const edge of layout.edges || []) {
      for (const section of edge.sections || []) {
        const points = [section.startPoint, ...(section.bendPoints || []), section.endPoint];
        const targetIsJoin = edge.targets[0].startsWith("#");
        edges.append(svg("path", {
          class: "edge", d: `M ${points.map((p) => `${p.x} ${p.y}`).join(" L ")}`,
          ...(targetIsJoin ? {} : { "marker-end": "url(#arrow)" }),
          "data-source": edge.sources[0], "data-target": edge.targets[0],
        }));
      }
    }
    content.append(edges);
    for (const node of graph.nodes) {
      const box = byId.get(node.id);
      if (node.join) {
        content.append(svg("circle", { class: "join", cx: box.x + box.width / 2, cy: box.y + box.height / 2, r: 3, "data-join": node.id }));
        continue;
      }
      if (isBox(node)) {
        const { whole, copies } = drawBox(node, box, { open: page.open.has(node.id), toggle, select });
        page.nodes.set(node.id, whole);
        for (const [copy, entry] of copies) page.nodes.set(copy, entry);
        content.append(whole.g);
        continue;
      }
      const g = svg("g", { class: "node", transform: `translate(${box.x}, ${box.y})`, "data-step": node.id, "data-column": node.column, "data-phase": "Pending", tabindex: 0 });
      const rect = svg("rect", { width: box.width, height: box.height });
      const text = svg("text", { x: 10, y: box.height / 2 });
      text.textContent = node.id;
      const tooltip = svg("title");
      g.append(tooltip, rect, text);
      g.addEventListener("click", () => select(node.id));
      g.addEventListener("keydown", (e) => { if (e.key === "Enter") select(node.id); });
      page.nodes.set(node.id, {
        g,
        update(view) {
          g.dataset.phase = view.phase;
          tooltip.textContent = [node.id, view.phaseLabel || view.phase, view.reason, view.message].filter(Boolean).join(" — ");
        },
      });
      content.append(g);
    }
    root.append(content);
    dag.replaceChildren(root);
    if (refit) page.scale = width > dag.clientWidth * 1.5 ? Math.min(1, (dag.clientWidth - 4) / width) : 1;
    zoom(1);
    for (const [step, node] of page.nodes) node.update(page.steps[step] || { phase: "Pending" });
    marked(page.selected)?.g.classList.add("selected");
  };

  // Opening or closing a box lays the graph out again, with the box's new size: the copies'
  // list takes room of its own instead of covering the steps around it.
  const toggle = (step) => {
    if (!page.open.delete(step)) page.open.add(step);
    ready = ready.then(async () => {
      await drawGraph(page.graph, false);
      page.nodes.get(step)?.g.scrollIntoView?.({ block: "nearest", inline: "nearest" });
    }).catch(showError);
  };

  const full = async (data) => {
    header(data);
    // The timeline has a bar per copy; a matrix step's own entry is its box in the graph.
    const order = Object.keys(data.steps).length
      ? Object.entries(data.steps).filter(([, v]) => v.copies == null).sort((a, b) => a[1].index - b[1].index).map(([s]) => s)
      : data.graph.nodes.filter((n) => !n.join).flatMap((n) => (n.copies ? n.copies.map((c) => c.id) : [n.id]));
    page.steps = {};
    page.graph = data.graph;
    page.specs = new Map(data.graph.nodes.filter((n) => !n.join).map((n) => [n.id, n]));
    for (const node of data.graph.nodes.filter((n) => n.copies)) {
      node.copies.forEach((c, i) => page.specs.set(c.id, { type: node.type, params: node.params, copyOf: node.id, copyIndex: i, values: c.matrix }));
    }
    page.nodes.clear();
    drawGantt(order);
    for (const [step, view] of Object.entries(data.steps)) applyStep(step, view);
    tickGantt(); // the timeline is up while the graph is laid out
    await drawGraph(data.graph);
    if (page.selected) select(page.selected);
    probe.renderedAt = performance.now();
    document.body.dataset.loaded = "workflow";
  };

  let ready = Promise.resolve();
  listen(`/api/events?workflow=${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`, {
    page: (data) => { ready = ready.then(() => full(data)).catch(showError); },
    steps: (data) => {
      ready = ready.then(() => {
        header(data);
        for (const [step, view] of Object.entries(data.steps)) applyStep(step, view);
        tickGantt();
      }).catch(showError);
    },
    deleted: () => { message.textContent = "There is no such workflow: it was deleted, or never existed."; badge.textContent = "gone"; },
  });
  every(1, () => {
    tickGantt();
    if (page.summary && !page.summary.finishedAt) header({ summary: page.summary, origin: page.origin, now: serverNow() });
  });

  function showError(error) {
    errors.textContent = `The page could not draw this workflow: ${error}`;
    console.warn(error);
  }
}

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 0.001)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * power) return m * power;
  return 10 * power;
}

// --- routing ------------------------------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#\/w\/([^/]+)\/([^/]+)$/);
  document.body.dataset.loaded = "";
  if (match) {
    workflowPage(decodeURIComponent(match[1]), decodeURIComponent(match[2]));
    document.title = `${decodeURIComponent(match[2])} · stepflow`;
  } else {
    listPage();
    document.title = "stepflow";
  }
}

async function start() {
  startLayoutWorker();
  const meta = await (await fetch("/api/meta")).json();
  document.getElementById("scope").textContent = meta.scope ? `namespace ${meta.scope}` : "all namespaces";
  window.addEventListener("hashchange", route);
  route();
}

start();
