//! `taskboard stats --html`: the report as one self-contained HTML page (inline CSS and SVG
//! charts, no script, no network), with links to the deadletter files of the failures listed.
//!
//! Owns the page's markup. Must not touch: what the numbers mean (`core::report`), and no text
//! reaches the page without being escaped. Reads the current folder only to make links relative.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

use super::{opt_ms, pct, route_label, runs, short_ts};
use crate::core::fmt::{self, Precision::Fine};
use crate::core::report::{self, Queue, Stats};

/// Escape text for HTML element content and attribute values.
fn esc(s: &str) -> String {
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

/// Text from the report, escaped by [`esc`] wherever it is spliced into the page: markup
/// characters become entities and control characters U+FFFD.
struct Escaped<'a>(&'a str);

impl Render for Escaped<'_> {
    fn render_to(&self, buffer: &mut String) {
        buffer.push_str(&esc(self.0));
    }
}

/// A number with one decimal, as the charts' coordinates are written.
fn d1(v: f64) -> String {
    format!("{v:.1}")
}

/// The page: every section of the report, in order.
pub fn render(r: &Stats, since: &str, board_dir: &Path, html_path: &Path) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { "taskboard stats" }
                // A constant of this file: no text from the report.
                style { (PreEscaped(CSS)) }
            }
            body {
                (heading(r, since))
                (summary_cards(r))
                (queue_cards(&r.queue))
                div class="grid" {
                    (throughput_section(r))
                    (error_rate_section(r))
                    (latency_section(&r.latency_ms))
                    (duration_section(r))
                    (spend_section(r))
                }
                (over_cap_table(r))
                (budget_table(r))
                @if !r.runners.local_only() {
                    (runners_table(&r.runners))
                }
                (failures_table(r, board_dir, html_path))
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
}

fn heading(r: &Stats, since: &str) -> Markup {
    html! {
        h1 { "taskboard stats" }
        p class="sub" {
            (Escaped(&short_ts(&r.since))) " → " (Escaped(&short_ts(&r.now))) " UTC (last "
            (Escaped(since)) ") · " (r.events) " events"
            @if r.bad_lines > 0 {
                " · " (r.bad_lines) " unreadable lines skipped"
            }
        }
    }
}

fn card(value: &str, label: &str) -> Markup {
    html! {
        div class="card" { b { (Escaped(value)) } span { (Escaped(label)) } }
    }
}

