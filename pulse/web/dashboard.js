/* Pipeline Pulse dashboard: plain JS, no dependencies, nothing loaded from elsewhere.
 *
 * Data: GET /dashboard/data (one pipeline's report section without its stale list, the stale
 * counts, and the stale page shown: one request per refresh), GET /dashboard/stale (another
 * page of stale leads: filters, paging), and the server-sent events
 * of /dashboard/events: `snapshot` when new figures are ready, `alert` for each alert.
 * Every figure carries data-field (its path in GET /report) and data-value (the raw JSON
 * value), so what is shown can be checked against the report.
 */
"use strict";
(function () {
  const PAGE = 25;
  const LEVELS = {1: {name: "Stale", mark: "!"}, 2: {name: "Escalate", mark: "!!"}, 3: {name: "Remove", mark: "×"}};
  const SEVERITY = {warning: {mark: "!", label: "Warning"}, high: {mark: "!!", label: "High"},
                    critical: {mark: "×", label: "Critical"}};
  const SVG = "http://www.w3.org/2000/svg";
  const params = new URLSearchParams(location.search);
  const currency = params.get("currency");       // e.g. ?currency=EUR; amounts carry no currency in the report
  const state = {pipeline: null, window: null, data: null, version: 0, filters: {}, offset: 0,
                 alerts: [], alertIds: new Set(), receivedAt: 0, loading: null, segDim: "owner"};
  const $ = (id) => document.getElementById(id);

  // ---- formatting ---------------------------------------------------------------------------
  const nf = new Intl.NumberFormat(undefined, {maximumFractionDigits: 0});
  const nf1 = new Intl.NumberFormat(undefined, {maximumFractionDigits: 1});
  const compact = new Intl.NumberFormat(undefined, {notation: "compact", maximumFractionDigits: 1});
  const moneyFull = currency ? new Intl.NumberFormat(undefined, {style: "currency", currency, maximumFractionDigits: 0})
                             : nf;
  const moneyCompact = currency ? new Intl.NumberFormat(undefined, {style: "currency", currency, notation: "compact",
                                                                    maximumFractionDigits: 1}) : compact;
  const NONE = "—";
  const fmt = {
    count: (v) => v == null ? NONE : nf.format(v),
    money: (v) => v == null ? NONE : moneyFull.format(v),
    moneyShort: (v) => v == null ? NONE : (Math.abs(v) < 10000 ? moneyFull.format(v) : moneyCompact.format(v)),
    pct: (v) => v == null ? NONE : nf1.format(v * 100) + " %",
    signedPct: (v) => v == null ? NONE : (v > 0 ? "+" : v < 0 ? "−" : "") + nf1.format(Math.abs(v) * 100) + " %",
    days: (v) => {
      if (v == null) return NONE;
      if (v < 1) return nf1.format(v * 24) + " h";
      return nf1.format(v) + (v >= 1.05 || v < 0.95 ? " days" : " day");
    },
    time: (iso) => {
      if (!iso) return NONE;
      const d = new Date(iso);
      return d.toLocaleString(undefined, {timeZone: "UTC", year: "numeric", month: "short", day: "numeric",
                                          hour: "2-digit", minute: "2-digit"}) + " UTC";
    },
    date: (iso) => iso ? new Date(iso).toLocaleDateString(undefined, {timeZone: "UTC", year: "numeric",
                                                                      month: "short", day: "numeric"}) : NONE,
    ago: (s) => s < 1.5 ? "just now" : s < 90 ? Math.round(s) + " s ago" : Math.round(s / 60) + " min ago",
    text: (v) => v == null ? "not set" : String(v),
  };

  // ---- DOM helpers ------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  }
  function figure(path, value, format, tag) {
    // One shown number: its text, and where it comes from in GET /report.
    return el(tag || "span", {class: "fig", "data-field": path, "data-value": JSON.stringify(value ?? null),
                              text: format(value)});
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) if (c != null) node.append(c);
    return node;
  }
  function table(node, caption, head, rows, numericFrom) {
    node.replaceChildren(
      el("caption", {class: "visually-hidden", text: caption}),
      el("thead", {}, el("tr", {}, ...head.map((h, i) => el("th", {scope: "col", class: i >= numericFrom ? "num" : null,
                                                                    text: h})))),
      el("tbody", {}, ...rows));
  }
  function cell(content, numeric) {
    const td = el("td", {class: numeric ? "num" : null});
    td.append(content);
    return td;
  }

  // ---- fetching ---------------------------------------------------------------------------
  async function getJSON(url) {
    const r = await fetch(url, {headers: {Accept: "application/json"}});
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `${url}: HTTP ${r.status}`);
    return body;
  }
  function showError(message) {
    const box = $("error");
    box.hidden = !message;
    box.textContent = message ? `Could not refresh: ${message}. Showing the last figures received.` : "";
  }

  async function load() {
    // One refresh at a time; a refresh asked for meanwhile runs once this one ends.
    if (state.loading) { state.again = true; return state.loading; }
    state.loading = (async () => {
      try {
        // the figures and the stale page shown, in one request per refresh
        const data = await getJSON(`/dashboard/data?${staleQuery(state.pipeline || "")}`);
        state.data = data;
        state.version = data.version;
        state.receivedAt = performance.now() / 1000 - data.age_s;
        if (!state.pipeline) state.pipeline = data.pipeline;
        if (!state.window || !data.windows.includes(state.window)) state.window = data.windows[0];
        renderControls();
        render();
        if (data.pipeline === state.pipeline) renderStale(data.stale);
        else await loadStale();                 // the pipeline was switched meanwhile
        showError(null);
      } catch (e) {
        showError(e.message);
      } finally {
        state.loading = null;
        if (state.again) { state.again = false; load(); }
      }
    })();
    return state.loading;
  }

  function staleQuery(pipeline) {
    return new URLSearchParams({pipeline: pipeline, filters: JSON.stringify(state.filters),
                                offset: String(state.offset), limit: String(PAGE)});
  }

  async function loadStale() {
    const body = await getJSON(`/dashboard/stale?${staleQuery(state.pipeline)}`);
    renderStale(body.page);
  }

  // ---- rendering ----------------------------------------------------------------------------
  function base() { return `pipelines.${state.pipeline}`; }
  function win() { return state.data.section.windows[state.window]; }
  function wpath() { return `${base()}.windows.${state.window}`; }

  function renderControls() {
    const sel = $("pipeline");
    if (sel.options.length !== state.data.pipelines.length) {
      sel.replaceChildren(...state.data.pipelines.map((p) => el("option", {value: p, text: p})));
    }
    sel.value = state.pipeline;
    const box = $("windows");
    if (box.querySelectorAll("input").length !== state.data.windows.length) {
      box.replaceChildren(el("legend", {text: "Window"}), ...state.data.windows.map((w) => {
        const input = el("input", {type: "radio", name: "window", value: w, id: `w-${w}`});
        return el("label", {class: "seg", for: `w-${w}`}, input, el("span", {text: `Last ${w.replace(/d$/, " days")}`}));
      }));
    }
    for (const input of box.querySelectorAll("input")) input.checked = input.value === state.window;
    $("report-link").href = `/report?pipeline=${encodeURIComponent(state.pipeline)}`;
    const hash = `#pipeline=${encodeURIComponent(state.pipeline)}&window=${encodeURIComponent(state.window)}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  function render() {
    renderStatus();
    renderCards();
    renderFunnel();
    renderOpen();
    renderStaleSummary();
    renderAlerts();
    renderV2();
  }

  function renderStatus() {
    const d = state.data;
    $("as-of").textContent = fmt.time(d.as_of);
    $("as-of").setAttribute("data-value", JSON.stringify(d.as_of));
    $("as-of").setAttribute("data-field", "as_of");
    for (const [id, key] of [["events-read", "events_read"], ["dead-letters", "dead_lettered"]]) {
      $(id).textContent = fmt.count(d.data_quality[key]);
      $(id).setAttribute("data-value", JSON.stringify(d.data_quality[key]));
    }
    $("dead-letters").parentElement.classList.toggle("warn", d.data_quality.dead_lettered > 0);
    tickAge();
  }
  // the worker's refresh interval (GET /dashboard/data's refresh_s: 4 s, longer while it catches up)
  function refreshS() { return (state.data && state.data.refresh_s) || 4; }

  function tickAge() {
    if (!state.data) return;
    const age = performance.now() / 1000 - state.receivedAt;
    $("updated").textContent = fmt.ago(age);
    // late: past the worker's refresh interval by 6 s
    $("updated").parentElement.classList.toggle("warn", age > refreshS() + 6);
  }

  function card(label, main, sub, help) {
    return el("div", {class: "card"}, el("h3", {text: label, title: help}), el("p", {class: "big"}, main),
              el("p", {class: "small"}, ...sub));
  }
  function renderCards() {
    const s = state.data.section, w = win(), o = s.open, b = base(), wp = wpath(), lvr = s.lead_velocity_rate;
    const t = (x) => document.createTextNode(x);
    $("cards").replaceChildren(
      card("Open pipeline", figure(`${b}.open.amount`, o.amount, fmt.moneyShort),
           [figure(`${b}.open.count`, o.count, fmt.count), t(" open · "),
            figure(`${b}.open.weighted_amount`, o.weighted_amount, fmt.moneyShort), t(" weighted")]),
      card("Win rate", figure(`${wp}.win_rate`, w.win_rate, fmt.pct),
           [figure(`${wp}.won`, w.won, fmt.count), t(" won · "), figure(`${wp}.lost`, w.lost, fmt.count), t(" lost")],
           "won / (won + lost), closes in the window"),
      card("Close rate", figure(`${wp}.close_rate`, w.close_rate, fmt.pct),
           [t("of "), figure(`${wp}.leads_created`, w.leads_created, fmt.count), t(" new leads")],
           "won / leads created in the window"),
      card("Average deal", figure(`${wp}.avg_deal_size`, w.avg_deal_size, fmt.moneyShort),
           [figure(`${wp}.won_amount`, w.won_amount, fmt.moneyShort), t(" won in total")]),
      card("Sales cycle", figure(`${wp}.sales_cycle_days.mean`, w.sales_cycle_days.mean, fmt.days),
           [t("over "), figure(`${wp}.sales_cycle_days.count`, w.sales_cycle_days.count, fmt.count), t(" won deals")],
           "mean time from creation to a won close"),
      card("Sales velocity", figure(`${wp}.sales_velocity_per_day`, w.sales_velocity_per_day, fmt.moneyShort),
           [t("per day · "), figure(`${b}.open.opportunities`, o.opportunities, fmt.count), t(" opportunities")],
           "open opportunities × win rate × average deal / sales cycle"),
      card("Lead velocity", figure(`${b}.lead_velocity_rate.rate`, lvr.rate, fmt.signedPct),
           [figure(`${b}.lead_velocity_rate.current`, lvr.current, fmt.count), t(" qualified in 30 days vs "),
            figure(`${b}.lead_velocity_rate.previous`, lvr.previous, fmt.count)],
           "growth of qualified leads: last 30 days against the 30 before"),
    );
    if (w.forecast) {           // SPEC v2 4.9
      const f = w.forecast, fp = `${wp}.forecast`;
      $("cards").append(card("Forecast attainment", figure(`${fp}.attainment`, f.attainment, fmt.pct),
        [figure(`${wp}.won_amount`, w.won_amount, fmt.moneyShort), t(" won of "),
         figure(`${fp}.open_at_start.weighted_amount`, f.open_at_start.weighted_amount, fmt.moneyShort),
         t(" weighted at start")],
        "won in the window / weighted open pipeline at its start"));
    }
  }

  function stageNames() { return Object.keys(state.data.section.open.stages); }

  function chartWidth(node) { return Math.max(280, Math.min(node.clientWidth || 560, 900)); }

  // One row of bars per stage, its name on the left: draw(g, stage, y, scale) adds the bars,
  // scale(value) being a value's bar width (the largest value spans the chart).
  function stageBars(nodeId, rowH, right, labelDy, max, draw) {
    const names = stageNames(), node = $(nodeId), width = chartWidth(node), label = width < 420 ? 88 : 100;
    const barW = width - label - right, scale = (v) => barW * v / Math.max(1, max);
    const g = svg("svg", {width, height: names.length * rowH + 4, viewBox: `0 0 ${width} ${names.length * rowH + 4}`,
                          role: "presentation"});
    names.forEach((n, i) => {
      const y = i * rowH + 2;
      g.append(svg("text", {x: 0, y: y + labelDy, class: "lbl"}, n));
      draw(g, n, y, scale, label, width);
    });
    node.replaceChildren(g);
  }

  function renderFunnel() {
    const w = win(), wp = wpath(), names = stageNames();
    $("funnel-window").textContent = `· last ${state.window.replace(/d$/, " days")}`;
    const max = Math.max(...names.map((n) => Math.max(w.stages[n].entered, w.stages[n].exited)));
    stageBars("funnel-chart", 40, 120, 13, max, (g, n, y, scale, label, width) => {
      const st = w.stages[n];
      g.append(svg("rect", {x: label, y: y + 2, width: Math.max(2, scale(st.entered)), height: 14, rx: 3,
                            class: "b-in"}));
      g.append(svg("text", {x: label + Math.max(2, scale(st.entered)) + 6, y: y + 13, class: "val"},
                   `${fmt.count(st.entered)} in`));
      let x = label;
      for (const [key, cls] of [["advanced", "b-adv"], ["won", "b-won"], ["regressed", "b-reg"], ["lost", "b-lost"]]) {
        const wd = scale(st[key]);
        if (wd > 0) g.append(svg("rect", {x, y: y + 19, width: wd, height: 12, class: cls}));
        x += wd;
      }
      g.append(svg("text", {x: width, y: y + 29, class: "val end"},
                   st.conversion_rate == null ? "no exits" : `${fmt.pct(st.conversion_rate)} converted`));
    });
    const rows = names.map((n) => {
      const st = w.stages[n], p = `${wp}.stages.${n}`;
      return el("tr", {}, el("th", {scope: "row", text: n}),
        ...["entered", "advanced", "won", "lost"].map((k) => cell(figure(`${p}.${k}`, st[k], fmt.count), true)),
        cell(figure(`${p}.conversion_rate`, st.conversion_rate, fmt.pct), true),
        cell(figure(`${p}.drop_off_rate`, st.drop_off_rate, fmt.pct), true),
        cell(el("span", {}, figure(`${p}.dwell_days.p50`, st.dwell_days.p50, fmt.days), " / ",
                figure(`${p}.dwell_days.p90`, st.dwell_days.p90, fmt.days)), true));
    });
    table($("funnel-table"), `Stage flow, last ${state.window}`,
          ["Stage", "Entered", "Advanced", "Won", "Lost", "Conversion", "Drop-off", "Dwell p50 / p90"],
          rows, 1);
  }

  function renderOpen() {
    const o = state.data.section.open, b = base(), names = stageNames();
    const max = Math.max(...names.map((n) => o.stages[n].amount));
    stageBars("open-chart", 30, 130, 15, max, (g, n, y, scale, label, width) => {
      const st = o.stages[n];
      g.append(svg("rect", {x: label, y: y + 3, width: Math.max(1, scale(st.amount)), height: 16, rx: 3,
                            class: "b-amount"}));
      g.append(svg("rect", {x: label, y: y + 3, width: scale(st.weighted_amount), height: 16, rx: 3,
                            class: "b-weighted"}));
      g.append(svg("text", {x: width, y: y + 15, class: "val end"},
                   `${fmt.moneyShort(st.amount)} · ${fmt.count(st.count)} ${st.count === 1 ? "lead" : "leads"}`));
    });
    const rows = names.map((n) => {
      const st = o.stages[n], p = `${b}.open.stages.${n}`;
      return el("tr", {}, el("th", {scope: "row", text: n}),
        cell(figure(`${p}.count`, st.count, fmt.count), true), cell(figure(`${p}.amount`, st.amount, fmt.money), true),
        cell(figure(`${p}.weighted_amount`, st.weighted_amount, fmt.money), true),
        cell(figure(`${p}.stale`, st.stale, fmt.count), true));
    });
    rows.push(el("tr", {class: "total"}, el("th", {scope: "row", text: "All stages"}),
      cell(figure(`${b}.open.count`, o.count, fmt.count), true), cell(figure(`${b}.open.amount`, o.amount, fmt.money), true),
      cell(figure(`${b}.open.weighted_amount`, o.weighted_amount, fmt.money), true),
      cell(document.createTextNode(fmt.count(names.reduce((a, n) => a + o.stages[n].stale, 0))), true)));
    table($("open-table"), "Open pipeline by stage", ["Stage", "Leads", "Amount", "Weighted", "Stale"], rows, 1);
  }

  function levelBadge(level) {
    const l = LEVELS[level];
    return el("span", {class: `badge lvl-${level}`, title: `Level ${level}: ${l.name}`},
              el("span", {class: "mark", "aria-hidden": "true", text: l.mark}), `${level} · ${l.name}`);
  }

  function facetOptions(select, values, key, allLabel) {
    const current = key in state.filters ? JSON.stringify(state.filters[key]) : "";
    select.replaceChildren(el("option", {value: "", text: allLabel}),
      ...values.map(([v, n]) => el("option", {value: JSON.stringify(v), text: `${fmt.text(v)} (${fmt.count(n)})`})));
    if (current && !values.some(([v]) => JSON.stringify(v) === current)) {
      select.append(el("option", {value: current, text: `${fmt.text(JSON.parse(current))} (0)`}));
    }
    select.value = current;
  }

  function renderStaleSummary() {
    const sum = state.data.section.stale_summary;
    $("stale-total").textContent = `· ${fmt.count(sum.total)} now`;
    $("levels").replaceChildren(...[1, 2, 3].map((l) =>
      el("button", {type: "button", class: "level-chip", "aria-pressed": String(state.filters.level === l),
                    title: `Show level ${l} only`, "data-level": l},
         levelBadge(l), el("span", {class: "n", text: fmt.count(sum.by_level[l])}))));
    facetOptions($("f-owner"), sum.owners, "owner", "All owners");
    facetOptions($("f-team"), sum.teams, "team", "All teams");
    $("f-level").value = state.filters.level ? String(state.filters.level) : "";
  }

  function renderStale(page) {
    const b = base();
    // the columns a phone shows first come first: who, how bad, how long
    const rows = page.rows.map((r) => el("tr", {"data-lead-id": r.lead_id},
      el("th", {scope: "row", text: r.lead_id}), cell(levelBadge(r.level)),
      cell(el("span", {}, figure(null, r.age_days, fmt.days),
              el("span", {class: "limit", text: `limit ${fmt.days(r.stale_after_days)}`})), true),
      cell(document.createTextNode(r.stage)), cell(document.createTextNode(fmt.text(r.owner))),
      cell(document.createTextNode(fmt.text(r.team))), cell(el("time", {datetime: r.since, text: fmt.date(r.since)})),
      cell(document.createTextNode(fmt.money(r.amount)), true)));
    if (!rows.length) {
      rows.push(el("tr", {}, el("td", {colspan: 8, class: "empty",
                                       text: Object.keys(state.filters).length ? "No stale lead matches these filters."
                                                                               : "No stale leads."})));
    }
    table($("stale-table"), `Stale leads of ${state.pipeline}, longest first`,
          ["Lead", "Level", "Age", "Stage", "Owner", "Team", "In stage since", "Amount"], rows, 9);
    for (const [i, th] of $("stale-table").querySelectorAll("thead th").entries()) {
      if ([2, 7].includes(i)) th.classList.add("num");
    }
    $("stale-table").setAttribute("data-total", page.total);
    $("stale-table").setAttribute("data-field", `${b}.stale`);
    const first = page.total ? page.offset + 1 : 0, last = Math.min(page.offset + PAGE, page.total);
    $("page-info").textContent = `${fmt.count(first)}–${fmt.count(last)} of ${fmt.count(page.total)}`;
    $("prev").disabled = page.offset === 0;
    $("next").disabled = page.offset + PAGE >= page.total;
  }

  // ---- alerts -------------------------------------------------------------------------------
  function addAlert(a) {
    if (!a.alert_id || state.alertIds.has(a.alert_id)) return false;
    state.alertIds.add(a.alert_id);
    state.alerts.unshift(a);
    if (state.alerts.length > 200) state.alertIds.delete(state.alerts.pop().alert_id);
    return true;
  }
  function alertItem(a) {
    const resolved = a.type === "lead.stale_resolved";
    const sev = SEVERITY[a.severity] || {mark: "•", label: a.severity || "info"};
    const badge = resolved
      ? el("span", {class: "badge ok"}, el("span", {class: "mark", "aria-hidden": "true", text: "✓"}), "Resolved")
      : el("span", {class: `badge sev-${a.severity}`}, el("span", {class: "mark", "aria-hidden": "true", text: sev.mark}),
           sev.label);
    const meta = [a.stage, a.owner && `owner ${a.owner}`, a.team && `team ${a.team}`].filter(Boolean).join(" · ");
    return el("li", {class: resolved ? "resolved" : null, "data-alert-id": a.alert_id, "data-type": a.type,
                     "data-lead-id": a.lead_id},
      badge, el("div", {class: "what"}, el("p", {class: "summary", text: a.summary || a.type}),
        el("p", {class: "meta"}, `${meta}${meta ? " · " : ""}`,
           el("time", {datetime: a.detected_at, text: a.detected_at ? fmt.time(a.detected_at) : ""}))));
  }
  function renderAlerts() {
    const shown = state.alerts.filter((a) => !state.pipeline || a.pipeline === state.pipeline).slice(0, 50);
    $("alerts").replaceChildren(...shown.map(alertItem));
    $("alerts-empty").hidden = shown.length > 0;
  }

  // ---- v2: scorecards and forecast (shown when the report has them) -------------------------
  function renderV2() {
    const w = win(), o = state.data.section.open, wp = wpath(), b = base();
    const has = w && w.segments && o.segments;
    $("v2").hidden = !has;
    if (!has) return;
    $("segments-window").textContent = `· last ${state.window.replace(/d$/, " days")}`;
    const dims = Object.keys(w.segments);
    if (!dims.includes(state.segDim)) state.segDim = dims[0];
    $("segment-tabs").replaceChildren(...dims.map((d) => el("button", {type: "button", role: "tab", "data-dim": d,
      "aria-selected": String(d === state.segDim), tabindex: d === state.segDim ? "0" : "-1", text: `By ${d}`})));
    // one row per value with activity in the window or open leads now, in the report's order (null last)
    const key = (v) => JSON.stringify(v);
    const inWindow = new Map((w.segments[state.segDim] || []).map((s, i) => [key(s.value), i]));
    const openNow = new Map((o.segments[state.segDim] || []).map((s, i) => [key(s.value), i]));
    const values = [...new Set([...inWindow.keys(), ...openNow.keys()])].map((k) => JSON.parse(k));
    values.sort((a, b) => (a === null) - (b === null) || (a === null ? 0 : a < b ? -1 : a > b ? 1 : 0));
    const zero = (f) => document.createTextNode(f(0));
    const rows = values.map((v) => {
      const i = inWindow.get(key(v)), j = openNow.get(key(v));
      const s = i === undefined ? null : w.segments[state.segDim][i], op = j === undefined ? null : o.segments[state.segDim][j];
      const p = `${wp}.segments.${state.segDim}.${i}`, q = `${b}.open.segments.${state.segDim}.${j}`;
      const wf = (k, f, get) => s ? figure(`${p}.${k}`, get ? get(s) : s[k], f) : (f === fmt.count ? zero(f) : document.createTextNode(NONE));
      const of = (k, f) => op ? figure(`${q}.${k}`, op[k], f) : zero(f);
      return el("tr", {}, el("th", {scope: "row", text: fmt.text(v)}),
        cell(wf("leads_created", fmt.count), true), cell(wf("won", fmt.count), true), cell(wf("lost", fmt.count), true),
        cell(wf("win_rate", fmt.pct), true), cell(wf("won_amount", fmt.money), true),
        cell(wf("avg_deal_size", fmt.money), true),
        cell(wf("sales_cycle_days.mean", fmt.days, (x) => x.sales_cycle_days.mean), true),
        cell(of("count", fmt.count), true), cell(of("weighted_amount", fmt.money), true),
        cell(of("stale", fmt.count), true));
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", {colspan: 11, class: "empty", text: "Nothing to show yet."})));
    table($("segments-table"), `Scorecards by ${state.segDim}, last ${state.window}`, [state.segDim, "New leads", "Won",
          "Lost", "Win rate", "Won amount", "Average deal", "Sales cycle", "Open now", "Weighted now", "Stale now"], rows, 1);
  }

  // ---- events -------------------------------------------------------------------------------
  function connect() {
    if (!window.EventSource) { setInterval(load, 2000); return; }
    const es = new EventSource("/dashboard/events");
    const live = $("live");
    es.onopen = () => { live.dataset.state = "live"; live.textContent = "Live"; };
    es.onerror = () => { live.dataset.state = "down"; live.textContent = "Reconnecting…"; };
    es.addEventListener("snapshot", (e) => {
      const s = JSON.parse(e.data);
      if (s.version !== state.version) load();
      else { state.receivedAt = performance.now() / 1000 - s.age_s; tickAge(); }   // same figures, confirmed current
    });
    let pending = null;             // alerts come in bursts: one render per burst
    es.addEventListener("alert", (e) => {
      if (addAlert(JSON.parse(e.data)) && state.data && !pending) {
        pending = setTimeout(() => { pending = null; renderAlerts(); }, 200);
      }
    });
  }

  function wire() {
    $("pipeline").addEventListener("change", (e) => {
      state.pipeline = e.target.value; state.filters = {}; state.offset = 0; load();
    });
    $("windows").addEventListener("change", (e) => {
      if (e.target.name === "window") { state.window = e.target.value; renderControls(); render(); }
    });
    const filterChange = (key, value) => {
      if (value === undefined) delete state.filters[key]; else state.filters[key] = value;
      state.offset = 0;
      renderStaleSummary();
      loadStale().catch((err) => showError(err.message));
    };
    $("f-owner").addEventListener("change", (e) => filterChange("owner", e.target.value ? JSON.parse(e.target.value) : undefined));
    $("f-team").addEventListener("change", (e) => filterChange("team", e.target.value ? JSON.parse(e.target.value) : undefined));
    $("f-level").addEventListener("change", (e) => filterChange("level", e.target.value ? Number(e.target.value) : undefined));
    $("levels").addEventListener("click", (e) => {
      const chip = e.target.closest("[data-level]");
      if (!chip) return;
      const l = Number(chip.dataset.level);
      filterChange("level", state.filters.level === l ? undefined : l);
    });
    $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadStale(); });
    $("next").addEventListener("click", () => { state.offset += PAGE; loadStale(); });
    $("segment-tabs").addEventListener("click", (e) => {
      const tab = e.target.closest("[data-dim]");
      if (tab) { state.segDim = tab.dataset.dim; renderV2(); $("segment-tabs").querySelector(`[data-dim="${state.segDim}"]`).focus(); }
    });
    $("segment-tabs").addEventListener("keydown", (e) => {
      if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
      const tabs = [...$("segment-tabs").children], i = tabs.findIndex((t) => t.dataset.dim === state.segDim);
      const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      state.segDim = next.dataset.dim; renderV2(); $("segment-tabs").querySelector(`[data-dim="${state.segDim}"]`).focus();
    });
    $("controls").addEventListener("submit", (e) => e.preventDefault());
    $("stale-filters").addEventListener("submit", (e) => e.preventDefault());
    let resize;
    window.addEventListener("resize", () => {
      clearTimeout(resize);
      resize = setTimeout(() => { if (state.data) { renderFunnel(); renderOpen(); } }, 150);
    });
    setInterval(tickAge, 1000);
    setInterval(() => {         // a missed snapshot event: fetch once the figures are past their interval
      if (!state.loading && performance.now() / 1000 - state.receivedAt > refreshS() + 2) load();
    }, 3000);
  }

  function start() {
    const h = new URLSearchParams(location.hash.slice(1));
    state.pipeline = h.get("pipeline") || params.get("pipeline");
    state.window = h.get("window") || params.get("window");
    wire();
    connect();
    load();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
