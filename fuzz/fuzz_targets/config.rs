//! Any bytes as `taskboard.toml`: the config parser never panics; what it accepts is valid by
//! the rules the runtime relies on (at least one worker, a command for every route, reviews
//! that name another route which asks for no review of its own).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = taskboard::core::config::parse(text) else {
        return;
    };
    let rt = &config.runtime;
    assert!(rt.max_parallel >= 1 && rt.max_attempts >= 1);
    assert!(!rt.stale_after.is_zero() && !rt.rescan_every.is_zero() && !rt.debounce.is_zero());
    for (route, exec) in &config.executors {
        assert!(!exec.command.is_empty() && exec.command.iter().all(|a| !a.is_empty()));
        assert!(exec.max_cost_usd.is_none_or(|c| c >= 0.0 && c.is_finite()));
        if let Some(review) = &exec.review {
            assert_ne!(review, route);
            let reviewer = config.executors.get(review).expect("the review route exists");
            assert!(reviewer.review.is_none());
        }
    }
});
