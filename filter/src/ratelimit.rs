//! The event rate limit: at most `per_second` events logged per one-second
//! window per worker (each wasm VM has its own limiter, as it has its own
//! reuse table); the rest are counted, and the count is reported once a
//! second in a `suppressed` summary event. An outage of thousands of
//! failures a second then logs a bounded number of lines exactly when
//! operators raise wasm logging, while the metrics still count every
//! request.

const SECOND_NS: u64 = 1_000_000_000;

#[derive(Debug)]
pub struct EventLimiter {
    per_second: u64,
    window_start_ns: u64,
    in_window: u64,
    suppressed: u64,
}

impl EventLimiter {
    pub fn new(per_second: u64) -> Self {
        EventLimiter {
            per_second,
            window_start_ns: 0,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Whether an event at `now_ns` may be logged; counts it as suppressed
    /// when not.
    pub fn allow(&mut self, now_ns: u64) -> bool {
        if now_ns.saturating_sub(self.window_start_ns) >= SECOND_NS || now_ns < self.window_start_ns
        {
            self.window_start_ns = now_ns;
            self.in_window = 0;
        }
        if self.in_window < self.per_second {
            self.in_window += 1;
            true
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            false
        }
    }

    /// Events suppressed since the last call.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn at_most_the_limit_per_second_and_the_rest_counted() {
        let mut limiter = EventLimiter::new(100);
        // 600 events in half a second (an outage).
        let allowed = (0..600u64)
            .filter(|i| limiter.allow(1_000 * MS + i * MS * 500 / 600))
            .count();
        assert_eq!(allowed, 100);
        assert_eq!(limiter.take_suppressed(), 500);
        assert_eq!(limiter.take_suppressed(), 0);
        // The next second starts a new window.
        assert!(limiter.allow(2_001 * MS));
    }

    #[test]
    fn a_clock_going_backwards_starts_a_new_window() {
        let mut limiter = EventLimiter::new(1);
        assert!(limiter.allow(5_000 * MS));
        assert!(!limiter.allow(5_001 * MS));
        assert!(limiter.allow(10 * MS));
    }
}
