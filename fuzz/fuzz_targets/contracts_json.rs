//! The contracts JSON export: parse, and what parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_gateway::ContractSet;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = ContractSet::from_json(data) {
        let again = ContractSet::from_json(&set.to_json()).expect("our own export parses");
        assert_eq!(again, set);
    }
});
