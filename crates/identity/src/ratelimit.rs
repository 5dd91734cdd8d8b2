//! Rate limits on authentication surfaces: per key (account, IP) token buckets of N attempts per
//! minute. In memory, per node: a cluster of n nodes allows up to n × N, still a hard ceiling on
//! guessing.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{IdentityError, Result};

/// One surface's limiter; `None` when disabled.
pub struct Limiter {
    inner: Option<DefaultKeyedRateLimiter<String>>,
    /// Keys refused until the given instant, for limits that only count failures.
    blocked: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("enabled", &self.inner.is_some()).finish()
    }
}

impl Limiter {
    /// `per_minute` attempts per key per minute; 0 disables.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            inner: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// For limits on failures only (protocol clients authenticate every request): refuses a key
    /// whose failures went over the limit, until the wait is over.
    pub fn check_blocked(&self, key: &str) -> Result<()> {
        let blocked = self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match blocked.get(key) {
            Some(until) if *until > Instant::now() => {
                Err(IdentityError::RateLimited(until.duration_since(Instant::now()).as_secs().max(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure for `key`; over the limit the key is blocked (see [`Self::check_blocked`]).
    pub fn record_failure(&self, key: &str) -> Result<()> {
        match self.check(key) {
            Err(IdentityError::RateLimited(secs)) => {
                let until = Instant::now() + Duration::from_secs(secs);
                self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.to_owned(), until);
                Err(IdentityError::RateLimited(secs))
            }
            other => other,
        }
    }

    /// Counts one attempt for `key`; `RateLimited` with the wait when over the limit.
    pub fn check(&self, key: &str) -> Result<()> {
        let Some(limiter) = &self.inner else { return Ok(()) };
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(IdentityError::RateLimited(wait.max(Duration::from_secs(1)).as_secs()))
            }
        }
    }

    /// Drops idle keys; call now and then so memory stays bounded.
    pub fn shrink(&self) {
        if let Some(limiter) = &self.inner {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratelimit_blocks_after_quota_per_key() {
        let limiter = Limiter::per_minute(3);
        for _ in 0..3 {
            limiter.check("a@x").expect("within quota");
        }
        match limiter.check("a@x") {
            Err(IdentityError::RateLimited(secs)) => assert!((1..=60).contains(&secs)),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        limiter.check("b@x").expect("other keys are independent");
        Limiter::per_minute(0).check("a@x").expect("disabled");
    }

    #[test]
    fn failure_limits_block_only_after_failures() {
        let limiter = Limiter::per_minute(2);
        for _ in 0..10 {
            limiter.check_blocked("ip").expect("successes are not counted");
        }
        limiter.record_failure("ip").expect("first failure");
        limiter.record_failure("ip").expect("second failure");
        assert!(matches!(limiter.record_failure("ip"), Err(IdentityError::RateLimited(_))));
        assert!(matches!(limiter.check_blocked("ip"), Err(IdentityError::RateLimited(_))));
        limiter.check_blocked("other").expect("other keys pass");
    }
}
