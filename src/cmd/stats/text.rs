//! `taskboard stats` as text for a terminal: the report in aligned sections, with bars drawn in
//! block characters and colour when the terminal takes it.
//!
//! Owns the text layout only. Must not touch: files, the clock, or what the numbers mean
//! (`core::report` decides that).

use std::fmt::Write as _;

use super::{clean, opt_ms, pct, route_label, runs, short_ts};
use crate::cmd::Paint;
use crate::core::fmt::{self, Precision::Fine};
use crate::core::report::{self, Stats};

/// Throughput for people: the count and the span the window's events cover, with a rate only
/// for the periods that span covers (never a day extrapolated from minutes).
pub fn throughput_text(t: &report::Throughput) -> String {
    if t.from.is_none() {
        return format!("{} done (no events in the window)", t.done);
    }
    let head = format!(
        "{} done in {} (first to last event)",
        t.done,
        fmt::duration_ms(t.span_ms, Fine)
    );
    match (t.per_day, t.per_hour) {
        (Some(day), Some(hour)) => format!("{head}: {day:.1} done/day, {hour:.2} done/hour"),
        (None, Some(hour)) => format!("{head}: {hour:.2} done/hour; under a day, no daily rate"),
        _ => format!("{head}; under an hour, no rate"),
    }
}

/// A horizontal bar of `value / max` of `width` cells, in eighths of a block.
fn bar(value: f64, max: f64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    if max <= 0.0 || value <= 0.0 {
        return String::new();
    }
    let eighths = ((value / max) * (width * 8) as f64).round().max(1.0) as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(PARTS[eighths % 8]);
    }
    s
}

/// The report as text for a terminal, section by section.
pub fn render(r: &Stats, since: &str, p: Paint) -> String {
    let mut o = String::new();
    summary(&mut o, r, since, p);
    per_day(&mut o, r, p);
    latency(&mut o, r, p);
    durations(&mut o, r, p);
    spend(&mut o, r, p);
    limits(&mut o, r, p);
    runners(&mut o, &r.runners, p);
    queue(&mut o, r, p);
    failures(&mut o, r, p);
    o
}

/// The heading, the task totals, the throughput and the error rate.
fn summary(o: &mut String, r: &Stats, since: &str, p: Paint) {
    let _ = writeln!(
        o,
        "{}  {} → {} UTC (last {}), {} events",
        p.bold("taskboard stats"),
        short_ts(&r.since),
        short_ts(&r.now),
        clean(since),
        r.events
    );
    if r.bad_lines > 0 {
        let _ = writeln!(
            o,
            "{}",
            p.yellow(&format!("{} unreadable lines skipped", r.bad_lines))
        );
    }
    let t = &r.totals;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Tasks        {} done   {} failed   {} retried",
        p.green(&t.done.to_string()),
        if t.failed > 0 {
            p.red(&t.failed.to_string())
        } else {
            t.failed.to_string()
        },
        if t.retried > 0 {
            p.yellow(&t.retried.to_string())
        } else {
            t.retried.to_string()
        },
    );
    let _ = writeln!(o, "Throughput   {}", throughput_text(&r.throughput));
    let _ = writeln!(
        o,
        "Error rate   {} of {} finished attempts   retry rate {}",
        pct(r.error_rate),
        t.attempts_finished,
        pct(r.retry_rate)
    );
}

/// Done, failed, retried and the error rate per UTC day, with bars.
fn per_day(o: &mut String, r: &Stats, p: Paint) {
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{}",
        p.bold("Per day (UTC)   done                            failed retried  errors")
    );
    let max_done = r.days.iter().map(|d| d.done).max().unwrap_or(0) as f64;
    for d in &r.days {
        let _ = writeln!(
            o,
            "{}  {:>5} {:<24} {:>6} {:>7} {:>7}",
            d.date,
            d.done,
            p.green(&bar(d.done as f64, max_done, 24)),
            d.failed,
            d.retried,
            pct(d.error_rate)
        );
    }
}

