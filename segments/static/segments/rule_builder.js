/* Rule builder: edits the JSON rule tree of #id_rule with forms (no code), and asks the admin
   estimate endpoint for the plain-language text, live size and 20 sample contacts.
   Condition types come from the server registry; a type without a builder gets a JSON box. */
(function () {
  "use strict";
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "text") node.textContent = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
    });
    (children || []).forEach((c) => node.appendChild(c));
    return node;
  }
  function select(options, value, onchange) {
    const s = el("select", { onchange: (e) => onchange(e.target.value) });
    options.forEach(([v, label]) => { const o = el("option", { value: v, text: label }); if (String(v) === String(value)) o.selected = true; s.appendChild(o); });
    return s;
  }
  // A number beyond a double (1e400) would become null in JSON: keep the text typed so the
  // server can say it is out of range.
  function parseNumber(text) { const n = Number(text); return Number.isFinite(n) && text.trim() !== "" ? n : text; }
  function parseValue(text, kind, op) {
    if (["in", "not_in"].includes(op)) return text.split(",").map((t) => parseValue(t.trim(), kind, "eq"));
    if (op === "between") return text.split(",").map((t) => parseNumber(t.trim()));
    if (["within_last_days", "more_than_days_ago"].includes(op)) return parseInt(text, 10);
    if (kind === "number") return parseNumber(text);
    if (kind === "json") { try { return JSON.parse(text); } catch (e) { return text; } }
    return text;
  }
  function showValue(value) { return Array.isArray(value) ? value.join(", ") : (value === undefined ? "" : String(value)); }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("rule-builder");
    const textarea = document.getElementById("id_rule");
    if (!root || !textarea) return;
    const schema = JSON.parse(document.getElementById("segments-builder-schema").textContent);
    const L = schema.labels;
    const types = Object.fromEntries(schema.types.map((t) => [t.name, t]));
    let rule;
    try { rule = JSON.parse(textarea.value || "{}"); } catch (e) { rule = { all: [] }; }
    if (!rule || !Object.keys(rule).length) rule = { all: [] };

    function save() { textarea.value = JSON.stringify(rule, null, 1); }
    function render() { root.innerHTML = ""; root.appendChild(renderNode(rule, (n) => { rule = n; })); save(); }

    function renderNode(node, replace) {
      if ("all" in node || "any" in node || ("not" in node && "any" in node.not)) return renderGroup(node, replace);
      if ("not" in node) return renderGroup({ not: { any: [node.not] } }, replace);
      return renderLeaf(node, replace);
    }
    function renderGroup(node, replace) {
      const mode = "all" in node ? "all" : ("any" in node ? "any" : "none");
      const children = mode === "all" ? node.all : (mode === "any" ? node.any : node.not.any);
      const rebuild = (m, list) => (m === "all" ? { all: list } : m === "any" ? { any: list } : { not: { any: list } });
      const box = el("div", { class: "rb-group" });
      box.appendChild(select([["all", L.all], ["any", L.any], ["none", L.none]], mode, (m) => { replace(rebuild(m, children)); render(); }));
      children.forEach((child, i) => {
        box.appendChild(renderNode(child, (n) => { if (n === null) children.splice(i, 1); else children[i] = n; replace(rebuild(mode, children)); }));
      });
      box.appendChild(el("button", { type: "button", class: "button", text: L.add_condition, onclick: () => { children.push({ type: "feature", feature: "recency_days", op: "lte", value: 30 }); replace(rebuild(mode, children)); render(); } }));
      box.appendChild(el("button", { type: "button", class: "button", text: L.add_group, onclick: () => { children.push({ any: [] }); replace(rebuild(mode, children)); render(); } }));
      if (node !== rule) box.appendChild(el("button", { type: "button", class: "button", text: L.remove, onclick: () => { replace(null); render(); } }));
      return box;
    }
    function opSelect(kindOps, leaf, update) {
      return select(kindOps.map((o) => [o, schema.op_labels[o] || o]), leaf.op, (v) => { leaf.op = v; update(); render(); });
    }
    function valueInput(leaf, kind, update) {
      if (["is_set", "is_not_set", "is_true", "is_false"].includes(leaf.op)) { delete leaf.value; return el("span"); }
      return el("input", { value: showValue(leaf.value), placeholder: L.value, onchange: (e) => { leaf.value = parseValue(e.target.value, kind, leaf.op); update(); } });
    }
    function renderLeaf(leaf, replace) {
      const row = el("div", { class: "rb-leaf" });
      const update = () => { replace(leaf); save(); };
      row.appendChild(select(schema.types.map((t) => [t.name, t.label]), leaf.type, (v) => {
        const defaults = { field: { field: "country", op: "eq", value: "FR" }, feature: { feature: "recency_days", op: "lte", value: 30 }, attribute: { key: "tier", op: "eq", value: "gold" }, event: { event_type: "purchase", op: "gte", value: 1, within_days: 30 }, segment: { segment: (schema.segments[0] || {}).id }, consent: { purpose: (schema.purposes || [""])[0], channel: "email" }, score: { score: "clv", top_percent: 20 } };
        replace(Object.assign({ type: v }, defaults[v] || {})); render();
      }));
      const b = (types[leaf.type] || {}).builder || {};
      if (b.choices) {
        const subject = b.subject;
        const current = b.choices.find((c) => c.name === leaf[subject]) || b.choices[0];
        const rank = b.rank_op;  // e.g. "is in the top … %" of a score: {top_percent: N}, no op/value
        const ranked = rank && leaf[rank.name] !== undefined;
        row.appendChild(select(b.choices.map((c) => [c.name, c.label]), leaf[subject], (v) => { leaf[subject] = v; const c = b.choices.find((x) => x.name === v); if (!ranked && !c.ops.includes(leaf.op)) leaf.op = c.ops[0]; update(); render(); }));
        if (rank) {
          const ops = current.ops.map((o) => [o, schema.op_labels[o] || o]).concat([[rank.name, rank.label]]);
          row.appendChild(select(ops, ranked ? rank.name : leaf.op, (v) => {
            if (v === rank.name) { leaf[rank.name] = rank.default; delete leaf.op; delete leaf.value; } else { delete leaf[rank.name]; leaf.op = v; }
            update(); render();
          }));
          if (ranked) row.appendChild(el("input", { value: String(leaf[rank.name]), placeholder: "%", onchange: (e) => { leaf[rank.name] = parseNumber(e.target.value); update(); } }));
          else row.appendChild(valueInput(leaf, current.kind, update));
        } else {
          row.appendChild(opSelect(current.ops, leaf, update));
          row.appendChild(valueInput(leaf, current.kind, update));
        }
      } else if (b.free) {
        row.appendChild(el("input", { value: leaf.key || "", placeholder: "key", onchange: (e) => { leaf.key = e.target.value; update(); } }));
        row.appendChild(opSelect(["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "starts_with", "is_true", "is_false", "is_set", "is_not_set"], leaf, update));
        row.appendChild(valueInput(leaf, "json", update));
      } else if (b.event) {
        row.appendChild(el("input", { value: leaf.event_type || "", placeholder: "purchase", onchange: (e) => { leaf.event_type = e.target.value; update(); } }));
        row.appendChild(select(b.aggregates.map((a) => [a, a]), leaf.aggregate || "count", (v) => { leaf.aggregate = v; if (v !== "count" && !leaf.property) leaf.property = "amount"; if (v === "count") delete leaf.property; update(); render(); }));
        if (leaf.aggregate && leaf.aggregate !== "count") row.appendChild(el("input", { value: leaf.property || "", placeholder: "amount", onchange: (e) => { leaf.property = e.target.value; update(); } }));
        row.appendChild(opSelect(b.ops, leaf, update));
        row.appendChild(valueInput(leaf, "number", update));
        row.appendChild(el("input", { value: leaf.within_days || "", placeholder: L.days, title: L.days, onchange: (e) => { if (e.target.value) leaf.within_days = parseInt(e.target.value, 10); else delete leaf.within_days; update(); } }));
        const where = (leaf.where || [])[0] || {};
        row.appendChild(el("input", { value: where.property || "", placeholder: L.where, onchange: (e) => { if (e.target.value) { leaf.where = [Object.assign({ op: "eq", value: "" }, where, { property: e.target.value })]; } else delete leaf.where; update(); render(); } }));
        if (leaf.where) {
          row.appendChild(select(["eq", "ne", "gt", "gte", "lt", "lte", "contains", "is_set"].map((o) => [o, schema.op_labels[o]]), where.op, (v) => { where.op = v; update(); }));
          row.appendChild(el("input", { value: showValue(where.value), onchange: (e) => { where.value = parseValue(e.target.value, "json", where.op); update(); } }));
        }
      } else if (b.segment) {
        row.appendChild(select(schema.segments.map((s) => [s.id, s.name]), leaf.segment, (v) => { leaf.segment = parseInt(v, 10); update(); }));
      } else if (b.consent) {
        row.appendChild(select((schema.purposes || []).map((p) => [p, p]), leaf.purpose, (v) => { leaf.purpose = v; update(); }));
        row.appendChild(select((schema.channels || []).map((c) => [c, c]), leaf.channel, (v) => { leaf.channel = v; update(); }));
      } else {
        row.appendChild(el("textarea", { onchange: (e) => { try { Object.assign(leaf, JSON.parse(e.target.value)); update(); } catch (err) { /* kept as typed */ } } }, [document.createTextNode(JSON.stringify(leaf))]));
      }
      row.appendChild(el("button", { type: "button", class: "button", text: L.remove, onclick: () => { replace(null); render(); } }));
      return row;
    }

    textarea.addEventListener("change", () => { try { rule = JSON.parse(textarea.value); render(); } catch (e) { /* invalid JSON: the server names the problem */ } });
    render();

    document.getElementById("rule-preview-button").addEventListener("click", async () => {
      const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
      const family = document.getElementById("id_family");
      const priority = document.getElementById("id_priority");
      const response = await fetch(root.dataset.estimateUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ rule: JSON.parse(textarea.value), segment_id: root.dataset.segmentId || null, family: family ? family.value : null, priority: priority ? priority.value : 0 }),
      });
      const data = await response.json();
      const text = document.getElementById("rule-preview-text");
      const size = document.getElementById("rule-preview-size");
      const warnings = document.getElementById("rule-preview-warnings");
      const sample = document.getElementById("rule-preview-sample");
      warnings.innerHTML = ""; sample.innerHTML = "";
      if (!data.ok) { text.textContent = data.error; size.textContent = ""; return; }
      text.textContent = data.description;
      size.textContent = `${data.size.toLocaleString()} / ${data.total.toLocaleString()} (${(100 * data.share).toFixed(1)} %)`;
      data.warnings.forEach((w) => warnings.appendChild(el("li", { text: w })));
      data.sample.forEach((c) => sample.appendChild(el("tr", {}, [el("td", {}, [el("a", { href: c.url, text: c.external_id })]), el("td", { text: c.name }), el("td", { text: c.email })])));
    });

    // Right after a save the worker is still computing: poll the status until it has
    // finished (or failed), then reload so size, chart and warnings are today's.
    const computing = document.getElementById("segment-computing");
    if (computing) {
      let polls = 0;
      const poll = async () => {
        polls += 1;
        try {
          const response = await fetch(computing.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
          if (response.ok && (await response.json()).state !== "computing") { window.location.reload(); return; }
        } catch (e) { /* network hiccup: try again */ }
        if (polls < 400) window.setTimeout(poll, polls < 20 ? 1000 : 3000);
      };
      window.setTimeout(poll, 500);
    }

    const chartData = document.getElementById("segments-chart-data");
    if (chartData && window.Plotly && !computing) {
      const chart = JSON.parse(chartData.textContent);
      window.Plotly.newPlot("segment-size-chart", [{ x: chart.x, y: chart.y, type: "scatter", mode: "lines+markers" }], { title: chart.title, margin: { t: 40 } }, { displaylogo: false });
    }
  });
})();
