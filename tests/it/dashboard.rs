//! The HTML dashboard of `taskboard stats --html`: bars to scale, a small one still visible;
//! and, loaded in headless Chromium, every chart and table (failures, runs over their cap,
//! budgets reached) is in the DOM, untrusted text stays text, and the page logs no error.

use crate::support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use taskboard::core::event::{Event, EventKind};

use support::TempDir as Dir;

/// A few days of events over several routes, with failures whose notes hold markup.
fn events(dir: &Path) -> String {
    let now = Utc::now();
    let mut out = String::new();
    let mut push = |ev: Event| {
        out.push_str(&ev.to_line());
        out.push('\n');
    };
    let routes = ["claude", "codex", "sh"];
    for i in 0..90u32 {
        let at = now - chrono::Duration::hours(i64::from(i)) - chrono::Duration::minutes(3);
        let task = format!("T-{i}");
        let route = routes[i as usize % 3];
        push(Event::new(
            at,
            None,
            EventKind::FileChanged {
                latency_ms: Some(u64::from(i * 7 % 300)),
                bytes: 100,
            },
        ));
        push(Event::new(
            at,
            Some(&task),
            EventKind::TaskDispatched {
                attempt: 1,
                route: route.into(),
                pid: Some(1),
                agent: "bot".into(),
                phase: None,
                remote: None,
            },
        ));
        let failed = i % 7 == 0;
        push(Event::new(
            at + chrono::Duration::seconds(30),
            Some(&task),
            EventKind::TaskFinished {
                attempt: 1,
                exit_code: Some(if failed { 3 } else { 0 }),
                signal: None,
                duration_ms: u64::from(1000 + i * 997 % 90_000),
                outcome: if failed {
                    "failed:exhausted_retries".into()
                } else {
                    "done".into()
                },
                note: failed.then(|| "<script>alert(1)</script> & \"quotes\"".into()),
                stopped: None,
                phase: None,
                cost_usd: Some(f64::from(i % 5) * 0.25),
                tokens_in: Some(u64::from(i) * 100),
                tokens_out: Some(u64::from(i) * 10),
                handoff: None,
                changed: None,
            },
        ));
        if i % 11 == 0 {
            push(Event::new(
                at + chrono::Duration::seconds(30),
                Some(&task),
                EventKind::CostOverCap {
                    route: format!("{route}<b>"),
                    attempt: 1,
                    cost_usd: 1.5,
                    cap_usd: 1.0,
                },
            ));
        }
        if failed {
            push(Event::new(
                at + chrono::Duration::seconds(31),
                Some(&task),
                EventKind::TaskDeadlettered {
                    attempts: 1,
                    path: dir
                        .join(format!("deadletter/{task}.json"))
                        .display()
                        .to_string(),
                },
            ));
        }
    }
    out
}

/// Runs chromium with `args`, killed after 60 s; returns (exit ok, stdout, stderr).
fn chromium(bin: &Path, profile: &Path, args: &[String]) -> (bool, String, String) {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = crate::support::status_within(&mut child, Duration::from_secs(60))
        .expect("chromium did not finish within 60 s");
    (status.success(), out.join().unwrap(), err.join().unwrap())
}

