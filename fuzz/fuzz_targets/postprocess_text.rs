//! The post-processor of every task on arbitrary generated text. Input: an
//! optional first line `@W H` (the image size, else 640x480), then the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ((width, height), text) = match data.strip_prefix(b"@") {
        Some(rest) => {
            let (line, text) = florence_fuzz::next_line(rest);
            (florence_fuzz::parse_size(line), text)
        }
        None => ((640, 480), data),
    };
    let text = String::from_utf8_lossy(text);
    florence_fuzz::exercise_post_process(&text, width, height);
});