fn summary_cards(r: &Stats) -> Markup {
    let t = &r.totals;
    // A daily rate only over a span of at least a day; else the count and the span.
    let span = fmt::duration_ms(r.throughput.span_ms, Fine);
    let (throughput, throughput_label) = match r.throughput.per_day {
        Some(per_day) => (
            format!("{per_day:.1}"),
            format!("done per day (over {span})"),
        ),
        None => (
            format!("{} in {span}", t.done),
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
    html! {
        div class="cards" {
            @for (value, label) in &cards { (card(value, label)) }
        }
    }
}

fn queue_cards(q: &Queue) -> Markup {
    let source = if q.source == "board" {
        "from the board"
    } else {
        "replayed from events"
    };
    let counts = [
        (q.ready, "ready"),
        (q.running, "running"),
        (q.blocked, "blocked"),
        (q.failed, "failed"),
        (q.done, "done"),
    ];
    html! {
        h2 { "Queue now " span class="sub" { "(" (source) ")" } }
        div class="cards" id="queue" {
            @for (n, label) in counts { (card(&n.to_string(), label)) }
        }
    }
}

/// The days of the window as chart labels: `11-21`.
fn day_labels(r: &Stats) -> Vec<String> {
    r.days
        .iter()
        .map(|d| d.date.get(5..).unwrap_or(&d.date).to_string())
        .collect()
}

fn whole(v: f64) -> String {
    format!("{v:.0}")
}

fn throughput_section(r: &Stats) -> Markup {
    let series = [
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
    ];
    let chart = Chart {
        id: "chart-throughput",
        title: "Tasks done, failed and retried per UTC day",
        labels: &day_labels(r),
        series: &series,
        value_text: &whole,
    };
    html! { section { h2 { "Throughput per day" } (chart.render()) } }
}

fn error_rate_section(r: &Stats) -> Markup {
    let series = [Series {
        name: "error rate",
        class: "rate",
        values: r
            .days
            .iter()
            .map(|d| d.error_rate.unwrap_or(0.0) * 100.0)
            .collect(),
    }];
    let chart = Chart {
        id: "chart-error-rate",
        title: "Failed attempts / finished attempts per UTC day",
        labels: &day_labels(r),
        series: &series,
        value_text: &|v| format!("{v:.0}%"),
    };
    html! { section { h2 { "Error rate per day" } (chart.render()) } }
}

fn latency_section(l: &report::Latency) -> Markup {
    let last = report::LATENCY_BUCKETS[report::LATENCY_BUCKETS.len() - 1];
    let buckets: Vec<String> = l
        .histogram
        .iter()
        .map(|b| match b.le {
            Some(le) if le < 1000 => format!("≤{le}"),
            Some(le) => format!("≤{}", fmt::duration_ms(le, Fine)),
            None => format!(">{}", fmt::duration_ms(last, Fine)),
        })
        .collect();
    let series = [Series {
        name: "saves",
        class: "lat",
        values: l.histogram.iter().map(|b| b.count as f64).collect(),
    }];
    let chart = Chart {
        id: "chart-latency",
        title: "Save to detection latency histogram in ms (file saves per bucket)",
        labels: &buckets,
        series: &series,
        value_text: &whole,
    };
    html! {
        section {
            h2 { "Save → detection latency (ms)" }
            p class="sub" {
                "p50 " (Escaped(&opt_ms(l.p50))) " · p95 " (Escaped(&opt_ms(l.p95))) " · p99 "
                (Escaped(&opt_ms(l.p99))) " · " (l.count) " saves"
            }
            (chart.render())
        }
    }
}

fn duration_section(r: &Stats) -> Markup {
    let routes: Vec<String> = r.routes.iter().map(route_label).collect();
    let p = |f: fn(&report::Route) -> Option<u64>| -> Vec<f64> {
        r.routes.iter().map(|x| f(x).unwrap_or(0) as f64).collect()
    };
    let series = [
        Series {
            name: "p50",
            class: "p50",
            values: p(|x| x.p50_ms),
        },
        Series {
            name: "p95",
            class: "p95",
            values: p(|x| x.p95_ms),
        },
    ];
    let chart = Chart {
        id: "chart-duration",
        title: "Run duration by route, p50 and p95",
        labels: &routes,
        series: &series,
        value_text: &|v| fmt::duration_ms(v as u64, Fine),
    };
    html! { section { h2 { "Run duration by route" } (chart.render()) } }
}

fn spend_section(r: &Stats) -> Markup {
    let s = &r.spend;
    let routes: Vec<String> = s.routes.iter().map(|x| x.route.clone()).collect();
    let series = [Series {
        name: "spend",
        class: "spend",
        values: s.routes.iter().map(|x| x.cost_usd).collect(),
    }];
    let chart = Chart {
        id: "chart-spend",
        title: "Reported spend by route in US dollars",
        labels: &routes,
        series: &series,
        value_text: &fmt::usd,
    };
    html! {
        section {
            h2 { "Spend by route" }
            p class="sub" {
                (Escaped(&fmt::usd(s.cost_usd))) " over " (runs(s.runs)) " · tokens "
                (Escaped(&fmt::count(s.tokens_in))) " in / " (Escaped(&fmt::count(s.tokens_out))) " out"
            }
            (chart.render())
        }
    }
}

/// One series of bars: its name (legend, tooltips) and CSS class.
struct Series<'a> {
    name: &'a str,
    class: &'a str,
    values: Vec<f64>,
}

/// A bar chart: groups of bars (one per series) along x, labels below, a legend when there is
/// more than one series.
struct Chart<'a> {
    id: &'a str,
    title: &'a str,
    labels: &'a [String],
    series: &'a [Series<'a>],
    value_text: &'a dyn Fn(f64) -> String,
}

