//! Rate limits on authentication surfaces: per key (account, IP) token buckets of N attempts per
//! minute. In memory, per node: a cluster of n nodes allows up to n × N, still a hard ceiling on
//! guessing.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{IdentityError, Result};

/// One surface's limiter; `None` when disabled.
pub struct Limiter {
    inner: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("enabled", &self.inner.is_some()).finish()
    }
}

impl Limiter {
    /// `per_minute` attempts per key per minute; 0 disables.
    pub fn per_minute(per_minute: u32) -> Self {
        Self { inner: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))) }
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
}
