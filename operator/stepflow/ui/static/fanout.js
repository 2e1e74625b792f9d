// A matrix step (M6) on the workflow page: its copies are one box in the graph, which says the
// phase of the whole and counts the copies by phase; opened, it lists every copy with its values
// and phase, in a list of fixed height that scrolls, so that 256 copies never become 256 nodes.

import { el, svg } from "./dom.js";

const HEAD = 44; // the closed box: the step's name, then its copies' count or where its list comes from
const ROW = 20; // one copy in the open box's list (style.css: .copies .copy)
const ROWS = 10; // copies shown at once; the rest scroll
const OPEN_WIDTH = 380;

export const isBox = (node) => Boolean(node.copies || node.fanOut);

// How many steps the graph stands for: each copy counts, as in the workflow's progress.
export const stepCount = (graph) =>
  graph.nodes.reduce((n, node) => n + (node.join ? 0 : node.copies ? node.copies.length : 1), 0);

const values = (matrix) => Object.values(matrix || {}).join(" · ");
const pairs = (matrix) => Object.entries(matrix || {}).map(([k, v]) => `${k}=${v}`).join(", ");
// A list from an output that never made copies (MatrixEmpty, MatrixInvalid) says why first.
const countText = (node, view) => node.copies ? view?.copiesLabel || `${node.copies.length} copies`
  : view?.reason?.startsWith("Matrix") ? `${view.reason}: ${node.fanOut}` : node.fanOut;

export function boxSize(node, open) {
  const text = Math.max(7.2 * node.id.length + 40, 6.4 * (node.fanOut || "256 copies: 256 ✓ 256 pending").length + 24);
  const width = Math.min(460, Math.max(220, text));
  if (!open || !node.copies) return { width, height: HEAD };
  return { width: Math.max(width, OPEN_WIDTH), height: HEAD + 8 + Math.min(node.copies.length, ROWS) * ROW };
}

// The box of a matrix step, laid out at ``box``: { whole: the page's entry for the step,
// copies: [[copy, its entry]] (the rows of an open box) }. Entries have ``g`` (the element the
// selection marks) and ``update(view)``, as a plain step's node has.
export function drawBox(node, box, { open, toggle, select }) {
  open = open && Boolean(node.copies);
  const g = svg("g", { class: "node matrix", transform: `translate(${box.x}, ${box.y})`, "data-step": node.id,
    "data-column": node.column, "data-phase": "Pending", "data-open": String(open), tabindex: 0,
    role: "button", "aria-label": `${node.id}: matrix step` });
  if (node.copies) g.setAttribute("aria-expanded", String(open));
  const tooltip = svg("title");
  // Two rects, the back one offset: a stack of cards, where a plain step is one.
  const back = svg("rect", { class: "stack", x: 4, y: 0, width: box.width - 4, height: HEAD - 4 });
  const front = svg("rect", { x: 0, y: 4, width: box.width - 4, height: box.height - 4 });
  const name = svg("text", { class: "name", x: 10, y: 17 });
  name.textContent = node.copies ? `${open ? "▾" : "▸"} ${node.id}` : node.id;
  const count = svg("text", { class: "count", x: 10, y: 34 });
  g.append(tooltip, back, front, name, count);
  const activate = () => { select(node.id); if (node.copies) toggle(node.id); };
  g.addEventListener("click", activate);
  g.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === g) activate(); });
  const whole = {
    g,
    update(view) {
      g.dataset.phase = view.phase;
      fit(count, countText(node, view), box.width - 20);
      tooltip.textContent = [node.id, view.phaseLabel || view.phase, countText(node, view), view.reason, view.message]
        .filter(Boolean).join(" — ");
    },
  };
  const copies = [];
  if (open && node.copies) {
    const list = el("div", { class: "copies", role: "list", "aria-label": `copies of ${node.id}` });
    list.addEventListener("click", (e) => e.stopPropagation()); // its scrollbar, its rows: not the box
    list.addEventListener("keydown", (e) => e.stopPropagation());
    node.copies.forEach((copy, i) => {
      const phase = el("span", { class: "phase", text: "Pending" });
      const row = el("div", { class: "copy", role: "listitem", tabindex: 0, "data-step": copy.id, "data-phase": "Pending" },
        el("span", { class: "i", text: String(i) }), el("span", { class: "values", text: values(copy.matrix) }), phase);
      row.addEventListener("click", () => select(copy.id));
      row.addEventListener("keydown", (e) => { if (e.key === "Enter") select(copy.id); });
      copies.push([copy.id, {
        g: row,
        update(view) {
          row.dataset.phase = view.phase;
          phase.textContent = view.phaseLabel || view.phase;
          row.title = [`${copy.id}: ${pairs(copy.matrix)}`, view.phaseLabel || view.phase, view.reason, view.message]
            .filter(Boolean).join(" — ");
        },
      }]);
      list.append(row);
    });
    const frame = svg("foreignObject", { x: 6, y: HEAD, width: box.width - 16, height: box.height - HEAD - 6 });
    frame.append(list);
    g.append(frame);
  }
  return { whole, copies };
}

// Sets a line of the box, cut short with "…" when it is wider than the box (the tooltip has it all).
function fit(text, value, width) {
  text.textContent = value;
  if (!text.isConnected || text.getComputedTextLength() <= width) return;
  let keep = value.length;
  while (keep > 1 && text.getComputedTextLength() > width) text.textContent = `${value.slice(0, --keep)}…`;
}

// What the step panel adds for a matrix step or a copy: facts for its list, then sections.
export function matrixFacts(view, spec) {
  if (spec.copies || view.copies) return [["copies", view.copiesLabel || `${(spec.copies || []).length} copies`]];
  if (spec.fanOut) return [["fans out", spec.fanOut]];
  return [];
}

// A copy's panel says whose copy it is, under its name: "copy 3 of deploy", the name a link.
export function copyOf(view, spec, select) {
  const whole = view.matrixOf ?? spec.copyOf;
  if (whole == null) return [];
  const link = el("button", { type: "button", class: "link", text: whole, title: `show ${whole}` });
  link.onclick = () => select(whole);
  return [el("p", { class: "copy-of" }, `copy ${view.copyIndex ?? spec.copyIndex} of `, link)];
}

// A copy's values, or a matrix step's lists as written (a long list cut short).
export function matrixSection(view, spec) {
  if ((view.matrixOf ?? spec.copyOf) != null) return [el("h2", { text: "Matrix" }), table(Object.entries(view.matrix || spec.values || {}))];
  if (!spec.matrix) return [];
  const listed = (v) => v.length <= 12 ? v.join(", ") : `${v.slice(0, 12).join(", ")}, … (${v.length} values)`;
  const axes = Object.entries(spec.matrix).map(([k, v]) => [k, Array.isArray(v) ? listed(v)
    : `from output ${v.fromOutput.output} of ${v.fromOutput.step}`]);
  return [el("h2", { text: "Matrix" }), table(axes)];
}

function table(rows) {
  const t = el("table", { class: "matrix" });
  for (const [k, v] of rows) t.append(el("tr", {}, el("td", { text: k }), el("td", { text: v })));
  return t;
}

// A matrix step runs as its copies and the logs are theirs: what its panel says instead of a log.
export function noLog(view, spec) {
  if (spec.copies || view.copies) return "A matrix step runs as its copies, each with its own log: select one in its box or in the timeline.";
  if (!spec.fanOut) return null;
  return view.finishedAt ? "No copy ran, so there is no log." : "Its copies, each with its own log, are made when the run reads its list.";
}
