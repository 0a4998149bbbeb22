//! The idle times of reused connections that failed, in bounded memory: a
//! fixed histogram of 100 ms buckets up to 2 minutes. Their shape reveals
//! the backend's keep-alive timeout (they pile up just past it).

use serde::Serialize;

const BUCKET_MS: u64 = 100;
const BUCKETS: usize = 1200;

#[derive(Debug, Clone)]
pub struct Idle {
    buckets: Vec<u64>,
    over: u64,
    count: u64,
    min_ms: u64,
    max_ms: u64,
}

impl Default for Idle {
    fn default() -> Self {
        Idle {
            buckets: vec![0; BUCKETS],
            over: 0,
            count: 0,
            min_ms: u64::MAX,
            max_ms: 0,
        }
    }
}

/// One row of the printed distribution: `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bin {
    pub from_ms: u64,
    pub to_ms: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleReport {
    pub count: u64,
    pub min_ms: u64,
    /// Median and 90th percentile, to the 100 ms bucket (its middle).
    pub median_ms: u64,
    pub p90_ms: u64,
    pub max_ms: u64,
    pub bins: Vec<Bin>,
}

impl Idle {
    pub fn add(&mut self, ms: u64) {
        self.count += 1;
        self.min_ms = self.min_ms.min(ms);
        self.max_ms = self.max_ms.max(ms);
        match self.buckets.get_mut((ms / BUCKET_MS) as usize) {
            Some(b) => *b += 1,
            None => self.over += 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The value below which `q` of the samples fall, to the bucket.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64 * q).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let mid = i as u64 * BUCKET_MS + BUCKET_MS / 2;
                return Some(mid.clamp(self.min_ms, self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    pub fn report(&self) -> Option<IdleReport> {
        if self.count == 0 {
            return None;
        }
        Some(IdleReport {
            count: self.count,
            min_ms: self.min_ms,
            median_ms: self.quantile_ms(0.5)?,
            p90_ms: self.quantile_ms(0.9)?,
            max_ms: self.max_ms,
            bins: self.bins(),
        })
    }

    /// At most about 12 rows, of a width that suits the spread (0.1 to
    /// 10 s), plus one row for everything past the histogram's 2 minutes.
    fn bins(&self) -> Vec<Bin> {
        let limit = BUCKET_MS * BUCKETS as u64;
        let mut bins: Vec<Bin> = Vec::new();
        if self.min_ms < limit {
            let top = self.max_ms.min(limit - 1);
            let span = top - self.min_ms;
            let width = [100, 500, 1_000, 5_000, 10_000]
                .into_iter()
                .find(|w| span / w < 12)
                .unwrap_or(10_000);
            let mut from = self.min_ms / width * width;
            while from <= top {
                let to = from + width;
                let lo = (from / BUCKET_MS) as usize;
                let hi = ((to / BUCKET_MS) as usize).min(BUCKETS);
                let count = self.buckets.get(lo..hi).map_or(0, |s| s.iter().sum());
                bins.push(Bin {
                    from_ms: from,
                    to_ms: to,
                    count,
                });
                from = to;
            }
        }
        if self.over > 0 {
            bins.push(Bin {
                from_ms: limit,
                to_ms: self.max_ms + 1,
                count: self.over,
            });
        }
        bins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_like_idle_times() {
        let mut idle = Idle::default();
        for ms in [5_510, 5_560, 5_590, 5_620, 5_900] {
            idle.add(ms);
        }
        let r = idle.report().unwrap();
        assert_eq!((r.count, r.min_ms, r.max_ms), (5, 5_510, 5_900));
        assert_eq!(r.median_ms, 5_550);
        assert_eq!(r.bins.first().unwrap().from_ms, 5_500);
        assert_eq!(r.bins.iter().map(|b| b.count).sum::<u64>(), 5);
        assert!(r.bins.len() <= 12);
    }

    #[test]
    fn beyond_the_histogram_is_still_counted() {
        let mut idle = Idle::default();
        idle.add(1_000);
        idle.add(3_600_000);
        let r = idle.report().unwrap();
        assert_eq!(r.max_ms, 3_600_000);
        assert_eq!(r.bins.iter().map(|b| b.count).sum::<u64>(), 2);
        assert!(r.bins.len() <= 13, "{:?}", r.bins);
        assert_eq!(r.bins.last().unwrap().from_ms, 120_000);
        assert_eq!(Idle::default().report(), None);
    }
}
