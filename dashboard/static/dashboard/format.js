/* The operations console's numbers and times, as people read them: grouped digits, "3 s ago",
   "12 ms". Loaded before console.js (window.opsConsole). */
"use strict";

(() => {
  const ops = (window.opsConsole ??= {});
  const integer = new Intl.NumberFormat("en-US");

  const count = (n) => integer.format(n);

  function ago(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 1) return "just now";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  const absolute = (t) => new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");

  function duration(seconds) {
    if (seconds < 1) return `${+(seconds * 1000).toPrecision(3)} ms`;
    return `${+seconds.toPrecision(3)} s`;
  }

  const rate = (perSecond) => (perSecond >= 100 ? count(Math.round(perSecond)) : String(+perSecond.toFixed(1)));

  ops.format = { count, ago, absolute, duration, rate };
})();
