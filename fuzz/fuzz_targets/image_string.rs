//! The `image` field as text: a data URI or bare base64, decoded directly and
//! as it arrives in a JSON body and in a multipart text part.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = florenced::http::request::decode_image_string(text);
    let json = serde_json::json!({ "image": text }).to_string();
    florence_fuzz::exercise_request("application/json", None, json.as_bytes());
    let b = florence_fuzz::BOUNDARY;
    let form = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n{text}\r\n--{b}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={b}");
    florence_fuzz::exercise_request(&content_type, None, form.as_bytes());
});
