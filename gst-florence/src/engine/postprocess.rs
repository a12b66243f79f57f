//! Parsing generated text into task results, as transformers' `Florence2PostProcessor` does.
//!
//! The reference uses Python regular expressions with lookaheads; the scanners
//! below implement the same matches by hand (`findall`/`finditer` semantics:
//! leftmost match, continue after it) and never panic on malformed text.
//! Coordinates are dequantised from the 1000 location bins of the original
//! image size: `(bin + 0.5) * size / 1000`, computed in float32 and truncated to
//! an integer, as transformers 5 does.

use serde::{Deserialize, Serialize};

use super::task::ParseKind;

/// The structured result of one task, in the shapes of the reference `post_process_generation`.
/// Read back (the element's `result` field, `protocol::task_result`) by its
/// keys alone: unknown keys are refused, so no shape is taken for another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum TaskResult {
    Text(String),
    Boxes {
        bboxes: Vec<[f64; 4]>,
        labels: Vec<String>,
    },
    Quads {
        quad_boxes: Vec<[f64; 8]>,
        labels: Vec<String>,
    },
    Polygons {
        polygons: Vec<Vec<Vec<f64>>>,
        labels: Vec<String>,
    },
    BoxesOrPolygons {
        bboxes: Vec<[f64; 4]>,
        bboxes_labels: Vec<String>,
        polygons: Vec<Vec<Vec<f64>>>,
        polygons_labels: Vec<String>,
    },
}

impl TaskResult {
    /// Scales every coordinate (x, y, x, y, ... in each box, quad and
    /// polygon) by (`sx`, `sy`): the result for the same frame at another size.
    pub fn scale(&mut self, sx: f64, sy: f64) {
        let points = |xy: &mut [f64]| {
            for (i, v) in xy.iter_mut().enumerate() {
                *v *= if i % 2 == 0 { sx } else { sy };
            }
        };
        let polygons = |polygons: &mut Vec<Vec<Vec<f64>>>| {
            for p in polygons.iter_mut().flatten() {
                points(p);
            }
        };
        match self {
            TaskResult::Text(_) => {}
            TaskResult::Boxes { bboxes, .. } => bboxes.iter_mut().for_each(|b| points(b)),
            TaskResult::Quads { quad_boxes, .. } => quad_boxes.iter_mut().for_each(|q| points(q)),
            TaskResult::Polygons { polygons: p, .. } => polygons(p),
            TaskResult::BoxesOrPolygons {
                bboxes,
                polygons: p,
                ..
            } => {
                bboxes.iter_mut().for_each(|b| points(b));
                polygons(p);
            }
        }
    }

