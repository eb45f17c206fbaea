// cnnspec's interactive page (cnnspec/report/page.py): views, cards, source, table, search.
// Vanilla JS, no network: everything it reads is in the page.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("data").textContent);
  const $ = (s) => document.querySelector(s);
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const num = (n) => n.toLocaleString("en-US");
  const human = (n, unit) => {
    for (const [s, v] of [["T", 1e12], ["G", 1e9], ["M", 1e6], ["k", 1e3]]) {
      if (Math.abs(n) >= v) return (n / v).toFixed(2) + " " + s + unit;
    }
    return n + " " + unit;
  };
  const mib = (b) => (b / 1048576).toFixed(2) + " MiB";
  const svgs = {};
  document.querySelectorAll("script[data-v]").forEach((s) => { svgs[s.dataset.v] = s.textContent; });
  const tops = Object.keys(D.views).filter((k) => D.views[k].top);
  const box = $("#diagram");
  let current = null;
  let top = D.start;
  let pinned = null;

  // ------------------------------------------------------------------ views
  // The view shown is in the address (#layer2.0): the browser's Back goes back out, and
  // a link to page.html#layer2.0 opens that block.
  function remember(id) {
    if (decodeURIComponent(location.hash.slice(1)) === id) return;
    try { history.pushState(null, "", "#" + encodeURIComponent(id)); } catch (e) { /* sandboxed */ }
  }

  function show(id, focus, fromHistory) {
    if (!(id in svgs)) id = top;
    if (id !== current) {
      if (!fromHistory && current !== null) remember(id);
      box.innerHTML = svgs[id];
      current = id;
      if (D.views[id].top) top = id;
      bind();
      crumbs();
      levels();
      box.scrollTop = 0;
      box.scrollLeft = 0;
      const shown = $("#card").dataset.k;
      if (shown) card(shown); // its "open" link depends on the view
    }
    box.dataset.view = id;
    markSearch();
    if (focus) mark(focus);
    else if (pinned) mark(pinned, true);
  }

  function scopeOf(key) { // "@title/layer2" and "cluster_layer2" open layer2
    if (key.startsWith("@title/")) return key.slice(7);
    if (key.startsWith("cluster_")) return key.slice(8);
    return key in D.scopes && key in svgs ? key : null;
  }

  function bind() {
    box.querySelectorAll("g.node[data-k], g.cluster[data-k]").forEach((g) => {
      const k = g.dataset.k;
      const scope = scopeOf(k);
      if (k in D.nodes) {
        g.classList.add("link");
        g.addEventListener("mouseenter", () => hovered(k));
        g.addEventListener("mouseleave", left);
        g.addEventListener("click", () => pin(k));
      } else if (scope !== null && scope !== current && scope in svgs) {
        g.classList.add("link");
        if (!k.startsWith("cluster_")) {
          g.addEventListener("mouseenter", () => hovered(scope));
          g.addEventListener("mouseleave", left);
        }
        g.addEventListener("click", () => show(scope));
      } else if (k.startsWith("@in/")) {
        g.classList.add("link");
        g.addEventListener("click", () => reveal(k.slice(4)));
      }
    });
  }

  function crumbs() {
    const parts = [[top, D.name]];
    if (!D.views[current].top) {
      const names = current.split(".");
      for (let i = 1; i <= names.length; i++) {
        const p = names.slice(0, i).join(".");
        if (p in svgs) parts.push([p, p]);
      }
    }
    $("#crumbs").innerHTML = parts.map(([id, label], i) => i === parts.length - 1
      ? `<span class="here" data-v="${esc(id)}">${esc(label)}</span>`
      : `<a data-v="${esc(id)}">${esc(label)}</a>`).join('<span class="sep"> › </span>');
    $("#crumbs").querySelectorAll("a").forEach((a) => a.addEventListener("click", () => show(a.dataset.v)));
  }

  function levels() {
    const el = $("#levels");
    if (!el.childElementCount) {
      el.append("Depth:");
      for (const id of tops) {
        const b = document.createElement("button");
        b.dataset.v = id;
        b.textContent = id === "@all" ? "all" : id.slice(1);
        b.title = D.views[id].title;
        b.addEventListener("click", () => show(id));
        el.append(b);
      }
    }
    el.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset.v === current));
  }

  function element(key) {
    return box.querySelector(`g.node[data-k="${CSS.escape(key)}"]`);
  }

  function mark(key, quiet) {
    box.querySelectorAll("g.sel").forEach((g) => g.classList.remove("sel"));
    const g = element(key);
    if (!g) return;
    g.classList.add("sel");
    if (!quiet) centre(box, g);
  }

  function centre(container, el) {
    const b = container.getBoundingClientRect();
    const r = el.getBoundingClientRect();
    container.scrollTop += r.top - b.top - (b.height - r.height) / 2;
    container.scrollLeft += r.left - b.left - (b.width - r.width) / 2;
  }

  // the view a layer or scope is drawn in: this one if it is there, else its home
  function reveal(key) {
    if (element(key)) return mark(key);
    if (key in D.nodes) return show(D.nodes[key].home || top, key);
    if (key in D.scopes) return show(key);
  }

  // ------------------------------------------------------------------ cards
  // A hovered node's card stays while the mouse travels to it (to follow its source
  // link); leaving for anywhere else brings the pinned card back.
  let restore = null;
  function hovered(key) {
    clearTimeout(restore);
    card(key);
  }
  function left() {
    clearTimeout(restore);
    if (pinned) restore = setTimeout(() => card(pinned), 600);
  }
  $("#side").addEventListener("mouseenter", () => clearTimeout(restore));
  function card(key) {
    const el = $("#card");
    if (!key) {
      el.innerHTML = '<p class="hint">Hover over a layer for its numbers; click to pin it and see its source line. Click a block to open it.</p>';
      return;
    }
    const n = D.nodes[key];
    const s = n ? null : D.scopes[key];
    const x = n || s;
    const rows = [];
    const add = (k, v) => { if (v !== "" && v !== undefined) rows.push(`<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`); };
    if (n) add("op", n.op);
    else add(s.kind, s.desc);
    const args = Object.entries(x.args).map(([k, v]) => `${k}=${v}`).join(", ");
    add(n ? "arguments" : "block arguments", args);
    add(x.ins.length > 1 ? "inputs" : "input", x.ins.map(([i, sh]) => `${sh} (${i})`).join(", "));
    add("output", x.out);
    add("params", num(x.params));
    if (n) add("buffers", num(n.buffers));
    add("MACs", `${num(x.macs)} (${human(x.macs, "MACs")})`);
    if (n) {
      add("receptive field", n.rf);
      add("jump", n.jump);
      add("activation", mib(n.mem));
    } else {
      add("layers", x.layers);
    }
    const [f, line] = x.src;
    let html = (key === pinned ? '<span class="pinned">pinned</span>' : "")
      + `<h3>${esc(key)}${n && n.training ? " (training only)" : ""}</h3>`
      + `<div class="desc">${esc(n ? n.desc : "")}</div><dl>${rows.join("")}</dl>`;
    if (f >= 0) html += `<div>source: <a class="srclink" data-k="${esc(key)}">${esc(D.files[f])}:${line}</a></div>`;
    if (s && key in svgs && key !== current) html += `<div><a class="open" data-v="${esc(key)}">open ${esc(key)}</a></div>`;
    if (n && n.steps.length) {
      html += "<h4>explain</h4><table class=\"steps\">" + n.steps.map(([q, t, note]) =>
        `<tr><td>${esc(q)}</td><td>${esc(t)}${note ? `<div class="note">${esc(note)}</div>` : ""}</td></tr>`).join("") + "</table>";
    }
    el.innerHTML = html;
    el.dataset.k = key;
    const link = el.querySelector(".srclink");
    if (link) link.addEventListener("click", () => source(key));
    const open = el.querySelector(".open");
    if (open) open.addEventListener("click", () => show(open.dataset.v));
  }

  function pin(key) {
    pinned = key;
    card(key);
    mark(key, true);
    select(key);
    source(key);
  }

  function source(key) {
    const x = D.nodes[key] || D.scopes[key];
    const [f, line, , end] = x.src;
    if (f < 0) return;
    const pre = $("#source-text");
    const last = Math.max(line, end || line);
    $("#source-name").textContent = `${D.files[f]}:${line}`;
    pre.innerHTML = D.sources[f].split("\n").map((t, i) =>
      `<span data-n="${i + 1}"${i + 1 >= line && i + 1 <= last ? ' class="hl"' : ""}>${esc(t) || " "}</span>`).join("");
    $("#source").hidden = false;
    const hl = pre.querySelector(".hl");
    if (hl) pre.scrollTop = hl.offsetTop - pre.clientHeight / 3;
  }

  // ------------------------------------------------------------------ table
  const columns = [
    ["name", "Layer", false, (n, k) => k],
    ["desc", "Op", false, (n) => n.desc],
    ["out", "Output", false, (n) => n.out],
    ["params", "Params", true, (n) => n.params],
    ["macs", "MACs", true, (n) => n.macs],
    ["rf", "RF", true, (n) => parseInt(n.rf, 10) || 0],
    ["mem", "Activation", true, (n) => n.mem],
  ];
  const order = Object.keys(D.nodes);
  let sortKey = null;
  let sortDir = 1;

  function table() {
    $("#table thead").innerHTML = "<tr>" + columns.map(([k, title, right]) =>
      `<th data-c="${k}"${right ? ' class="num"' : ""}>${title}</th>`).join("") + "</tr>";
    $("#table thead").querySelectorAll("th").forEach((th) => th.addEventListener("click", () => sort(th.dataset.c)));
    $("#table tbody").innerHTML = order.map((k) => {
      const n = D.nodes[k];
      const cells = [esc(k), esc(n.desc), esc(n.out), num(n.params), num(n.macs), esc(n.rf), mib(n.mem)];
      return `<tr data-k="${esc(k)}"${n.training ? ' class="training"' : ""}>` + cells.map((c, i) =>
        `<td${columns[i][2] ? ' class="num"' : ""}>${c}</td>`).join("") + "</tr>";
    }).join("");
    $("#table tbody").addEventListener("click", (e) => {
      const tr = e.target.closest("tr");
      if (tr) { reveal(tr.dataset.k); pin(tr.dataset.k); }
    });
    $("#totals").innerHTML = D.totals.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("");
    filter();
  }

  function sort(key) {
    sortDir = sortKey === key ? -sortDir : 1;
    sortKey = key;
    const get = columns.find((c) => c[0] === key)[3];
    const body = $("#table tbody");
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = get(D.nodes[a.dataset.k], a.dataset.k);
      const y = get(D.nodes[b.dataset.k], b.dataset.k);
      const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y), "en", { numeric: true });
      return c * sortDir || order.indexOf(a.dataset.k) - order.indexOf(b.dataset.k);
    });
    body.append(...rows);
    $("#table thead").querySelectorAll("th").forEach((th) => {
      th.classList.toggle("asc", th.dataset.c === key && sortDir > 0);
      th.classList.toggle("desc", th.dataset.c === key && sortDir < 0);
    });
  }

  function filter() {
    const q = $("#filter").value.trim().toLowerCase();
    let shown = 0, params = 0, macs = 0, mem = 0;
    for (const tr of $("#table tbody").rows) {
      const n = D.nodes[tr.dataset.k];
      const ok = !q || tr.dataset.k.toLowerCase().includes(q) || n.desc.toLowerCase().includes(q);
      tr.hidden = !ok;
      if (ok) { shown++; params += n.params; macs += n.training ? 0 : n.macs; mem += n.mem; }
    }
    $("#table tfoot").innerHTML = `<tr><td>${shown} of ${order.length} layers</td><td></td><td></td>`
      + `<td class="num">${num(params)}</td><td class="num">${num(macs)}</td><td></td><td class="num">${mib(mem)}</td></tr>`;
  }

  function select(key) {
    const body = $("#table tbody");
    body.querySelectorAll("tr.sel").forEach((tr) => tr.classList.remove("sel"));
    const tr = body.querySelector(`tr[data-k="${CSS.escape(key)}"]`);
    if (!tr) return;
    tr.classList.add("sel");
    const b = $("#table-box");
    if (tr.offsetTop < b.scrollTop + 30 || tr.offsetTop > b.scrollTop + b.clientHeight - 30) {
      b.scrollTop = tr.offsetTop - b.clientHeight / 2;
    }
  }

  // ------------------------------------------------------------------ search
  const names = [...order, ...Object.keys(D.scopes)];
  function find(q) {
    q = q.trim().toLowerCase();
    if (!q) return null;
    return names.find((k) => k.toLowerCase() === q)
      || names.find((k) => k.toLowerCase().startsWith(q))
      || names.find((k) => k.toLowerCase().includes(q)) || null;
  }
  function markSearch() {
    const q = $("#search").value.trim().toLowerCase();
    box.querySelectorAll("g.node[data-k]").forEach((g) => {
      const k = g.dataset.k;
      g.classList.toggle("match", q !== "" && (k in D.nodes || k in D.scopes) && k.toLowerCase().includes(q));
    });
  }
  function search() {
    const key = find($("#search").value);
    $("#search").classList.toggle("missing", key === null && $("#search").value !== "");
    if (key === null) return;
    reveal(key);
    if (key in D.nodes) pin(key);
    else card(key);
  }

  // ------------------------------------------------------------------ start
  $("#names").innerHTML = names.map((k) => `<option value="${esc(k)}">`).join("");
  $("#search").addEventListener("input", (e) => {
    markSearch();
    if (e.inputType === "insertReplacementText" || e.inputType === undefined) search(); // a pick
  });
  $("#search").addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
  $("#filter").addEventListener("input", filter);
  $("#collapse-all").addEventListener("click", () => show(tops[0]));
  $("#expand-all").addEventListener("click", () => show(tops[tops.length - 1]));
  $("#theme").addEventListener("click", () => {
    const dark = document.body.classList.toggle("dark");
    document.body.classList.toggle("light", !dark);
  });
  table();
  const linked = decodeURIComponent(location.hash.slice(1));
  show(linked in svgs ? linked : D.start, null, true);
  window.addEventListener("popstate", () => {
    const id = decodeURIComponent(location.hash.slice(1));
    show(id in svgs ? id : D.start, null, true);
  });
  document.body.dataset.ready = "1";
  window.cnnspecReadyMs = performance.now(); // since navigation started (bench/bench_page.py)
})();