/// Save to detection latency: percentiles and a histogram.
fn latency(o: &mut String, r: &Stats, p: Paint) {
    let l = &r.latency_ms;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{}   p50 {}  p95 {}  p99 {}  max {}  ({} saves)",
        p.bold("Save → detection"),
        opt_ms(l.p50),
        opt_ms(l.p95),
        opt_ms(l.p99),
        opt_ms(l.max),
        l.count
    );
    if l.count > 0 {
        let max = l.histogram.iter().map(|b| b.count).max().unwrap_or(0) as f64;
        for b in &l.histogram {
            let label = match b.le {
                Some(le) => format!("≤{}", fmt::duration_ms(le, Fine)),
                None => "more".to_string(),
            };
            let _ = writeln!(
                o,
                "  {label:>7} {:>8} {}",
                b.count,
                p.cyan(&bar(b.count as f64, max, 30))
            );
        }
    }
}

/// Run durations by route.
fn durations(o: &mut String, r: &Stats, p: Paint) {
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{}",
        p.bold("Run duration by route      runs  failed     p50      p95")
    );
    if r.routes.is_empty() {
        let _ = writeln!(o, "  (no finished runs)");
    }
    let max_p95 = r.routes.iter().filter_map(|x| x.p95_ms).max().unwrap_or(0) as f64;
    for route in &r.routes {
        let _ = writeln!(
            o,
            "  {:<22} {:>6} {:>7} {:>7} {:>8}  {}",
            clean(&route_label(route)),
            route.runs,
            route.failed,
            opt_ms(route.p50_ms),
            opt_ms(route.p95_ms),
            p.cyan(&bar(route.p95_ms.unwrap_or(0) as f64, max_p95, 20))
        );
    }
}

/// The spend lines of the text report: by route, then by UTC day.
fn spend(o: &mut String, r: &Stats, p: Paint) {
    let s = &r.spend;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{}        {} over {}   tokens {} in / {} out",
        p.bold("Spend"),
        fmt::usd(s.cost_usd),
        runs(s.runs),
        fmt::count(s.tokens_in),
        fmt::count(s.tokens_out)
    );
    let max_route = s.routes.iter().map(|x| x.cost_usd).fold(0.0, f64::max);
    for route in &s.routes {
        let _ = writeln!(
            o,
            "  {:<22} {:>9} {:>9}  {}",
            clean(&route.route),
            fmt::usd(route.cost_usd),
            runs(route.runs),
            p.cyan(&bar(route.cost_usd, max_route, 20))
        );
    }
    if !s.days.is_empty() {
        let _ = writeln!(o, "  per UTC day:");
        let mut i = 0;
        while i < s.days.len() {
            let date = &s.days[i].date;
            let mut parts = Vec::new();
            let mut total = 0.0;
            while i < s.days.len() && &s.days[i].date == date {
                parts.push(format!(
                    "{} {}",
                    clean(&s.days[i].route),
                    fmt::usd(s.days[i].cost_usd)
                ));
                total += s.days[i].cost_usd;
                i += 1;
            }
            let _ = writeln!(
                o,
                "  {date}  {:>9}   {}",
                fmt::usd(total),
                parts.join(" · ")
            );
        }
    }
}

/// The caps, budgets, reviews, approvals and evidence lines of the text report.
fn limits(o: &mut String, r: &Stats, p: Paint) {
    let oc = &r.over_cap;
    let over = format!("{} over the route's cap", runs(oc.count));
    let _ = writeln!(
        o,
        "Over cap     {}",
        if oc.count > 0 { p.yellow(&over) } else { over }
    );
    for c in &oc.last {
        let _ = writeln!(
            o,
            "{}",
            p.yellow(&format!(
                "  {}  {}  {}  attempt {}  {} > cap {}",
                short_ts(&c.ts),
                clean(&c.task),
                clean(&c.route),
                c.attempt.map_or("-".into(), |a| a.to_string()),
                fmt::usd(c.cost_usd),
                fmt::usd(c.cap_usd)
            ))
        );
    }
    let b = &r.budget_exhausted;
    let _ = writeln!(
        o,
        "Budgets      {} reached a daily budget (its ready tasks wait for the next UTC day)",
        match b.count {
            1 => "1 time a route".to_string(),
            n => format!("{n} times a route"),
        }
    );
    for h in &b.last {
        let _ = writeln!(
            o,
            "{}",
            p.yellow(&format!(
                "  {}  {}  spent {} of {}  {} waiting",
                h.date,
                clean(&h.route),
                fmt::usd(h.spent_usd),
                fmt::usd(h.budget_usd),
                h.waiting
            ))
        );
    }
    let rv = &r.reviews;
    let _ = writeln!(
        o,
        "Reviews      {} run   {} accepted   {} bounced",
        rv.run,
        p.green(&rv.accepted.to_string()),
        if rv.bounced > 0 {
            p.yellow(&rv.bounced.to_string())
        } else {
            rv.bounced.to_string()
        }
    );
    let ap = &r.approvals;
    if ap.any() {
        // Only where routes work in worktrees: other boards' reports stay as they were.
        let _ = writeln!(
            o,
            "Approvals    {} asked   {} merged   {} refused   {} rejected",
            ap.requested,
            p.green(&ap.merged.to_string()),
            if ap.refused > 0 {
                p.yellow(&ap.refused.to_string())
            } else {
                ap.refused.to_string()
            },
            ap.rejected
        );
    }
    let _ = writeln!(
        o,
        "Evidence     {} claimed changes that differ from what git saw",
        if r.evidence_mismatches > 0 {
            p.yellow(&runs(r.evidence_mismatches))
        } else {
            runs(r.evidence_mismatches)
        }
    );
}

