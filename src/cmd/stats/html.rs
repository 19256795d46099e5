//! `taskboard stats --html`: the report as one self-contained HTML page (inline CSS and SVG
//! charts, no script, no network), with links to the deadletter files of the failures listed.
//!
//! Owns the page's markup. Must not touch: what the numbers mean (`core::report`), and no text
//! reaches the page without being escaped. Reads the current folder only to make links relative.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use super::{opt_ms, pct, route_label, runs, short_ts};
use crate::core::fmt::{self, Precision::Fine};
use crate::core::report::{self, Report};

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A link from the HTML file to `target`: relative to the HTML file's folder when both are
/// absolute on the same tree, else a `file://` URL.
fn link_to(target: &Path, html: &Path) -> String {
    let abs = |p: &Path| {
        if p.is_absolute() {
            Some(p.to_path_buf())
        } else {
            std::env::current_dir().ok().map(|d| d.join(p))
        }
    };
    let normal = |p: PathBuf| -> PathBuf {
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                c => out.push(c),
            }
        }
        out
    };
    let (Some(target), Some(html)) = (abs(target).map(normal), abs(html).map(normal)) else {
        return url_path(&target.to_string_lossy());
    };
    let from = html.parent().unwrap_or(Path::new("/"));
    let t: Vec<_> = target.components().collect();
    let f: Vec<_> = from.components().collect();
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        // Only the root in common: an absolute URL reads better than a long climb.
        return format!("file://{}", url_path(&target.to_string_lossy()));
    }
    let mut rel = String::new();
    for _ in common..f.len() {
        rel.push_str("../");
    }
    let rest: Vec<String> = t[common..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    rel.push_str(&rest.join("/"));
    url_path(&rel)
}

