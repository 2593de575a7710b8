/* The operations console's small charts: inline SVG drawn from the state's points, one per
   10-second bucket, no library. Loaded after dom.js and before console.js (window.opsConsole). */
"use strict";

(() => {
  const ops = (window.opsConsole ??= {});
  const { svg } = ops.dom;
  const CHART_W = 300;
  const CHART_H = 48;
  const LATENCY_FLOOR_S = 0.001; // the histogram's smallest bucket

  /* An SVG path through [x, y] points, broken where a point is null. Each run starts with a
     zero-length segment, so a lone point still shows as a dot (round caps). */
  function line(points, cls) {
    let d = "";
    let drawing = false;
    for (const point of points) {
      if (!point) {
        drawing = false;
        continue;
      }
      const [x, y] = point.map((v) => v.toFixed(1));
      d += drawing ? `L${x},${y}` : `M${x},${y}h0`;
      drawing = true;
    }
    return svg("path", { d, class: cls, "vector-effect": "non-scaling-stroke" });
  }

  function chart(label) {
    // Stretched to the width it is given; the lines keep their width (non-scaling-stroke).
    return svg("svg", {
      viewBox: `0 0 ${CHART_W} ${CHART_H}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": label,
      class: "ops-chart",
    });
  }

  const xOf = (points) => {
    const first = points.length ? points[0][0] : 0;
    const span = points.length > 1 ? points[points.length - 1][0] - first : 1;
    return (t) => ((t - first) / span) * CHART_W;
  };

  function drawRate(node, points) {
    const x = xOf(points);
    const top = Math.max(1, ...points.map((p) => p[1]));
    const y = (v) => CHART_H - 1 - (v / top) * (CHART_H - 2);
    node.replaceChildren(line(points.map(([t, v]) => [x(t), y(v)]), "rate"));
  }

  function drawLatency(node, points, ceiling) {
    const x = xOf(points);
    const low = Math.log10(LATENCY_FLOOR_S);
    const span = Math.log10(ceiling) - low;
    // Past the ceiling (a null quantile of a bucket that had data) is drawn at the top.
    const y = (v) => (v == null ? 1 : CHART_H - 1 - ((Math.log10(v) - low) / span) * (CHART_H - 2));
    const quantile = (i) => points.map((p) => (p[3] ? [x(p[0]), y(p[i])] : null));
    node.replaceChildren(line(quantile(1), "p50-line"), line(quantile(2), "p99-line"));
  }

  ops.charts = { chart, drawRate, drawLatency };
})();
