//! A multipart/form-data body (boundary `florencefuzz`, optionally after a
//! `?query` line) through florenced's body reader and parser, then every
//! field accessor the routes use.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (query, body) = florence_fuzz::split_query(data);
    let content_type = format!("multipart/form-data; boundary={}", florence_fuzz::BOUNDARY);
    florence_fuzz::exercise_request(&content_type, query.as_deref(), body);
});
