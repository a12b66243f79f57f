//! A JSON body (optionally after a `?query` line) through florenced's body
//! reader and its one strict parser, then every field accessor the routes use.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (query, body) = florence_fuzz::split_query(data);
    florence_fuzz::exercise_request("application/json", query.as_deref(), body);
});
