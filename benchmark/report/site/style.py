"""The site's inline CSS and its one script.

A drill-down (`section.drill`) is hidden until its cell's link targets it (`:target`); it then
shows as a panel over the page, beside the matrix, until its `close` link (back to the setup)
is followed. The pages need no script to work. The script only records which drill-downs the browser shows on
the body (`data-drill-shown`, their ids), so a headless browser's DOM dump can check the CSS.
"""

from __future__ import annotations

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1f;margin:0 auto;
 max-width:1500px;padding:1rem 2rem}
h1{margin:.4rem 0}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
h3{margin:1.4rem 0 .4rem}a{color:#1a4fa0}nav{font-size:.9rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:.3rem 0}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{padding:.25rem .55rem;border-bottom:1px solid #e4e4e4;text-align:left;white-space:nowrap}
td.wrap{white-space:normal;min-width:22rem}
thead th{background:#f1f2f5}
table.heatmap th[scope=row]{background:#f7f7f7}
table.heatmap td.cell{padding:0;border:2px solid #fff;text-align:center;min-width:7rem}
table.heatmap td.cell a{display:block;padding:.5rem .7rem;color:inherit;text-decoration:none}
table.heatmap td.cell a:hover,table.heatmap td.cell a:focus{outline:2px solid #1d1d1f}
table.heatmap td.v-supported{box-shadow:inset 0 0 0 2px #1d1d1f;font-weight:700}
table.heatmap td.empty{color:#999;text-align:center}
.scale{display:flex;align-items:center;gap:.5rem;font-size:.85rem;color:#555;margin:.4rem 0}
.scale .bar{display:inline-block;width:14rem;height:.9rem;border:1px solid #ccc;
 background:linear-gradient(to right,rgb(33,102,172),#fff,rgb(178,24,43))}
section.drill{display:none;position:fixed;top:1rem;right:1rem;bottom:1rem;width:min(56rem,92vw);
 overflow:auto;z-index:10;padding:.4rem 1.2rem;border:1px solid #bbb;border-left:4px solid #1a4fa0;
 background:#fafbfd;box-shadow:0 4px 24px rgba(0,0,0,.25)}
section.drill:target{display:block}
.note,.meta,.prov{color:#555;font-size:.85rem}.warn{color:#8a4b00;font-size:.9rem}
table.refs td{white-space:normal;max-width:22rem;vertical-align:top}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
"""
DRILL_JS = """
(function () {
  function mark() {
    var shown = Array.prototype.filter.call(document.querySelectorAll("section.drill"), function (s) {
      return getComputedStyle(s).display !== "none";
    }).map(function (s) { return s.id; });
    document.body.dataset.drillShown = shown.join(" ");
  }
  mark();
  window.addEventListener("load", mark);
  window.addEventListener("hashchange", mark);
})();
"""
