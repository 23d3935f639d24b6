'use strict';
// Line charts on a canvas for the live view: a time axis (the last hour), a value axis from
// zero to a round maximum, one line per series. No library, no HTML strings.
window.LeasedCharts = (function () {
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) {
      if (m * p >= v) return m * p;
    }
    return 10 * p;
  }

  function fmt(v) {
    if (v >= 1000) return (v / 1000).toFixed(v % 1000 ? 1 : 0) + 'k';
    return String(Math.round(v * 100) / 100);
  }

  // series: [{name, color, points: [[unixSeconds, value or null], ...]}]
  // opts: {from, to} in unix seconds.
  function line(canvas, series, opts) {
    const ctx = canvas.getContext('2d');
    const W = canvas.width;
    const H = canvas.height;
    const left = 52;
    const right = 10;
    const top = 10;
    const bottom = 22;
    ctx.clearRect(0, 0, W, H);
    let max = 0;
    for (const s of series) {
      for (const p of s.points) {
        if (p[1] != null && p[1] > max) max = p[1];
      }
    }
    max = niceMax(max);
    const span = Math.max(1, opts.to - opts.from);
    const x = (t) => left + ((t - opts.from) / span) * (W - left - right);
    const y = (v) => H - bottom - (v / max) * (H - top - bottom);
    ctx.lineWidth = 1;
    ctx.strokeStyle = '#dde2e7';
    ctx.fillStyle = '#5f6b76';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(W - right, yy);
      ctx.stroke();
      ctx.fillText(fmt(v), left - 6, yy);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let i = 0; i <= 6; i++) {
      const ago = (span * i) / 6;
      const label = i === 0 ? 'now' : '−' + (span < 600 ? Math.round(ago) + ' s' : Math.round(ago / 60) + ' min');
      ctx.fillText(label, x(opts.to - ago), H - bottom + 5);
    }
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.6;
      ctx.beginPath();
      let pen = false;
      for (const [t, v] of s.points) {
        if (v == null || t < opts.from) {
          pen = false;
          continue;
        }
        const px = x(t);
        const py = y(v);
        if (pen) ctx.lineTo(px, py);
        else ctx.moveTo(px, py);
        pen = true;
      }
      ctx.stroke();
    }
  }

  return { line, niceMax };
})();
