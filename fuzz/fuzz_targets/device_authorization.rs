//! The device authorization response (RFC 8628 §3.2), and the polling machine fed with what
//! it parsed: it never polls before the interval, nor at or after the expiry.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use oauth_core::http::Response;
use oauth_core::{DevicePoll, DeviceStep, Now, parse_device_authorization_response};

fuzz_target!(|data: &[u8]| {
    let start = Now::new(SystemTime::UNIX_EPOCH, Instant::now());
    for content_type in ["application/json", "application/x-www-form-urlencoded"] {
        let response = Response::builder()
            .status(200)
            .header("content-type", content_type)
            .body(data.to_vec())
            .unwrap_or_default();
        let Ok(auth) = parse_device_authorization_response(&response, start) else {
            continue;
        };
        assert!(!auth.interval().is_zero() && auth.interval() <= oauth_core::MAX_INTERVAL);
        assert!(!auth.expires_in().is_zero() && auth.expires_in() <= oauth_core::MAX_EXPIRES_IN);
        let mut poll = DevicePoll::new(&auth, start);
        // Asked right away and just before the interval: wait.
        assert!(matches!(poll.poll(start), DeviceStep::Wait(_) | DeviceStep::Done(_)));
        let almost = start.after(auth.interval() - Duration::from_millis(1));
        assert!(!matches!(poll.poll(almost), DeviceStep::Send(_)));
        let after = start.after(auth.expires_in());
        assert!(!matches!(poll.poll(after), DeviceStep::Send(_)));
    }
});