/// The chart's frame, in its own units (about pixels).
const W: f64 = 520.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 38.0;
const PLOT_W: f64 = W - LEFT - RIGHT;
const PLOT_H: f64 = H - TOP - BOTTOM;

impl Chart<'_> {
    fn render(&self) -> Markup {
        let max = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0f64, f64::max);
        let scale = if max > 0.0 { max } else { 1.0 };
        let title_id = format!("{}-title", self.id);
        html! {
            svg id=(Escaped(self.id)) viewBox=(format!("0 0 {W} {H}")) role="img"
                aria-labelledby=(Escaped(&title_id)) {
                title id=(Escaped(&title_id)) { (Escaped(self.title)) }
                (self.axis(scale))
                (self.bars(scale))
            }
            @if self.series.len() > 1 {
                div class="legend" {
                    @for s in self.series {
                        span { i class=(s.class) {} (Escaped(s.name)) }
                    }
                }
            }
        }
    }

    /// The axis and three grid labels.
    fn axis(&self, scale: f64) -> Markup {
        html! {
            @for i in 0..=2 {
                @let v = scale * f64::from(i) / 2.0;
                @let y = TOP + PLOT_H - PLOT_H * f64::from(i) / 2.0;
                (grid_line(y))
                text x=(LEFT - 4.0) y=(d1(y + 4.0)) text-anchor="end" { (Escaped(&(self.value_text)(v))) }
            }
        }
    }

    /// The bars, grouped by label, and every label that fits (at most about ten).
    fn bars(&self, scale: f64) -> Markup {
        let n = self.labels.len().max(1) as f64;
        let slot = PLOT_W / n;
        let group = slot * 0.8;
        let bw = group / self.series.len().max(1) as f64;
        let every = (self.labels.len() / 10).max(1);
        html! {
            @for (i, label) in self.labels.iter().enumerate() {
                @let x0 = LEFT + slot * i as f64 + (slot - group) / 2.0;
                @for (k, s) in self.series.iter().enumerate() {
                    @let v = s.values.get(i).copied().unwrap_or(0.0);
                    // A value above zero stays visible however small beside the largest.
                    @let bh = if v > 0.0 { (PLOT_H * v / scale).max(MIN_BAR) } else { 0.0 };
                    rect class=(s.class) x=(d1(x0 + bw * k as f64)) y=(d1(TOP + PLOT_H - bh))
                        width=(d1((bw - 1.0).max(0.5))) height=(d1(bh)) {
                        title { (Escaped(label)) ": " (Escaped(&(self.value_text)(v))) " " (Escaped(s.name)) }
                    }
                }
                @if i % every == 0 {
                    text x=(d1(x0 + group / 2.0)) y=(H - BOTTOM + 16.0) text-anchor="middle" {
                        (Escaped(label))
                    }
                }
            }
        }
    }
}

/// A grid line across the plot at `y`, written self-closing as SVG elements in HTML must be
/// (maud writes no `/>`); it holds numbers only, no text.
fn grid_line(y: f64) -> Markup {
    PreEscaped(format!(
        r#"<line class="axis" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/>"#,
        W - RIGHT
    ))
}

/// A table with its heading and column names; `empty` fills it when it has no rows.
fn table(heading: Markup, id: &str, columns: &[&str], empty: &str, rows: Markup) -> Markup {
    html! {
        h2 { (heading) }
        table id=(Escaped(id)) {
            thead { tr { @for c in columns { th { (Escaped(c)) } } } }
            tbody {
                @if rows.0.is_empty() {
                    tr { td colspan=(columns.len()) class="empty" { (Escaped(empty)) } }
                }
                (rows)
            }
        }
    }
}

fn attempt_text(attempt: Option<u32>) -> String {
    attempt.map_or("-".into(), |a| a.to_string())
}