fn find_chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// Runs `stats --html` over the folder's board and log; the page's path and text.
fn render_dashboard(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let html = dir.join("out.html");
    let out = support::finish(
        support::bin()
            .arg("stats")
            .arg(dir.join("task-board.md"))
            .arg("--html")
            .arg(&html),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    (html, page)
}

#[test]
fn dashboard_renders_in_headless_chromium() {
    let Some(bin) = find_chromium() else {
        support::skip("chromium is not installed (apt-get install chromium; .ci/run does)");
        return;
    };
    let dir = Dir::new("html");
    std::fs::write(dir.join("events.jsonl"), events(dir.path())).unwrap();
    let (html, page) = render_dashboard(dir.path());
    assert!(
        !page.contains("<script"),
        "untrusted text escaped in the file"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no network"
    );
    assert!(
        page.contains(r#"href="deadletter/T-0.json""#),
        "relative deadletter links"
    );

    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let url = format!("file://{}", html.display());
    let (ok, dom, stderr) = chromium(&bin, &profile, &["--dump-dom".into(), url]);
    assert!(ok, "chromium failed: {stderr}");
    for id in [
        "chart-throughput",
        "chart-error-rate",
        "chart-latency",
        "chart-duration",
        "chart-spend",
    ] {
        assert!(dom.contains(&format!(r#"<svg id="{id}""#)), "{id} missing");
        assert!(
            dom.contains(&format!(r#"<title id="{id}-title">"#)),
            "{id} title"
        );
    }
    assert!(dom.contains(r#"<table id="failures">"#));
    assert!(dom.contains(r#"<table id="over-cap">"#));
    assert!(dom.contains(r#"<table id="budget-exhausted">"#));
    assert!(
        dom.contains("claude&lt;b&gt;") && !dom.contains("claude<b>"),
        "a route name in the over-cap table stays text"
    );
    assert!(dom.contains("$1.50"), "over-cap costs are listed");
    assert!(dom.contains("T-84"), "the latest failure is listed");
    assert!(
        !dom.contains("<script"),
        "a note created an element instead of text"
    );
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let console_errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("Uncaught") || l.contains("ERROR:CONSOLE"))
        .collect();
    assert!(console_errors.is_empty(), "{console_errors:?}");
}

/// The `<rect …>` whose tooltip is `title`.
fn rect_of<'a>(page: &'a str, title: &str) -> &'a str {
    let at = page
        .find(&format!("<title>{title}</title>"))
        .unwrap_or_else(|| panic!("no bar titled {title}"));
    let start = page[..at].rfind("<rect").unwrap();
    &page[start..at]
}

#[test]
fn a_small_bar_stays_visible_and_the_others_keep_their_proportions() {
    let dir = Dir::new("bars");
    let now = Utc::now() - chrono::Duration::hours(1);
    let mut log = String::new();
    for (task, route, ms) in [
        ("F-1", "fast", 1u64),
        ("S-1", "slow", 600_000),
        ("H-1", "half", 300_000),
    ] {
        for ev in [
            Event::new(
                now,
                Some(task),
                EventKind::TaskDispatched {
                    attempt: 1,
                    route: route.into(),
                    pid: Some(1),
                    agent: "bot".into(),
                    phase: None,
                    remote: None,
                },
            ),
            Event::new(
                now,
                Some(task),
                EventKind::TaskFinished {
                    attempt: 1,
                    exit_code: Some(0),
                    signal: None,
                    duration_ms: ms,
                    outcome: "done".into(),
                    note: None,
                    stopped: None,
                    phase: None,
                    cost_usd: None,
                    tokens_in: None,
                    tokens_out: None,
                    handoff: None,
                    changed: None,
                },
            ),
        ] {
            log.push_str(&ev.to_line());
            log.push('\n');
        }
    }
    std::fs::write(dir.join("events.jsonl"), log).unwrap();
    let (_, page) = render_dashboard(dir.path());
    // 1 ms beside 10 minutes would be 0.0003 units tall: drawn 2 units tall instead.
    let fast = rect_of(&page, "fast: 1ms p50");
    assert!(fast.contains(r#"height="2.0""#), "{fast}");
    // Above the minimum, bars keep their proportions: half of the tallest (170 units).
    let slow = rect_of(&page, "slow: 10m00s p50");
    assert!(slow.contains(r#"height="170.0""#), "{slow}");
    let half = rect_of(&page, "half: 5m00s p50");
    assert!(half.contains(r#"height="85.0""#), "{half}");
    // Nothing stays nothing: no failures, so the failed bars have no height.
    let failed_bars: Vec<&str> = page
        .split("<rect ")
        .filter(|r| r.starts_with(r#"class="failed""#))
        .collect();
    assert!(!failed_bars.is_empty());
    assert!(
        failed_bars.iter().all(|r| r.contains(r#"height="0.0""#)),
        "{failed_bars:?}"
    );
}
