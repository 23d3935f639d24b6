'use strict';
// The leased dashboard. Plain JavaScript, no framework: every node is built with
// createElement/textContent (never HTML strings), so nothing a client sent (a host name, a
// circuit-id) can become markup. Data comes from /ui/api/… with the session cookie; writes
// carry the session's CSRF token.
(function () {
  const $ = (id) => document.getElementById(id);
  let csrf = null;

  // ---- small helpers ------------------------------------------------------------------
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null) continue;
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else if (k === 'on') for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
        else if (k === 'data') for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = dv;
        else e.setAttribute(k, v);
      }
    }
    for (const c of children) {
      if (c == null) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  const num = (n) => Number(n || 0).toLocaleString('en-US');
  const pct = (a, b) => (b > 0 ? Math.round((1000 * a) / b) / 10 : 0);

  function ipToInt(ip) {
    return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  }
  function intToIp(n) {
    return [24, 16, 8, 0].map((s) => Math.floor(n / Math.pow(2, s)) % 256).join('.');
  }

  function isoTime(unix) {
    if (!unix) return '—';
    return new Date(unix * 1000).toISOString().replace('T', ' ').replace('.000Z', '');
  }

  function ago(unix, now) {
    const d = Math.round(unix - now);
    const a = Math.abs(d);
    const text = a < 90 ? a + ' s' : a < 5400 ? Math.round(a / 60) + ' min' : a < 129600 ? Math.round(a / 3600) + ' h' : Math.round(a / 86400) + ' d';
    return d >= 0 ? 'in ' + text : text + ' ago';
  }

  async function api(path, opts) {
    const o = { method: 'GET', credentials: 'same-origin', headers: {} };
    if (opts && opts.method) o.method = opts.method;
    if (o.method !== 'GET') o.headers['X-CSRF-Token'] = csrf || '';
    if (opts && opts.body !== undefined) {
      o.headers['Content-Type'] = 'application/json';
      o.body = JSON.stringify(opts.body);
    }
    const r = await fetch(path, o);
    if (r.status === 401) {
      location.assign('/ui/login');
      throw new Error('the session has ended');
    }
    const text = await r.text();
    let body = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch (_) {
        body = { message: text };
      }
    }
    if (!r.ok) {
      const e = new Error((body && body.message) || r.status + ' ' + r.statusText);
      e.status = r.status;
      e.errors = (body && body.errors) || [];
      throw e;
    }
    return body;
  }

  function banner(err) {
    const b = $('banner');
    if (!err) {
      b.hidden = true;
      return;
    }
    b.textContent = String(err.message || err);
    b.hidden = false;
  }

  // ---- tabs -----------------------------------------------------------------------------
  const TABS = ['overview', 'leases', 'reservations', 'live', 'network'];
  let current = null;
  const onShow = {};

  function show(tab) {
    if (!TABS.includes(tab)) tab = 'overview';
    current = tab;
    for (const t of TABS) $('tab-' + t).hidden = t !== tab;
    for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === tab);
    if (onShow[tab]) onShow[tab]();
  }

  // ---- overview: subnets, pools, the grid -----------------------------------------------
  // The grid's palette (dhcplane's, as `leased stats --grid`): red held, green free, brown
  // reserved, greys never handed out.
  const KIND = {
    L: ['bound', [198, 40, 40]],
    O: ['offered', [239, 130, 130]],
    M: ['banned MAC', [176, 176, 176]],
    D: ['declined (quarantine)', [142, 36, 170]],
    R: ['reserved', [161, 110, 35]],
    X: ['never handed out', [84, 84, 84]],
    E: ['free (lease ended)', [150, 205, 152]],
    '.': ['free (never used)', [67, 160, 71]],
    ' ': ['outside the pools', [236, 238, 240]],
  };
  const rgb = (c) => 'rgb(' + c.join(',') + ')';

  let overview = null;
  let selected = null;
  let gridData = null;
  let firstRender = false;

  function card(value, label, id) {
    return el('div', { class: 'card' }, el('div', { class: 'v', id }, value), el('div', { class: 'k' }, label));
  }

  function renderOverview(ov) {
    overview = ov;
    const c = ov.counts.ip_counts;
    let assigned = 0;
    let usable = 0;
    for (const s of ov.subnets) {
      for (const p of s.pools) {
        assigned += p.assigned + p.declined;
        usable += p.assigned + p.declined + p.free;
      }
    }
    clear($('totals')).append(
      card(num(ov.subnets.length), 'subnets', 'total-subnets'),
      card(num(c.total), 'pool addresses', 'total-pool'),
      card(num(c.active), 'active leases', 'total-active'),
      card(pct(assigned, usable) + ' %', 'pools in use', 'total-util'),
      card(num(c.static), 'reservations', 'total-static'),
      card(num(ov.leases), 'lease records', 'total-records'),
    );
    $('server-info').textContent = 'v' + ov.version + ' · up ' + ago(0, ov.uptime_seconds).replace(' ago', '') + ' · snapshot ' + ov.snapshot_age_seconds + ' s old';
    const body = clear($('subnets').tBodies[0]);
    for (const s of ov.subnets) {
      const pools = el('td');
      for (const p of s.pools) {
        const usableP = p.assigned + p.declined + p.free;
        const bar = el('span', { class: 'bar', title: num(p.assigned) + ' assigned, ' + num(p.declined) + ' declined, ' + num(p.free) + ' free' });
        const used = el('span', { class: 'used' });
        used.style.width = pct(p.assigned, usableP) + '%';
        const dec = el('span', { class: 'declined' });
        dec.style.width = pct(p.declined, usableP) + '%';
        bar.append(used, dec);
        pools.append(el('span', { class: 'pool' }, bar, p.start + '–' + p.end + ' ', el('span', { class: 'muted' }, pct(p.assigned + p.declined, usableP) + ' % (' + num(p.assigned) + ' · ' + num(p.declined) + ' · ' + num(p.free) + ')')));
      }
      const tr = el(
        'tr',
        { class: 'click' + (s.subnet === selected ? ' selected' : ''), data: { subnet: s.subnet }, on: { click: () => selectSubnet(s.subnet) } },
        el('td', { text: s.subnet }),
        el('td', { text: s.shared_network || '' }),
        pools,
        el('td', { class: 'num', text: num(s.ips.active) }),
        el('td', { class: 'num', text: num(s.ips.released) }),
        el('td', { class: 'num', text: num(s.ips.free) }),
        el('td', { class: 'num', text: num(s.ips.unused) }),
        el('td', { class: 'num', text: num(s.ips.static) }),
      );
      body.append(tr);
    }
    if (!ov.subnets.length) body.append(el('tr', null, el('td', { class: 'empty', colspan: 8, text: 'No subnet is configured.' })));
  }

  async function selectSubnet(subnet, from) {
    selected = subnet;
    for (const tr of $('subnets').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.subnet === subnet);
    const q = '/ui/api/grid?subnet=' + encodeURIComponent(subnet) + (from ? '&from=' + encodeURIComponent(from) : '');
    drawGrid(await api(q));
  }

  function drawGrid(g) {
    gridData = g;
    $('grid-panel').hidden = false;
    const n = g.cells.length;
    $('grid-title').textContent = g.subnet + (g.next || g.first !== g.subnet.split('/')[0] ? ' from ' + g.first + ' (' + num(n) + ' of ' + num(g.size) + ' addresses)' : ' (' + num(n) + ' addresses)');
    const legend = clear($('grid-legend'));
    for (const [k, , count] of g.counts) {
      if (!count) continue;
      const sw = el('span', { class: 'sw' });
      sw.style.background = rgb(KIND[k][1]);
      legend.append(el('span', { id: 'grid-count-' + (k === '.' ? 'unused' : k === ' ' ? 'outside' : k), data: { count: String(count) } }, sw, KIND[k][0] + ' ' + num(count)));
    }
    const perRow = n >= 4096 ? 256 : n >= 1024 ? 64 : n >= 128 ? 32 : 16;
    const rows = Math.ceil(n / perRow);
    const cell = Math.max(2, Math.min(22, Math.floor(1024 / perRow)));
    const canvas = $('grid');
    canvas.width = perRow * cell;
    canvas.height = rows * cell;
    Object.assign(canvas.dataset, { perRow: String(perRow), cell: String(cell), first: g.first, count: String(n) });
    const ctx = canvas.getContext('2d');
    if (cell >= 6) {
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < n; i++) {
        ctx.fillStyle = rgb(KIND[g.cells[i]][1]);
        ctx.fillRect((i % perRow) * cell, Math.floor(i / perRow) * cell, cell - 1, cell - 1);
      }
    } else {
      // One pixel per address, scaled up without smoothing: a /15 in a few milliseconds.
      const off = document.createElement('canvas');
      off.width = perRow;
      off.height = rows;
      const octx = off.getContext('2d');
      const img = octx.createImageData(perRow, rows);
      const px = img.data;
      for (let i = 0; i < n; i++) {
        const c = KIND[g.cells[i]][1];
        const o = i * 4;
        px[o] = c[0];
        px[o + 1] = c[1];
        px[o + 2] = c[2];
        px[o + 3] = 255;
      }
      octx.putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    }
    $('grid-pages').hidden = !g.next && g.first === g.subnet.split('/')[0];
    $('grid-next').hidden = !g.next;
  }

  // Hover: the address and its state at once, the lease's details a moment later.
  const details = new Map();
  let hoverTimer = null;
  let hoverIp = null;

  function cellAt(ev) {
    const canvas = $('grid');
    if (!gridData) return null;
    // Pointer position in the canvas's own pixels (inside its border, whatever its CSS size).
    const r = canvas.getBoundingClientRect();
    const scale = canvas.width / (canvas.clientWidth || canvas.width);
    const cell = Number(canvas.dataset.cell);
    const perRow = Number(canvas.dataset.perRow);
    const px = (ev.clientX - r.left - canvas.clientLeft) * scale;
    const py = (ev.clientY - r.top - canvas.clientTop) * scale;
    const x = Math.floor(px / cell);
    const y = Math.floor(py / cell);
    if (x < 0 || x >= perRow || y < 0) return null;
    const i = y * perRow + x;
    if (i >= gridData.cells.length) return null;
    return { i, ip: intToIp(ipToInt(gridData.first) + i), kind: gridData.cells[i], x: ev.clientX - r.left, y: ev.clientY - r.top };
  }

  function tipText(c) {
    const lines = [c.ip + ' — ' + KIND[c.kind][0]];
    const d = details.get(c.ip);
    if (d) {
      lines.push(d.mac + (d.hostname ? '  ' + d.hostname : ''));
      lines.push(d.state + ', ends ' + isoTime(d.expires) + ' UTC');
    }
    return lines.join('\n');
  }

  function onGridMove(ev) {
    const c = cellAt(ev);
    const tip = $('grid-tip');
    if (!c) {
      tip.hidden = true;
      return;
    }
    tip.hidden = false;
    tip.textContent = tipText(c);
    tip.dataset.ip = c.ip;
    tip.dataset.kind = c.kind;
    tip.style.left = c.x + 14 + 'px';
    tip.style.top = c.y + 14 + 'px';
    if (hoverIp === c.ip) return;
    hoverIp = c.ip;
    clearTimeout(hoverTimer);
    if (details.has(c.ip) || c.kind === '.' || c.kind === ' ' || c.kind === 'X') return;
    hoverTimer = setTimeout(async () => {
      try {
        const page = await api('/ui/api/leases?limit=1&ip=' + encodeURIComponent(c.ip));
        if (page.leases.length) details.set(c.ip, page.leases[0]);
        if (hoverIp === c.ip && !tip.hidden) tip.textContent = tipText(c);
      } catch (_) {
        /* the tooltip keeps what it has */
      }
    }, 150);
  }

  async function loadOverview() {
    const ov = await api('/ui/api/overview');
    details.clear();
    renderOverview(ov);
    const known = ov.subnets.some((s) => s.subnet === selected);
    if (!known) selected = ov.subnets.length ? ov.subnets[0].subnet : null;
    if (selected) await selectSubnet(selected, gridData && gridData.subnet === selected && gridData.first);
    if (!firstRender) {
      firstRender = true;
      // After the frame that shows the grid has been painted.
      requestAnimationFrame(() =>
        setTimeout(() => {
          performance.mark('leased:first-render');
          document.body.dataset.rendered = '1';
        }, 0),
      );
    }
  }

  // ---- leases: search and history -------------------------------------------------------
  const PAGE = 50;
  let search = { params: null, offset: 0 };

  function fieldFor(text) {
    const t = text.trim();
    if (/^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i.test(t) || /^[0-9a-f]{12}$/i.test(t)) return 'mac';
    if (/^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/.test(t)) return 'ip';
    return 'hostname';
  }

  async function runSearch(offset) {
    const text = $('search-text').value.trim();
    let field = $('search-field').value;
    if (field === 'auto') field = text ? fieldFor(text) : null;
    const p = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (field && text) p.set(field, text);
    search = { params: p, offset };
    const body = clear($('lease-results').tBodies[0]);
    try {
      const page = await api('/ui/api/leases?' + p.toString());
      const now = Date.now() / 1000;
      $('search-summary').textContent = num(page.total) + (page.total === 1 ? ' lease' : ' leases') + (field && text ? ' with ' + field.replace('_', '-') + ' ' + text : '') + (page.total > PAGE ? ', showing ' + num(offset + 1) + '–' + num(offset + page.leases.length) : '');
      for (const l of page.leases) {
        body.append(
          el(
            'tr',
            { class: 'click', data: { ip: l.ip, mac: l.mac }, on: { click: () => loadHistory({ mac: l.mac, ip: l.ip }, 'mac') } },
            el('td', { text: l.ip }),
            el('td', { text: l.mac }),
            el('td', { text: l.hostname || '' }),
            el('td', { text: l.state }),
            el('td', { text: isoTime(l.expires) + ' (' + ago(l.expires, now) + ')' }),
            el('td', { text: l.subnet || '' }),
            el('td', { text: l.circuit_id || '' }),
            el('td', { text: l.remote_id || '' }),
            el('td', { text: l.reserved ? 'yes' : '' }),
          ),
        );
      }
      if (!page.leases.length) body.append(el('tr', null, el('td', { class: 'empty', colspan: 9, text: 'No lease matches.' })));
      $('search-pages').hidden = page.total <= PAGE;
      $('search-prev').disabled = offset === 0;
      $('search-next').disabled = offset + PAGE >= page.total;
    } catch (e) {
      $('search-summary').textContent = '';
      body.append(el('tr', null, el('td', { class: 'empty error', colspan: 9, text: e.message })));
    }
  }

  let historyOf = null;

  async function loadHistory(who, by) {
    historyOf = who;
    $('history-panel').hidden = false;
    $('history-title').textContent = by === 'mac' ? 'History of client ' + who.mac : 'History of address ' + who.ip;
    const body = clear($('history').tBodies[0]);
    try {
      const q = by === 'mac' ? 'mac=' + encodeURIComponent(who.mac) : 'ip=' + encodeURIComponent(who.ip);
      const h = await api('/ui/api/history?' + q);
      $('history-note').textContent = (h.truncated ? 'the newest ' + h.records.length + ' events, ' : '') + 'from the ' + (h.source === 'sql' ? 'leased_history table' : 'history file');
      for (const r of h.records.slice().reverse()) {
        body.append(
          el('tr', { data: { event: r.event } },
            el('td', { text: isoTime(r.at) }),
            el('td', { text: r.event }),
            el('td', { text: r.mac }),
            el('td', { text: r.ip }),
            el('td', { text: r.giaddr || '' }),
            el('td', { text: r.hostname || '' }),
            el('td', { text: r.circuit_id || '' }),
            el('td', { text: r.remote_id || '' }),
          ),
        );
      }
      if (!h.records.length) body.append(el('tr', null, el('td', { class: 'empty', colspan: 8, text: 'No event recorded.' })));
    } catch (e) {
      body.append(el('tr', null, el('td', { class: 'empty error', colspan: 8, text: e.message })));
    }
  }

  // ---- reservations ---------------------------------------------------------------------
  let editing = null;

  function resetForm() {
    editing = null;
    for (const f of ['mac', 'ip', 'hostname', 'note']) $('res-' + f).value = '';
    $('res-ip').disabled = false;
    $('res-submit').textContent = 'Add reservation';
    $('res-cancel').hidden = true;
  }

  function resError(e) {
    const box = $('res-error');
    if (!e) {
      box.hidden = true;
      return;
    }
    clear(box).append(el('div', { text: e.message }));
    for (const line of e.errors || []) box.append(el('div', { class: 'muted', text: line }));
    box.hidden = false;
  }

  function resDone(text) {
    $('res-done').textContent = text;
    $('res-done').hidden = !text;
  }

  async function loadReservations() {
    const body = clear($('res-table').tBodies[0]);
    let list;
    try {
      list = await api('/ui/api/reservations');
    } catch (e) {
      resError(e);
      return;
    }
    for (const r of list) {
      const client = r.mac || (r.client_id ? 'client-id ' + r.client_id : r.relay_key || '');
      const remove = el('button', { type: 'button', class: 'danger', data: { action: 'remove' }, text: 'Remove' });
      remove.addEventListener('click', async () => {
        if (remove.dataset.armed !== '1') {
          remove.dataset.armed = '1';
          remove.textContent = 'Confirm removal';
          return;
        }
        remove.disabled = true;
        try {
          await api('/ui/api/reservations/' + encodeURIComponent(r.ip), { method: 'DELETE' });
          resError(null);
          resDone('Removed the reservation of ' + r.ip + '; the server runs without it now.');
          if (editing === r.ip) resetForm();
        } catch (e) {
          resError(e);
        }
        loadReservations();
      });
      const edit = el('button', { type: 'button', data: { action: 'edit' }, text: 'Edit' });
      edit.addEventListener('click', () => {
        editing = r.ip;
        $('res-mac').value = r.mac || '';
        $('res-ip').value = r.ip;
        $('res-ip').disabled = true;
        $('res-hostname').value = r.hostname || '';
        $('res-note').value = r.note || '';
        $('res-submit').textContent = 'Save ' + r.ip;
        $('res-cancel').hidden = false;
        $('res-mac').focus();
      });
      body.append(
        el('tr', { data: { ip: r.ip } },
          el('td', { text: r.ip }),
          el('td', { text: r.subnet }),
          el('td', { text: client }),
          el('td', { text: r.hostname || '' }),
          el('td', { text: r.note || '' }),
          el('td', null, edit, ' ', remove),
        ),
      );
    }
    if (!list.length) body.append(el('tr', null, el('td', { class: 'empty', colspan: 6, text: 'No reservation.' })));
  }

  async function saveReservation(ev) {
    ev.preventDefault();
    const body = {};
    for (const f of ['mac', 'hostname', 'note']) {
      const v = $('res-' + f).value.trim();
      if (v) body[f] = v;
    }
    const ip = editing || $('res-ip').value.trim();
    body.ip = ip;
    $('res-submit').disabled = true;
    try {
      if (editing) await api('/ui/api/reservations/' + encodeURIComponent(editing), { method: 'PUT', body });
      else await api('/ui/api/reservations', { method: 'POST', body });
      resError(null);
      resDone((editing ? 'Saved ' : 'Reserved ') + ip + '; the server uses it from its next packet.');
      resetForm();
    } catch (e) {
      resDone('');
      resError(e);
    }
    $('res-submit').disabled = false;
    loadReservations();
  }

  // ---- live: DORA/s, drops, latency -------------------------------------------------------
  const HOUR = 3600;
  let samples = [];
  let liveDirty = false;
  const DORA = [
    ['discover', 'DISCOVER received', '#1f5fa8'],
    ['offer', 'OFFER sent', '#7cb342'],
    ['request', 'REQUEST received', '#f9a825'],
    ['ack', 'ACK sent', '#c62828'],
    ['nak', 'NAK sent', '#6a1b9a'],
  ];
  const DROP_COLORS = ['#b3261e', '#ef6c00', '#6d4c41', '#5e35b1', '#00838f', '#ad1457', '#558b2f', '#37474f'];

  function legend(id, items) {
    const box = clear($(id));
    for (const [name, color] of items) {
      const sw = el('span', { class: 'sw' });
      sw.style.background = color;
      box.append(el('span', null, sw, name));
    }
  }

  function drawLive() {
    liveDirty = false;
    const last = samples[samples.length - 1];
    const to = last ? last.t : Math.floor(Date.now() / 1000);
    const hour = samples.filter((s) => s.t > to - HOUR);
    // The charts span the last hour, or less while the server has not run that long (at
    // least five minutes), so a fresh server's first seconds are not a sliver.
    const span = Math.min(HOUR, Math.max(300, hour.length ? to - hour[0].t + 1 : 0));
    const from = to - span;
    const sum = (k) => hour.reduce((a, s) => a + (s[k] || 0), 0);
    const drops = {};
    for (const s of hour) for (const [r, n] of Object.entries(s.drops || {})) drops[r] = (drops[r] || 0) + n;
    const dropNow = last ? Object.values(last.drops || {}).reduce((a, b) => a + b, 0) : 0;
    const now = clear($('live-now'));
    for (const [k, label] of DORA.slice(0, 4)) now.append(card(num(last ? last[k] : 0) + '/s', label, 'live-rate-' + k));
    now.append(card(num(dropNow) + '/s', 'dropped', 'live-rate-drops'));
    now.append(card(last && last.latency_p99_ms != null ? '≤ ' + last.latency_p99_ms + ' ms' : '—', 'reply latency p99', 'live-p99'));
    const hourText = $('live-hour');
    clear(hourText).append(
      'Last ' + (hour.length < 120 ? hour.length + ' s' : Math.round(hour.length / 60) + ' min') + ': ',
      el('span', { id: 'live-hour-discover', text: num(sum('discover')) }), ' DISCOVER, ',
      el('span', { id: 'live-hour-ack', text: num(sum('ack')) }), ' ACK, ',
      el('span', { id: 'live-hour-nak', text: num(sum('nak')) }), ' NAK, ',
      el('span', { id: 'live-hour-drops', text: num(Object.values(drops).reduce((a, b) => a + b, 0)) }), ' dropped.',
    );
    hourText.dataset.ack = String(sum('ack'));
    hourText.dataset.discover = String(sum('discover'));
    hourText.dataset.maxDiscover = String(hour.reduce((a, s) => Math.max(a, s.discover || 0), 0));
    if (current !== 'live') return;
    const charts = window.LeasedCharts;
    charts.line($('chart-dora'), DORA.map(([k, name, color]) => ({ name, color, points: hour.map((s) => [s.t, s[k] || 0]) })), { from, to });
    legend('legend-dora', DORA.map(([, name, color]) => [name, color]));
    const reasons = Object.keys(drops).sort((a, b) => drops[b] - drops[a]).slice(0, DROP_COLORS.length);
    charts.line($('chart-drops'), reasons.map((r, i) => ({ name: r, color: DROP_COLORS[i], points: hour.map((s) => [s.t, (s.drops && s.drops[r]) || 0]) })), { from, to });
    legend('legend-drops', reasons.length ? reasons.map((r, i) => [r + ' ' + num(drops[r]), DROP_COLORS[i]]) : [['nothing dropped in the last hour', '#43a047']]);
    const lat = [
      ['mean', 'latency_mean_ms', '#1f5fa8'],
      ['median (bucket bound)', 'latency_p50_ms', '#7cb342'],
      ['99th percentile (bucket bound)', 'latency_p99_ms', '#c62828'],
    ];
    charts.line($('chart-latency'), lat.map(([name, k, color]) => ({ name, color, points: hour.map((s) => [s.t, s[k] == null ? null : s[k]]) })), { from, to });
    legend('legend-latency', lat.map(([name, , color]) => [name, color]));
  }

  function startLive() {
    const es = new EventSource('/ui/api/live');
    es.addEventListener('history', (e) => {
      samples = JSON.parse(e.data);
      $('live-state').textContent = 'Live: one sample a second, the last hour kept by the server.';
      drawLive();
    });
    es.addEventListener('tick', (e) => {
      samples.push(JSON.parse(e.data));
      if (samples.length > HOUR) samples.splice(0, samples.length - HOUR);
      liveDirty = true;
    });
    es.addEventListener('error', () => {
      $('live-state').textContent = es.readyState === EventSource.CLOSED ? 'Live view closed (session ended?).' : 'Reconnecting…';
    });
    // Drawn at most once a second, whatever the events do.
    setInterval(() => {
      if (liveDirty) drawLive();
    }, 1000);
  }

  // ---- network: rogue servers, ARP, export, HA ------------------------------------------
  function rows(tbody, items, cols, empty) {
    const body = clear(tbody);
    for (const it of items) body.append(el('tr', null, ...cols.map((c) => el('td', { text: c(it) }))));
    if (!items.length) body.append(el('tr', null, el('td', { class: 'empty', colspan: cols.length, text: empty })));
  }

  async function loadNetwork() {
    const n = await api('/ui/api/network');
    $('rogue-state').textContent = n.rogue_enabled ? 'Watching the served links ([rogue_servers]).' : '[rogue_servers] is off: foreign servers are not watched for.';
    rows($('rogue').tBodies[0], n.rogue_servers, [(s) => s.server_ip, (s) => s.mac, (s) => s.iface, (s) => isoTime(s.first_seen), (s) => isoTime(s.last_seen), (s) => num(s.replies)], 'No foreign DHCP server seen.');
    $('arp-state').textContent = n.arp_enabled ? 'Scanning the neighbour table ([arp_watch]).' : '[arp_watch] is off.';
    rows($('arp').tBodies[0], n.arp_findings, [(f) => f.kind, (f) => f.ip, (f) => f.mac, (f) => (f.expected_mac ? f.expected_mac + ' (' + f.against + ')' : ''), (f) => f.iface, (f) => isoTime(f.first_seen), (f) => isoTime(f.last_seen)], 'No ARP anomaly.');
    $('export-state').textContent = n.export.length ? 'Records wait in the outbox until a destination answers 2xx.' : 'No billing export runs ([export]).';
    rows($('export').tBodies[0], n.export, [(e) => e.destination, (e) => num(e.outbox_depth), (e) => num(e.uploads_ok), (e) => num(e.uploads_failed), (e) => num(e.entries_sent), (e) => (e.last_success ? isoTime(e.last_success) : 'never')], 'Nothing to show.');
    // High availability: reserved for the failover peer's state (role, peer, last contact).
    $('ha-state').textContent = n.ha.configured ? 'Configured.' : 'High availability: not configured — ' + n.ha.note + '.';
  }

  // ---- start ----------------------------------------------------------------------------
  async function start() {
    $('logout').addEventListener('click', async () => {
      try {
        await api('/ui/logout', { method: 'POST' });
      } finally {
        location.assign('/ui/login');
      }
    });
    for (const a of document.querySelectorAll('#tabs a')) {
      a.addEventListener('click', (ev) => {
        ev.preventDefault();
        history.replaceState(null, '', '#' + a.dataset.tab);
        show(a.dataset.tab);
      });
    }
    const grid = $('grid');
    grid.addEventListener('mousemove', onGridMove);
    grid.addEventListener('mouseleave', () => {
      $('grid-tip').hidden = true;
      hoverIp = null;
    });
    grid.addEventListener('click', (ev) => {
      const c = cellAt(ev);
      if (!c) return;
      $('search-field').value = 'ip';
      $('search-text').value = c.ip;
      history.replaceState(null, '', '#leases');
      show('leases');
      runSearch(0);
    });
    $('grid-next').addEventListener('click', () => gridData && gridData.next && selectSubnet(gridData.subnet, gridData.next));
    $('grid-first').addEventListener('click', () => gridData && selectSubnet(gridData.subnet));
    $('search').addEventListener('submit', (ev) => {
      ev.preventDefault();
      runSearch(0);
    });
    $('search-prev').addEventListener('click', () => runSearch(Math.max(0, search.offset - PAGE)));
    $('search-next').addEventListener('click', () => runSearch(search.offset + PAGE));
    $('history-client').addEventListener('click', () => historyOf && loadHistory(historyOf, 'mac'));
    $('history-address').addEventListener('click', () => historyOf && loadHistory(historyOf, 'ip'));
    $('res-form').addEventListener('submit', saveReservation);
    $('res-cancel').addEventListener('click', resetForm);
    onShow.overview = () => loadOverview().catch(banner);
    onShow.reservations = () => loadReservations();
    onShow.network = () => loadNetwork().catch(banner);
    onShow.live = () => drawLive();
    const session = api('/ui/api/session').then((s) => {
      csrf = s.csrf;
    });
    const tab = location.hash.replace('#', '');
    show(TABS.includes(tab) ? tab : 'overview');
    if (current !== 'overview') await loadOverview().catch(banner);
    await session.catch(banner);
    startLive();
    // Keep what is on screen fresh (and the session alive while the page is open).
    setInterval(() => {
      if (document.hidden) return;
      if (current === 'overview') loadOverview().then(() => banner(null), banner);
      else if (current === 'network') loadNetwork().then(() => banner(null), banner);
    }, 10000);
  }

  start();
})();
