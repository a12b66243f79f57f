//! Prompt building for any task with any text and region, tokenized by the
//! tiny model's real tokenizer (`Florence::prompt_ids`). Input lines: the
//! task (name or token; otherwise its first byte picks one), the image size
//! `W H`, the region `x1,y1,x2,y2` (empty: none), then the text (may hold
//! `<loc_>` region notation; empty: none).
#![no_main]

use florence_fuzz::{next_line, parse_size};
use gstflorence::engine::task::{Task, TaskInput, parse_region};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (task_line, rest) = next_line(data);
    let (size_line, rest) = next_line(rest);
    let (region_line, text) = next_line(rest);
    let task = String::from_utf8_lossy(task_line)
        .parse::<Task>()
        .unwrap_or_else(|_| {
            let pick = task_line.first().copied().unwrap_or(0);
            Task::ALL[usize::from(pick) % Task::ALL.len()]
        });
    let (width, height) = parse_size(size_line);
    let region = parse_region(&String::from_utf8_lossy(region_line)).ok();
    let text = (!text.is_empty()).then(|| String::from_utf8_lossy(text).into_owned());
    let input = TaskInput { text, region };
    if let Ok(ids) = florence_fuzz::tiny_florence().prompt_ids(task, &input, width, height) {
        assert!(ids.len() >= 2, "a prompt has at least <s> and </s>");
    }
});
