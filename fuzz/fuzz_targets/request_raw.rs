//! A raw image body with its parameters in the query string (`?query` line,
//! then the body) through florenced's body reader and parser, then every
//! field accessor the routes use.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (query, body) = florence_fuzz::split_query(data);
    florence_fuzz::exercise_request("image/png", query.as_deref(), body);
});
