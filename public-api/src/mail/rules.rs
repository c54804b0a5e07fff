//! What is emailed, how long a claim on a row lasts, and how retries back off.

use std::time::Duration;

/// The notification kinds that are also emailed: changes the person should hear of even when
/// not signed in.
pub const EMAILED: [&str; 4] =
    ["application.status", "insurance.decided", "application.assigned", "auth.device_sign_in"];

/// How long a claimed row is left to its sender before another may take it: far longer than
/// one send may take (each is cut at `timeout_secs`), and one row is claimed at a time, so a
/// lease never ends while its sender still holds the row.
pub(super) const LEASE_SECS: i64 = 300;

/// The delay before attempt `attempts + 1`: 30 s doubling, at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let exponent = attempts.clamp(1, 8) as u32 - 1;
    Duration::from_secs((30u64 << exponent).min(3600))
}

/// How an attempt ended.
pub(super) enum Sent {
    Yes,
    /// Nothing to send any more (the person was erased, turned email off, or has no usable
    /// address): given up, with why.
    Moot(&'static str),
    /// Try again later, unless the attempts are used up.
    Later(String),
    /// The relay refused for good.
    Never(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(8), Duration::from_secs(3600));
        assert_eq!(backoff(50), Duration::from_secs(3600));
    }
}