/// Percent-encode what a URL path cannot hold as is.
fn url_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.sub{color:#59636e;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d1d9e0;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:22px}.card span{color:#59636e;font-size:12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:8px 24px}
@media (max-width:800px){.grid{grid-template-columns:1fr}}
svg{width:100%;height:auto;display:block}
svg text{font:11px system-ui,sans-serif;fill:#59636e}
.spend{fill:#8250df}.done{fill:#2da44e}.failed{fill:#cf222e}.retried{fill:#d4a72c}.rate{fill:#bc4c00}.lat{fill:#0969da}.p50{fill:#54aeff}.p95{fill:#0550ae}
i.done{background:#2da44e}i.failed{background:#cf222e}i.retried{background:#d4a72c}i.p50{background:#54aeff}i.p95{background:#0550ae}
.axis{stroke:#d1d9e0;stroke-width:1}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:#59636e}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #d1d9e0;vertical-align:top}
th{color:#59636e;font-weight:600}
td.note{max-width:360px;overflow-wrap:anywhere}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.bad{color:#cf222e}.warn{color:#9a6700}
.empty{color:#59636e;font-style:italic}
"#;

/// The least length (in the chart's units, about pixels) of a bar whose value is above zero.
const MIN_BAR: f64 = 2.0;

/// A bar chart: groups of bars (one per series) along x, labels below.
struct Series<'a> {
    name: &'a str,
    class: &'a str,
    values: Vec<f64>,
}

fn bar_chart(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series],
    fmt_value: &dyn Fn(f64) -> String,
) -> String {
    let (w, h) = (520.0, 220.0);
    let (left, right, top, bottom) = (44.0, 8.0, 12.0, 38.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    let scale = if max > 0.0 { max } else { 1.0 };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="{id}" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{id}-title"><title id="{id}-title">{}</title>"#,
        esc(title)
    );
    // Axis and three grid labels.
    for i in 0..=2 {
        let v = scale * i as f64 / 2.0;
        let y = top + plot_h - plot_h * i as f64 / 2.0;
        let _ = write!(
            s,
            r#"<line class="axis" x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            w - right,
            left - 4.0,
            y + 4.0,
            esc(&fmt_value(v))
        );
    }
    let n = labels.len().max(1) as f64;
    let slot = plot_w / n;
    let group = slot * 0.8;
    let bw = group / series.len().max(1) as f64;
    let every = (labels.len() / 10).max(1);
    for (i, label) in labels.iter().enumerate() {
        let x0 = left + slot * i as f64 + (slot - group) / 2.0;
        for (k, ser) in series.iter().enumerate() {
            let v = ser.values.get(i).copied().unwrap_or(0.0);
            // A value above zero stays visible however small beside the largest.
            let bh = if v > 0.0 {
                (plot_h * v / scale).max(MIN_BAR)
            } else {
                0.0
            };
            let _ = write!(
                s,
                r#"<rect class="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{}: {} {}</title></rect>"#,
                ser.class,
                x0 + bw * k as f64,
                top + plot_h - bh,
                (bw - 1.0).max(0.5),
                bh,
                esc(label),
                esc(&fmt_value(v)),
                esc(ser.name)
            );
        }
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x0 + group / 2.0,
                h - bottom + 16.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg>");
    if series.len() > 1 {
        s.push_str(r#"<div class="legend">"#);
        for ser in series {
            let _ = write!(
                s,
                r#"<span><i class="{}"></i>{}</span>"#,
                ser.class,
                esc(ser.name)
            );
        }
        s.push_str("</div>");
    }
    s
}

pub fn render(r: &Report, since: &str, board_dir: &Path, html_path: &Path) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>taskboard stats</title><style>{CSS}</style></head><body>"#
    );
    let _ = write!(
        o,
        r#"<h1>taskboard stats</h1><p class="sub">{} → {} UTC (last {}) · {} events{}</p>"#,
        esc(&short_ts(&r.since)),
        esc(&short_ts(&r.now)),
        esc(since),
        r.events,
        if r.bad_lines > 0 {
            format!(" · {} unreadable lines skipped", r.bad_lines)
        } else {
            String::new()
        }
    );
    let t = &r.totals;
    let q = &r.queue;
    // A daily rate only over a span of at least a day; else the count and the span.
    let (throughput, throughput_label) = match r.throughput.per_day {
        Some(per_day) => (
            format!("{per_day:.1}"),
            format!(
                "done per day (over {})",
                fmt::duration_ms(r.throughput.span_ms, Fine)
            ),
        ),
        None => (
            format!(
                "{} in {}",
                t.done,
                fmt::duration_ms(r.throughput.span_ms, Fine)
            ),
            "done, first to last event".to_string(),
        ),
    };
    let cards = [
        (t.done.to_string(), "tasks done"),
        (t.failed.to_string(), "tasks failed"),
        (t.retried.to_string(), "retries"),
        (throughput, throughput_label.as_str()),
        (pct(r.error_rate), "error rate"),
        (pct(r.retry_rate), "retry rate"),
        (opt_ms(r.latency_ms.p50), "save → detection p50"),
        (fmt::usd(r.spend.cost_usd), "reported spend"),
        (r.over_cap.count.to_string(), "runs over cap"),
        (
            format!("{}/{}", r.reviews.accepted, r.reviews.run),
            "reviews accepted",
        ),
        (r.evidence_mismatches.to_string(), "evidence mismatches"),
    ];
    o.push_str(r#"<div class="cards">"#);
    for (value, label) in cards {
        let _ = write!(
            o,
            r#"<div class="card"><b>{}</b><span>{}</span></div>"#,
            esc(&value),
            esc(label)
        );
    }
    o.push_str("</div>");
    let _ = write!(
        o,
        r#"<h2>Queue now <span class="sub">({})</span></h2><div class="cards" id="queue">"#,
        if q.source == "board" {
            "from the board"
        } else {
            "replayed from events"
        }
    );
    for (n, label) in [
        (q.ready, "ready"),
        (q.running, "running"),
        (q.blocked, "blocked"),
        (q.failed, "failed"),
        (q.done, "done"),
    ] {
        let _ = write!(
            o,
            r#"<div class="card"><b>{n}</b><span>{label}</span></div>"#
        );
    }
    o.push_str("</div>");

    let days: Vec<String> = r
        .days
        .iter()
        .map(|d| d.date.get(5..).unwrap_or(&d.date).to_string())
        .collect();
    let count = |v: f64| format!("{v:.0}");
    o.push_str(r#"<div class="grid"><section><h2>Throughput per day</h2>"#);
    o.push_str(&bar_chart(
        "chart-throughput",
        "Tasks done, failed and retried per UTC day",
        &days,
        &[
            Series {
                name: "done",
                class: "done",
                values: r.days.iter().map(|d| d.done as f64).collect(),
            },
            Series {
                name: "failed",
                class: "failed",
                values: r.days.iter().map(|d| d.failed as f64).collect(),
            },
            Series {
                name: "retried",
                class: "retried",
                values: r.days.iter().map(|d| d.retried as f64).collect(),
            },
        ],
        &count,
    ));
    o.push_str("</section><section><h2>Error rate per day</h2>");
    o.push_str(&bar_chart(
        "chart-error-rate",
        "Failed attempts / finished attempts per UTC day",
        &days,
        &[Series {
            name: "error rate",
            class: "rate",
            values: r
                .days
                .iter()
                .map(|d| d.error_rate.unwrap_or(0.0) * 100.0)
                .collect(),
        }],
        &|v| format!("{v:.0}%"),
    ));
    let l = &r.latency_ms;
    let _ = write!(
        o,
        "</section><section><h2>Save → detection latency (ms)</h2><p class=\"sub\">p50 {} · p95 {} · p99 {} · {} saves</p>",
        esc(&opt_ms(l.p50)),
        esc(&opt_ms(l.p95)),
        esc(&opt_ms(l.p99)),
        l.count
    );
    let buckets: Vec<String> = l
        .histogram
        .iter()
        .map(|b| match b.le {
            Some(le) if le < 1000 => format!("≤{le}"),
            Some(le) => format!("≤{}", fmt::duration_ms(le, Fine)),
            None => format!(
                ">{}",
                fmt::duration_ms(
                    report::LATENCY_BUCKETS[report::LATENCY_BUCKETS.len() - 1],
                    Fine
                )
            ),
        })
        .collect();
    o.push_str(&bar_chart(
        "chart-latency",
        "Save to detection latency histogram in ms (file saves per bucket)",
        &buckets,
        &[Series {
            name: "saves",
            class: "lat",
            values: l.histogram.iter().map(|b| b.count as f64).collect(),
        }],
        &count,
    ));
    o.push_str("</section><section><h2>Run duration by route</h2>");
    let routes: Vec<String> = r.routes.iter().map(route_label).collect();
    o.push_str(&bar_chart(
        "chart-duration",
        "Run duration by route, p50 and p95",
        &routes,
        &[
            Series {
                name: "p50",
                class: "p50",
                values: r
                    .routes
                    .iter()
                    .map(|x| x.p50_ms.unwrap_or(0) as f64)
                    .collect(),
            },
            Series {
                name: "p95",
                class: "p95",
                values: r
                    .routes
                    .iter()
                    .map(|x| x.p95_ms.unwrap_or(0) as f64)
                    .collect(),
            },
        ],
        &|v| fmt::duration_ms(v as u64, Fine),
    ));
    let _ = write!(
        o,
        "</section><section><h2>Spend by route</h2><p class=\"sub\">{} over {} · tokens {} in / {} out</p>",
        esc(&fmt::usd(r.spend.cost_usd)),
        runs(r.spend.runs),
        esc(&fmt::count(r.spend.tokens_in)),
        esc(&fmt::count(r.spend.tokens_out))
    );
    let spend_routes: Vec<String> = r.spend.routes.iter().map(|x| x.route.clone()).collect();
    o.push_str(&bar_chart(
        "chart-spend",
        "Reported spend by route in US dollars",
        &spend_routes,
        &[Series {
            name: "spend",
            class: "spend",
            values: r.spend.routes.iter().map(|x| x.cost_usd).collect(),
        }],
        &|v| fmt::usd(v),
    ));
    o.push_str("</section></div>");

    let _ = write!(
        o,
        r#"<h2>Runs over their cap <span class="sub">({} in the window)</span></h2><table id="over-cap"><thead><tr><th>time (UTC)</th><th>task</th><th>route</th><th>attempt</th><th>cost</th><th>cap</th></tr></thead><tbody>"#,
        r.over_cap.count
    );
    if r.over_cap.last.is_empty() {
        o.push_str(r#"<tr><td colspan="6" class="empty">No run went over its cap in this window.</td></tr>"#);
    }
    for c in r.over_cap.last.iter().rev() {
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class="warn">{}</td><td>{}</td></tr>"#,
            esc(&short_ts(&c.ts)),
            esc(&c.task),
            esc(&c.route),
            c.attempt.map_or("-".into(), |a| a.to_string()),
            esc(&fmt::usd(c.cost_usd)),
            esc(&fmt::usd(c.cap_usd))
        );
    }
    o.push_str("</tbody></table>");

    let _ = write!(
        o,
        r#"<h2>Daily budgets reached <span class="sub">({} in the window)</span></h2><table id="budget-exhausted"><thead><tr><th>day (UTC)</th><th>route</th><th>spent</th><th>budget</th><th>tasks waiting</th></tr></thead><tbody>"#,
        r.budget_exhausted.count
    );
    if r.budget_exhausted.last.is_empty() {
        o.push_str(r#"<tr><td colspan="5" class="empty">No route reached its daily budget in this window.</td></tr>"#);
    }
    for h in r.budget_exhausted.last.iter().rev() {
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td>{}</td><td class="warn">{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&h.date),
            esc(&h.route),
            esc(&fmt::usd(h.spent_usd)),
            esc(&fmt::usd(h.budget_usd)),
            h.waiting
        );
    }
    o.push_str("</tbody></table>");

    o.push_str(r#"<h2>Last failures</h2><table id="failures"><thead><tr><th>time (UTC)</th><th>task</th><th>attempt</th><th>outcome</th><th>note</th><th>deadletter</th></tr></thead><tbody>"#);
    if r.failures.is_empty() {
        o.push_str(r#"<tr><td colspan="6" class="empty">No failures in this window.</td></tr>"#);
    }
    for f in r.failures.iter().rev() {
        let link = match &f.deadletter {
            Some(p) => {
                let target = {
                    let p = PathBuf::from(p);
                    if p.is_absolute() {
                        p
                    } else {
                        board_dir.join(p)
                    }
                };
                // Named as it lies beside the board: `deadletter/A-1.json`, or the archived
                // `deadletter/archive/A-1-<time>.json` after a retry.
                let parts: Vec<_> = target.components().collect();
                let from = parts
                    .iter()
                    .rposition(|c| c.as_os_str() == "deadletter")
                    .unwrap_or(parts.len().saturating_sub(1));
                let shown = parts[from..]
                    .iter()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                format!(
                    r#"<a href="{}">{}</a>"#,
                    esc(&link_to(&target, html_path)),
                    esc(&shown)
                )
            }
            None => String::new(),
        };
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class="{}"><code>{}</code></td><td class="note">{}</td><td>{}</td></tr>"#,
            esc(&short_ts(&f.ts)),
            esc(&f.task),
            f.attempt.map_or("-".into(), |a| a.to_string()),
            if f.outcome.starts_with("failed:") {
                "bad"
            } else {
                "warn"
            },
            esc(&f.outcome),
            esc(f.note.as_deref().unwrap_or("")),
            link
        );
    }
    o.push_str("</tbody></table></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_when_they_share_a_folder() {
        assert_eq!(
            link_to(
                Path::new("/home/me/board/deadletter/A-1.json"),
                Path::new("/home/me/board/out.html")
            ),
            "deadletter/A-1.json"
        );
        assert_eq!(
            link_to(
                Path::new("/home/me/board/deadletter/A 1.json"),
                Path::new("/home/me/reports/out.html")
            ),
            "../board/deadletter/A%201.json"
        );
        assert_eq!(
            link_to(
                Path::new("/srv/b/deadletter/A.json"),
                Path::new("/tmp/o.html")
            ),
            "file:///srv/b/deadletter/A.json"
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script>&"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
    }
}
