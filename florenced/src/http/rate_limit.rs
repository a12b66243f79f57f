//! The per-client rate limit (`rate_limit`): a token bucket per client address.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;

/// Per-client token buckets.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    clients: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(config: &Config) -> Option<Arc<RateLimiter>> {
        config.rate_limit.as_ref().map(|r| {
            Arc::new(RateLimiter {
                per_second: f64::from(r.requests_per_minute) / 60.0,
                burst: f64::from(r.burst),
                clients: Mutex::new(HashMap::new()),
            })
        })
    }

    /// Ok, or the seconds until the client may retry.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut clients = self.clients.lock();
        if clients.len() > 10_000 {
            clients.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(600));
        }
        let (tokens, last) = clients.entry(ip).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_refills() {
        let l = RateLimiter {
            per_second: 1.0,
            burst: 2.0,
            clients: Mutex::new(HashMap::new()),
        };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.check(ip).is_ok());
        assert!(l.check(ip).is_ok());
        assert_eq!(l.check(ip), Err(1));
        assert!(l.check("10.0.0.1".parse().unwrap()).is_ok());
    }
}