    /// The plain text of a result (captions, OCR, answers), or the labels joined.
    pub fn text(&self) -> String {
        match self {
            TaskResult::Text(t) => t.clone(),
            TaskResult::Boxes { labels, .. }
            | TaskResult::Quads { labels, .. }
            | TaskResult::Polygons { labels, .. } => labels.join(", "),
            TaskResult::BoxesOrPolygons {
                bboxes_labels,
                polygons_labels,
                ..
            } => bboxes_labels
                .iter()
                .chain(polygons_labels)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The post-processor configuration of the converted Florence-2 checkpoints,
/// for model directories without `post_processor_config.json` (the one copy:
/// `data/README.md`).
pub const BUILT_IN_CONFIG: &str = include_str!("../../data/florence2-post-processor-config.json");

/// Settings of the post-processor (the `post_processor_config` of the checkpoints).
#[derive(Debug, Clone, Default)]
pub struct PostProcessor {
    pub banned_grounding_tokens: std::collections::HashSet<String>,
}

impl PostProcessor {
    /// Reads `phrase_grounding.banned_grounding_tokens` from a post-processor config.
    pub fn from_config(cfg: &serde_json::Value) -> Self {
        let banned = cfg
            .pointer("/phrase_grounding/banned_grounding_tokens")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        PostProcessor {
            banned_grounding_tokens: banned,
        }
    }

    /// Parses `text` (the decoded generation, special tokens kept) for an image of `width` x `height`.
    pub fn parse(&self, kind: ParseKind, text: &str, width: u32, height: u32) -> TaskResult {
        let size = (width, height);
        match kind {
            ParseKind::PureText => {
                TaskResult::Text(py_strip(&text.replace("<s>", "").replace("</s>", "")).to_owned())
            }
            ParseKind::DescriptionWithBboxes | ParseKind::Bboxes => {
                let allow_empty = kind == ParseKind::Bboxes;
                let (bboxes, labels) =
                    description_with_bboxes(&clean(text), size, allow_empty, None)
                        .into_iter()
                        .unzip();
                TaskResult::Boxes { bboxes, labels }
            }
            ParseKind::PhraseGrounding => {
                let (bboxes, labels) = description_with_bboxes(
                    &clean(text),
                    size,
                    false,
                    Some(&self.banned_grounding_tokens),
                )
                .into_iter()
                .unzip();
                TaskResult::Boxes { bboxes, labels }
            }
            ParseKind::Ocr => {
                let (quad_boxes, labels) = ocr(&clean(text), size).into_iter().unzip();
                TaskResult::Quads { quad_boxes, labels }
            }
            ParseKind::Polygons => {
                let (polygons, labels) = description_with_polygons(&clean(text), size, true)
                    .into_iter()
                    .unzip();
                TaskResult::Polygons { polygons, labels }
            }
            ParseKind::DescriptionWithBboxesOrPolygons => {
                let cleaned = clean(text);
                if text.contains("<poly>") {
                    let (polygons, polygons_labels) =
                        description_with_polygons(&cleaned, size, false)
                            .into_iter()
                            .unzip();
                    TaskResult::BoxesOrPolygons {
                        bboxes: vec![],
                        bboxes_labels: vec![],
                        polygons,
                        polygons_labels,
                    }
                } else {
                    let (bboxes, bboxes_labels) =
                        description_with_bboxes(&cleaned, size, false, None)
                            .into_iter()
                            .unzip();
                    TaskResult::BoxesOrPolygons {
                        bboxes,
                        bboxes_labels,
                        polygons: vec![],
                        polygons_labels: vec![],
                    }
                }
            }
        }
    }
}

fn clean(text: &str) -> String {
    text.replace("<s>", "")
        .replace("</s>", "")
        .replace("<pad>", "")
}

/// Python's `str.isspace()` set (Rust's `char::is_whitespace` lacks U+001C..U+001F).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// Dequantises one coordinate as transformers 5 does: float32 `(bin + 0.5) * per_bin`, truncated.
fn dequantize(bin: u64, size: u32) -> f64 {
    let per_bin = (size as f64 / 1000.0) as f32;
    let v = (bin as f32 + 0.5) * per_bin;
    v.trunc() as f64
}

/// Length of a `<loc_N>` token at the start of `s` (N: one or more ASCII digits), and N.
fn loc_at(s: &str) -> Option<(usize, u64)> {
    let rest = s.strip_prefix("<loc_")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || rest.as_bytes().get(digits) != Some(&b'>') {
        return None;
    }
    // Absurdly long digit runs saturate instead of failing: they still dequantise far outside.
    let n = rest[..digits].parse::<u64>().unwrap_or(u64::MAX);
    Some((5 + digits + 1, n))
}

/// Maximal run of consecutive tokens accepted by `token` at the start of `s`:
/// (bytes consumed, number of tokens).
fn token_run(s: &str, token: impl Fn(&str) -> Option<usize>) -> (usize, usize) {
    let (mut pos, mut count) = (0, 0);
    while let Some(len) = token(&s[pos..]) {
        pos += len;
        count += 1;
    }
    (pos, count)
}

fn loc_token(s: &str) -> Option<usize> {
    loc_at(s).map(|(len, _)| len)
}

fn poly_token(s: &str) -> Option<usize> {
    loc_token(s).or_else(|| {
        ["<sep>", "<poly>", "</poly>"]
            .iter()
            .find(|t| s.starts_with(**t))
            .map(|t| t.len())
    })
}

/// `findall` of `([^<]+(?:TOKEN){4,})` (or `(?:TOKEN){4,}` when `allow_empty`).
fn phrases(text: &str, allow_empty: bool, token: impl Fn(&str) -> Option<usize>) -> Vec<&str> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < text.len() {
        let rest = &text[p..];
        // `[^<]+` is greedy and tokens start with '<': only the whole run can match.
        let lead = if allow_empty {
            0
        } else {
            rest.find('<').unwrap_or(rest.len())
        };
        if !allow_empty && lead == 0 {
            p += 1; // at '<'
            continue;
        }
        let (run, count) = token_run(&rest[lead..], &token);
        if count >= 4 {
            out.push(&rest[..lead + run]);
            p += lead + run;
        } else if lead > 0 {
            p += lead;
        } else {
            p += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// `re.search(r"^\s*(.*?)(?=M1|M2|...)", s).group().strip()`: the text before the
/// first marker, unless a newline lies between the leading whitespace and the
/// marker (`.` does not match a newline; markers never start with whitespace).
fn phrase_before(s: &str, markers: &[&str]) -> Option<String> {
    let first = markers.iter().filter_map(|m| s.find(m)).min()?;
    let lead = s.len() - s.trim_start_matches(py_space).len();
    if s[lead.min(first)..first].contains('\n') {
        return None;
    }
    Some(py_strip(&s[..first]).to_owned())
}

const BOX_MARKERS: [&str; 7] = [
    "<od>", "</od>", "<box>", "</box>", "<bbox>", "</bbox>", "<loc_",
];
const POLY_MARKERS: [&str; 8] = [
    "<od>", "</od>", "<box>", "</box>", "<bbox>", "</bbox>", "<loc_", "<poly>",
];

/// Non-overlapping `<loc_a><loc_b><loc_c><loc_d>` quads in `s`, in order.
fn quads(s: &str) -> Vec<[u64; 4]> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < s.len() {
        let mut q = [0u64; 4];
        let mut pos = p;
        let mut ok = true;
        for v in &mut q {
            match loc_at(&s[pos..]) {
                Some((len, n)) => {
                    *v = n;
                    pos += len;
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            out.push(q);
            p = pos;
        } else {
            p += s[p..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

fn ascii_only(s: &str) -> String {
    s.chars().filter(char::is_ascii).collect()
}

fn description_with_bboxes(
    text: &str,
    (w, h): (u32, u32),
    allow_empty: bool,
    banned: Option<&std::collections::HashSet<String>>,
) -> Vec<([f64; 4], String)> {
    let mut out = Vec::new();
    for phrase_text in phrases(text, allow_empty, loc_token) {
        let phrase_text = phrase_text
            .replacen("<ground>", "", 1)
            .replacen("<obj>", "", 1);
        if phrase_text.is_empty() && !allow_empty {
            continue;
        }
        let Some(phrase) = phrase_before(&phrase_text, &BOX_MARKERS) else {
            continue;
        };
        if banned.is_some_and(|b| b.contains(&phrase)) {
            continue;
        }
        let label = ascii_only(&phrase);
        for q in quads(&phrase_text) {
            let bbox = [
                dequantize(q[0], w),
                dequantize(q[1], h),
                dequantize(q[2], w),
                dequantize(q[3], h),
            ];
            out.push((bbox, label.clone()));
        }
    }
    out
}

/// Eight consecutive location tokens at the start of `s`: (bytes, bins).
fn eight_locs(s: &str) -> Option<(usize, [u64; 8])> {
    let mut bins = [0u64; 8];
    let mut pos = 0;
    for b in &mut bins {
        let (len, n) = loc_at(&s[pos..])?;
        *b = n;
        pos += len;
    }
    Some((pos, bins))
}

/// `findall(r"(.+?)<loc_(\d+)>{8}")`: the shortest content (one or more characters,
/// no newline) followed by eight location tokens.
fn ocr(text: &str, (w, h): (u32, u32)) -> Vec<([f64; 8], String)> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < text.len() {
        let mut found = None;
        for (i, c) in text[p..].char_indices() {
            if c == '\n' {
                break;
            }
            let end = p + i + c.len_utf8();
            if let Some((len, bins)) = eight_locs(&text[end..]) {
                found = Some((end, len, bins));
                break;
            }
        }
        match found {
            Some((end, len, bins)) => {
                let mut quad = [0f64; 8];
                for (i, b) in bins.iter().enumerate() {
                    quad[i] = dequantize(*b, if i % 2 == 0 { w } else { h });
                }
                out.push((quad, py_strip(&text[p..end]).to_owned()));
                p = end + len;
            }
            None => p += text[p..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

/// Runs of locations followed by `<sep>` or the end (`((?:<loc_\d+>)+)(?:<sep>|$)`).
fn polygon_runs(s: &str) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < s.len() {
        let (run, count) = token_run(&s[p..], loc_token);
        if count > 0 {
            let after = &s[p + run..];
            let at_end = after.is_empty() || after == "\n";
            if after.starts_with("<sep>") || at_end {
                let mut bins = Vec::with_capacity(count);
                let mut pos = p;
                while let Some((len, n)) = loc_at(&s[pos..]) {
                    bins.push(n);
                    pos += len;
                }
                out.push(bins);
                p += run + if after.starts_with("<sep>") { 5 } else { 0 };
                if at_end {
                    break;
                }
                continue;
            }
            p += run;
            continue;
        }
        p += s[p..].chars().next().map_or(1, char::len_utf8);
    }
    out
}

fn description_with_polygons(
    text: &str,
    (w, h): (u32, u32),
    allow_empty: bool,
) -> Vec<(Vec<Vec<f64>>, String)> {
    let mut out = Vec::new();
    for phrase_text in phrases(text, allow_empty, poly_token) {
        let stripped = match loc_at(phrase_text) {
            Some((len, _)) => &phrase_text[len..],
            None => phrase_text,
        };
        if stripped.is_empty() && !allow_empty {
            continue;
        }
        let Some(phrase) = phrase_before(stripped, &POLY_MARKERS) else {
            continue;
        };
        let instances: Vec<&str> =
            if phrase_text.contains("<poly>") && phrase_text.contains("</poly>") {
                poly_instances(phrase_text)
            } else {
                vec![phrase_text]
            };
        for inst in instances {
            let runs = polygon_runs(inst);
            if runs.is_empty() {
                continue;
            }
            let polygons = runs
                .into_iter()
                .map(|mut bins| {
                    if bins.len() % 2 == 1 {
                        bins.pop();
                    }
                    bins.iter()
                        .enumerate()
                        .map(|(i, b)| dequantize(*b, if i % 2 == 0 { w } else { h }))
                        .collect()
                })
                .collect();
            out.push((polygons, phrase.clone()));
        }
    }
    out
}

/// `finditer(r"<poly>(.*?)</poly>")` group 1 (`.` excludes newlines).
fn poly_instances(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut p = 0;
    while let Some(start) = s[p..].find("<poly>") {
        let body = p + start + "<poly>".len();
        let newline = s[body..].find('\n').map(|i| body + i);
        match s[body..].find("</poly>").map(|i| body + i) {
            Some(end) if newline.is_none_or(|nl| nl > end) => {
                out.push(&s[body..end]);
                p = end + "</poly>".len();
            }
            _ => p = p + start + 1,
        }
        if p >= s.len() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pp() -> PostProcessor {
        PostProcessor::from_config(&serde_json::json!({
            "phrase_grounding": {"banned_grounding_tokens": ["it", "the image"]}
        }))
    }

    #[test]
    fn pure_text_drops_bos_eos_and_strips() {
        let r = pp().parse(ParseKind::PureText, "</s><s> A red car.</s>", 10, 10);
        assert_eq!(r, TaskResult::Text("A red car.".into()));
    }

    #[test]
    fn boxes_share_a_label_and_dequantise_in_pixels() {
        let text = "</s><s>car<loc_0><loc_0><loc_999><loc_999><loc_100><loc_200><loc_300><loc_400>dog<loc_1><loc_2><loc_3><loc_4></s>";
        let TaskResult::Boxes { bboxes, labels } =
            pp().parse(ParseKind::DescriptionWithBboxes, text, 640, 480)
        else {
            panic!()
        };
        assert_eq!(labels, ["car", "car", "dog"]);
        // (bin + 0.5) * size / 1000, truncated.
        assert_eq!(bboxes[0], [0.0, 0.0, 639.0, 479.0]);
        assert_eq!(bboxes[1], [64.0, 96.0, 192.0, 192.0]);
        assert_eq!(bboxes[2], [0.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn region_proposals_have_empty_labels() {
        let text = "<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8>";
        let TaskResult::Boxes { bboxes, labels } = pp().parse(ParseKind::Bboxes, text, 1000, 1000)
        else {
            panic!()
        };
        assert_eq!(labels, ["", ""]);
        assert_eq!(bboxes[1], [5.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    fn grounding_skips_banned_phrases() {
        let text = "it<loc_1><loc_2><loc_3><loc_4>a dog<loc_5><loc_6><loc_7><loc_8>";
        let TaskResult::Boxes { labels, .. } =
            pp().parse(ParseKind::PhraseGrounding, text, 1000, 1000)
        else {
            panic!()
        };
        assert_eq!(labels, ["a dog"]);
    }

    #[test]
    fn ocr_reads_quads() {
        let text = "</s><s>STOP<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8> 42<loc_9><loc_9><loc_9><loc_9><loc_9><loc_9><loc_9><loc_9></s>";
        let TaskResult::Quads { quad_boxes, labels } = pp().parse(ParseKind::Ocr, text, 1000, 2000)
        else {
            panic!()
        };
        assert_eq!(labels, ["STOP", "42"]);
        assert_eq!(quad_boxes[0], [1.0, 5.0, 3.0, 9.0, 5.0, 13.0, 7.0, 17.0]);
    }

    #[test]
    fn polygons_split_on_sep_and_drop_an_odd_trailing_value() {
        let text = "<loc_10><loc_20><loc_30><loc_40><loc_50><sep><loc_1><loc_2><loc_3><loc_4>";
        let TaskResult::Polygons { polygons, labels } =
            pp().parse(ParseKind::Polygons, text, 1000, 1000)
        else {
            panic!()
        };
        assert_eq!(labels, [""]);
        assert_eq!(
            polygons,
            [vec![vec![10.0, 20.0, 30.0, 40.0], vec![1.0, 2.0, 3.0, 4.0]]]
        );
    }

    #[test]
    fn open_vocabulary_uses_polygons_when_present() {
        let text = "cat<poly><loc_1><loc_2><loc_3><loc_4></poly>";
        let r = pp().parse(ParseKind::DescriptionWithBboxesOrPolygons, text, 1000, 1000);
        let TaskResult::BoxesOrPolygons {
            polygons,
            polygons_labels,
            bboxes,
            ..
        } = r
        else {
            panic!()
        };
        assert!(bboxes.is_empty());
        assert_eq!(polygons_labels, ["cat"]);
        assert_eq!(polygons, [vec![vec![1.0, 2.0, 3.0, 4.0]]]);
    }

    #[test]
    fn malformed_text_never_panics() {
        let nasty = [
            "",
            "<",
            "<loc_",
            "<loc_>",
            "<loc_99999999999999999999999><loc_1><loc_2><loc_3>",
            "caf\u{e9}<loc_1><loc_2><loc_3>",
            "\u{1F600}<loc_1><loc_2><loc_3><loc_4>",
            "a\n<loc_1><loc_2><loc_3><loc_4>",
            "<poly></poly><sep><sep><loc_1>",
            "x<loc_1><loc_1><loc_1><loc_1><loc_1><loc_1><loc_1>",
            "<poly><loc_1><loc_2>\n</poly>",
        ];
        let kinds = [
            ParseKind::PureText,
            ParseKind::Ocr,
            ParseKind::DescriptionWithBboxes,
            ParseKind::Bboxes,
            ParseKind::PhraseGrounding,
            ParseKind::Polygons,
            ParseKind::DescriptionWithBboxesOrPolygons,
        ];
        for text in nasty {
            for kind in kinds {
                let _ = pp().parse(kind, text, 7, 3);
            }
        }
        // Non-ASCII characters are dropped from labels, as the reference does.
        let TaskResult::Boxes { labels, .. } = pp().parse(
            ParseKind::DescriptionWithBboxes,
            "caf\u{e9}<loc_1><loc_2><loc_3><loc_4>",
            10,
            10,
        ) else {
            panic!()
        };
        assert_eq!(labels, ["caf"]);
    }
}
