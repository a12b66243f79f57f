//! Arbitrary token id sequences decoded by the tiny model's real tokenizer
//! (`Florence::decode_ids`, special tokens kept), then post-processed for
//! every task. Input: the image size in the first 4 bytes (two u16 LE), then
//! u16 LE ids taken modulo 2048 (the tiny vocabulary has 1629 tokens, so most
//! are known and some are not).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let side = |i: usize| u32::from(u16::from_le_bytes([data[i], data[i + 1]])) + 1;
    let (width, height) = (side(0), side(2));
    let ids: Vec<u32> = data[4..]
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])) % 2048)
        .collect();
    let florence = florence_fuzz::tiny_florence();
    if let Ok(text) = florence.decode_ids(&ids) {
        florence_fuzz::exercise_post_process(&text, width, height);
    }
});
