//! Authentication failures by reason, counted where requests are refused
//! (the auth layer) and read by the metrics.
use std::sync::atomic::{AtomicU64, Ordering};

use super::AuthError;

/// Every reason, in the order [`AuthFailures::snapshot`] reports them.
pub const REASONS: [&str; 8] = [
    "missing",
    "invalid_key",
    "revoked",
    "jwt_off",
    "invalid_token",
    "unknown_project",
    "server_not_granted",
    "not_admin",
];

/// Refused requests per reason since start (rate limits are counted apart,
/// by [`super::rate_limit::RateLimits::refusals`]).
#[derive(Debug, Default)]
pub struct AuthFailures {
    counts: [AtomicU64; REASONS.len()],
}

impl AuthFailures {
    /// Counts one refusal; rate-limit refusals are not failures here.
    pub fn count(&self, err: &AuthError) {
        let reason = match err {
            AuthError::Missing => "missing",
            AuthError::InvalidKey => "invalid_key",
            AuthError::Revoked(_) => "revoked",
            AuthError::JwtOff => "jwt_off",
            AuthError::Jwt(_) => "invalid_token",
            AuthError::UnknownProject(_) => "unknown_project",
            AuthError::ServerNotGranted { .. } => "server_not_granted",
            AuthError::RateLimited(_) => return,
        };
        if let Some(slot) = REASONS.iter().position(|known| *known == reason) {
            self.counts[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a caller who is known but whose role does not allow the route.
    pub fn count_forbidden(&self) {
        if let Some(slot) = REASONS.iter().position(|known| *known == "not_admin") {
            self.counts[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every reason with its count.
    pub fn snapshot(&self) -> [(&'static str, u64); REASONS.len()] {
        std::array::from_fn(|i| (REASONS[i], self.counts[i].load(Ordering::Relaxed)))
    }
}