fn over_cap_table(r: &Stats) -> Markup {
    let rows = html! {
        @for c in r.over_cap.last.iter().rev() {
            tr {
                td { (Escaped(&short_ts(&c.ts))) }
                td { code { (Escaped(&c.task)) } }
                td { (Escaped(&c.route)) }
                td { (attempt_text(c.attempt)) }
                td class="warn" { (Escaped(&fmt::usd(c.cost_usd))) }
                td { (Escaped(&fmt::usd(c.cap_usd))) }
            }
        }
    };
    table(
        html! { "Runs over their cap " span class="sub" { "(" (r.over_cap.count) " in the window)" } },
        "over-cap",
        &["time (UTC)", "task", "route", "attempt", "cost", "cap"],
        "No run went over its cap in this window.",
        rows,
    )
}

/// Where runs ran: this machine, each SSH host, Slurm and its nodes (only when a run went
/// elsewhere or a host was down).
fn runners_table(r: &report::Runners) -> Markup {
    let rows = html! {
        tr { td { "this machine" } td { "-" } td { (r.local) } td { "-" } }
        @for h in &r.ssh {
            tr {
                td { "ssh" } td { code { (Escaped(&h.host)) } } td { (h.runs) }
                @if h.down > 0 { td class="warn" { (h.down) } } @else { td { "0" } }
            }
        }
        @if r.slurm.runs > 0 {
            tr { td { "slurm" } td { "(all)" } td { (r.slurm.runs) } td { "-" } }
        }
        @for n in &r.slurm.nodes {
            tr { td { "slurm" } td { code { (Escaped(&n.node)) } } td { (n.runs) } td { "-" } }
        }
    };
    table(
        html! { "Where runs ran " span class="sub" { "(" (r.adopted) " adopted after a restart, " (r.host_down) " host down)" } },
        "runners",
        &["runner", "host or node", "runs", "down"],
        "Every run ran on this machine.",
        rows,
    )
}

fn budget_table(r: &Stats) -> Markup {
    let rows = html! {
        @for h in r.budget_exhausted.last.iter().rev() {
            tr {
                td { (Escaped(&h.date)) }
                td { (Escaped(&h.route)) }
                td class="warn" { (Escaped(&fmt::usd(h.spent_usd))) }
                td { (Escaped(&fmt::usd(h.budget_usd))) }
                td { (h.waiting) }
            }
        }
    };
    table(
        html! {
            "Daily budgets reached "
            span class="sub" { "(" (r.budget_exhausted.count) " in the window)" }
        },
        "budget-exhausted",
        &["day (UTC)", "route", "spent", "budget", "tasks waiting"],
        "No route reached its daily budget in this window.",
        rows,
    )
}

fn failures_table(r: &Stats, board_dir: &Path, html_path: &Path) -> Markup {
    let rows = html! {
        @for f in r.failures.iter().rev() {
            tr {
                td { (Escaped(&short_ts(&f.ts))) }
                td { code { (Escaped(&f.task)) } }
                td { (attempt_text(f.attempt)) }
                td class=(if f.outcome.starts_with("failed:") { "bad" } else { "warn" }) {
                    code { (Escaped(&f.outcome)) }
                }
                td class="note" { (Escaped(f.note.as_deref().unwrap_or(""))) }
                td {
                    @if let Some(p) = &f.deadletter {
                        (deadletter_link(p, board_dir, html_path))
                    }
                }
            }
        }
    };
    table(
        html! { "Last failures" },
        "failures",
        &[
            "time (UTC)",
            "task",
            "attempt",
            "outcome",
            "note",
            "deadletter",
        ],
        "No failures in this window.",
        rows,
    )
}

/// A link to a failure's deadletter file, named as it lies beside the board:
/// `deadletter/A-1.json`, or the archived `deadletter/archive/A-1-<time>.json` after a retry.
fn deadletter_link(path: &str, board_dir: &Path, html_path: &Path) -> Markup {
    let target = {
        let p = PathBuf::from(path);
        if p.is_absolute() {
            p
        } else {
            board_dir.join(p)
        }
    };
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
    html! { a href=(Escaped(&link_to(&target, html_path))) { (Escaped(&shown)) } }
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
