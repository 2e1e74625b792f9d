// The graph's layout: elkjs in a web worker, so a 1,000-step graph never blocks the page.

import { boxSize, isBox } from "./fanout.js";

const NODE_HEIGHT = 28;

let elk = null;

export function startLayoutWorker() {
  // Started with the page, so the worker parses its 1.6 MB script while the stream connects.
  elk ??= new window.ELK({ workerUrl: "/static/vendor/elk-worker.min.js" });
}

// ``open``: the matrix steps whose box is open, and so as tall as its list of copies.
export async function layOut(graph, open) {
  startLayoutWorker();
  const large = graph.nodes.length > 300;
  const size = (n) => n.join ? { width: 8, height: 8 }
    : isBox(n) ? boxSize(n, open.has(n.id)) : { width: Math.min(460, 24 + 7.2 * n.id.length), height: NODE_HEIGHT };
  const children = graph.nodes.map((n) => ({
    id: n.id,
    ...size(n),
    layoutOptions: { "elk.partitioning.partition": String(n.column) },
  }));
  const edges = graph.edges.map(([source, target], i) => ({ id: `e${i}`, sources: [source], targets: [target] }));
  return elk.layout({
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "RIGHT",
      "elk.partitioning.activate": "true", // groups as columns, in the plan's order
      "elk.separateConnectedComponents": "false", // or each component would get its own columns
      "elk.edgeRouting": "POLYLINE",
      // Past a few hundred nodes, speed over polish: one sweep of crossing reduction and the
      // simple node placement (half the time of Brandes-Koepf for 1,000 steps).
      "elk.layered.thoroughness": large ? "1" : "7",
      "elk.layered.nodePlacement.strategy": large ? "SIMPLE" : "BRANDES_KOEPF",
      "elk.layered.spacing.nodeNodeBetweenLayers": "36",
      "elk.spacing.nodeNode": "10",
    },
    children,
    edges,
  });
}