/// Where runs ran, when any went to another machine or a host was down (a board whose runs all
/// ran here reports as before): `Runners      4 here   ssh gpu1 3 (down 1)   slurm 2 (node1 1)`.
fn runners(o: &mut String, r: &report::Runners, p: Paint) {
    if r.local_only() {
        return;
    }
    let mut parts = vec![format!("{} here", r.local)];
    for h in &r.ssh {
        let down = if h.down > 0 {
            format!(" {}", p.yellow(&format!("(down {})", h.down)))
        } else {
            String::new()
        };
        parts.push(format!("ssh {} {}{down}", clean(&h.host), h.runs));
    }
    if r.slurm.runs > 0 || !r.slurm.nodes.is_empty() {
        let nodes: Vec<String> = r
            .slurm
            .nodes
            .iter()
            .map(|n| format!("{} {}", clean(&n.node), n.runs))
            .collect();
        let nodes = if nodes.is_empty() {
            String::new()
        } else {
            format!(" ({})", nodes.join(", "))
        };
        parts.push(format!("slurm {}{nodes}", r.slurm.runs));
    }
    if r.adopted > 0 {
        parts.push(format!("{} adopted after a restart", r.adopted));
    }
    if r.host_down > 0 {
        parts.push(p.yellow(&format!("host down {}×", r.host_down)));
    }
    let _ = writeln!(o, "Runners      {}", parts.join("   "));
}

/// The queue now, from the board or replayed from the events.
fn queue(o: &mut String, r: &Stats, p: Paint) {
    let q = &r.queue;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} ({})   ready {}   running {}   blocked {}   failed {}   done {}",
        p.bold("Queue now"),
        if q.source == "board" {
            "from the board"
        } else {
            "replayed from events"
        },
        q.ready,
        q.running,
        q.blocked,
        if q.failed > 0 {
            p.red(&q.failed.to_string())
        } else {
            q.failed.to_string()
        },
        q.done
    );
}

/// The last failures, one line each.
fn failures(o: &mut String, r: &Stats, p: Paint) {
    if !r.failures.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "{}", p.bold("Last failures"));
        for f in &r.failures {
            let mut line = format!(
                "  {}  {}  attempt {}  {}",
                short_ts(&f.ts),
                clean(&f.task),
                f.attempt.map_or("-".into(), |a| a.to_string()),
                clean(&f.outcome)
            );
            if let Some(note) = &f.note {
                let note: String = clean(note).chars().take(80).collect();
                let _ = write!(line, "  \"{note}\"");
            }
            if let Some(dl) = &f.deadletter {
                let _ = write!(line, "  {}", clean(dl));
            }
            let _ = writeln!(
                o,
                "{}",
                if f.outcome.starts_with("failed:") {
                    p.red(&line)
                } else {
                    p.yellow(&line)
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_grow_in_eighths() {
        assert_eq!(bar(1.0, 1.0, 2), "██");
        assert_eq!(bar(1.0, 16.0, 2), "▏");
        assert_eq!(bar(0.0, 16.0, 2), "");
    }
}
