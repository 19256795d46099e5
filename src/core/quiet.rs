//! The quiet-period rule: when a burst of file events is over and the board may be read.
//!
//! Owns one decision: given when the burst's first and last events arrived, the debounce and
//! the time now, either the burst is over (read the board now) or it is not (wait until a given
//! time, unless another event comes first). The quiet period after the last event is the whole
//! settling time: nothing waits on top of it. A file written without pause would never go quiet,
//! so a burst is also over once it has lasted [`MAX_BURSTS`] debounces. Times are any ordered
//! value a [`Duration`] can be added to: the shell passes `Instant`s, tests pass `Duration`s; the
//! rule reads no clock.

use std::ops::Add;
use std::time::Duration;

/// A burst that never goes quiet is released after this many debounces from its first event.
pub const MAX_BURSTS: u32 = 10;

/// What to do about a pending burst of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet<T> {
    /// The burst is over: release it now.
    Fire,
    /// Not yet: wait until this time, or until the next event.
    WaitUntil(T),
}

/// The time a burst that began at `first` and last saw an event at `last` is over: one
/// `debounce` after its last event, but no later than [`MAX_BURSTS`] debounces after its first.
pub fn deadline<T>(first: T, last: T, debounce: Duration) -> T
where
    T: Copy + Ord + Add<Duration, Output = T>,
{
    let quiet = last.max(first) + debounce;
    let cap = first + debounce.saturating_mul(MAX_BURSTS);
    quiet.min(cap)
}

/// Whether the burst (`first`, `last`) is over at `now`, and if not, until when to wait.
pub fn decide<T>(first: T, last: T, debounce: Duration, now: T) -> Quiet<T>
where
    T: Copy + Ord + Add<Duration, Output = T>,
{
    let at = deadline(first, last, debounce);
    if now >= at {
        Quiet::Fire
    } else {
        Quiet::WaitUntil(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_event_fires_one_debounce_later() {
        assert_eq!(
            decide(ms(100), ms(100), ms(50), ms(100)),
            Quiet::WaitUntil(ms(150))
        );
        assert_eq!(
            decide(ms(100), ms(100), ms(50), ms(149)),
            Quiet::WaitUntil(ms(150))
        );
        assert_eq!(decide(ms(100), ms(100), ms(50), ms(150)), Quiet::Fire);
        assert_eq!(decide(ms(100), ms(100), ms(50), ms(900)), Quiet::Fire);
    }

    #[test]
    fn each_event_pushes_the_deadline_to_one_debounce_after_it() {
        // A save made of several events: the quiet period counts from the last.
        assert_eq!(
            decide(ms(0), ms(30), ms(50), ms(60)),
            Quiet::WaitUntil(ms(80))
        );
        assert_eq!(
            decide(ms(0), ms(79), ms(50), ms(80)),
            Quiet::WaitUntil(ms(129))
        );
        assert_eq!(decide(ms(0), ms(79), ms(50), ms(129)), Quiet::Fire);
    }

    #[test]
    fn a_burst_that_never_goes_quiet_is_released_after_the_cap() {
        let cap = ms(50) * MAX_BURSTS;
        assert_eq!(deadline(ms(0), cap - ms(1), ms(50)), cap);
        assert_eq!(deadline(ms(0), cap + ms(200), ms(50)), cap);
        assert_eq!(decide(ms(0), cap - ms(10), ms(50), cap), Quiet::Fire);
    }

    #[test]
    fn a_zero_debounce_fires_at_once() {
        assert_eq!(decide(ms(5), ms(5), Duration::ZERO, ms(5)), Quiet::Fire);
    }

    #[test]
    fn events_out_of_order_count_from_the_later() {
        assert_eq!(deadline(ms(40), ms(10), ms(50)), ms(90));
    }

    #[test]
    fn a_huge_debounce_does_not_overflow_the_cap() {
        let d = Duration::MAX / 4;
        assert_eq!(deadline(ms(0), ms(0), d), d);
    }
}
