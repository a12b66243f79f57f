//! Florence-2 tasks: their prompts and how their answers are parsed.

use std::fmt;
use std::str::FromStr;

/// The fifteen task tokens of Florence-2, plus free-form VQA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    Ocr,
    OcrWithRegion,
    Caption,
    DetailedCaption,
    MoreDetailedCaption,
    Od,
    DenseRegionCaption,
    RegionProposal,
    CaptionToPhraseGrounding,
    ReferringExpressionSegmentation,
    RegionToSegmentation,
    OpenVocabularyDetection,
    RegionToCategory,
    RegionToDescription,
    RegionToOcr,
    /// Visual question answering through the model's configured VQA template.
    Vqa,
}

/// How a task's generated text is turned into a structured result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseKind {
    PureText,
    Ocr,
    DescriptionWithBboxes,
    Bboxes,
    PhraseGrounding,
    Polygons,
    DescriptionWithBboxesOrPolygons,
}

/// What input a task takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    None,
    Text,
    Region,
}

impl Task {
    pub const ALL: [Task; 16] = [
        Task::Ocr,
        Task::OcrWithRegion,
        Task::Caption,
        Task::DetailedCaption,
        Task::MoreDetailedCaption,
        Task::Od,
        Task::DenseRegionCaption,
        Task::RegionProposal,
        Task::CaptionToPhraseGrounding,
        Task::ReferringExpressionSegmentation,
        Task::RegionToSegmentation,
        Task::OpenVocabularyDetection,
        Task::RegionToCategory,
        Task::RegionToDescription,
        Task::RegionToOcr,
        Task::Vqa,
    ];

    /// The task token, e.g. `<CAPTION>`.
    pub fn token(self) -> &'static str {
        match self {
            Task::Ocr => "<OCR>",
            Task::OcrWithRegion => "<OCR_WITH_REGION>",
            Task::Caption => "<CAPTION>",
            Task::DetailedCaption => "<DETAILED_CAPTION>",
            Task::MoreDetailedCaption => "<MORE_DETAILED_CAPTION>",
            Task::Od => "<OD>",
            Task::DenseRegionCaption => "<DENSE_REGION_CAPTION>",
            Task::RegionProposal => "<REGION_PROPOSAL>",
            Task::CaptionToPhraseGrounding => "<CAPTION_TO_PHRASE_GROUNDING>",
            Task::ReferringExpressionSegmentation => "<REFERRING_EXPRESSION_SEGMENTATION>",
            Task::RegionToSegmentation => "<REGION_TO_SEGMENTATION>",
            Task::OpenVocabularyDetection => "<OPEN_VOCABULARY_DETECTION>",
            Task::RegionToCategory => "<REGION_TO_CATEGORY>",
            Task::RegionToDescription => "<REGION_TO_DESCRIPTION>",
            Task::RegionToOcr => "<REGION_TO_OCR>",
            Task::Vqa => "<VQA>",
        }
    }

    /// Short snake_case name used by the REST API and element properties.
    pub fn name(self) -> &'static str {
        match self {
            Task::Ocr => "ocr",
            Task::OcrWithRegion => "ocr_with_region",
            Task::Caption => "caption",
            Task::DetailedCaption => "detailed_caption",
            Task::MoreDetailedCaption => "more_detailed_caption",
            Task::Od => "od",
            Task::DenseRegionCaption => "dense_region_caption",
            Task::RegionProposal => "region_proposal",
            Task::CaptionToPhraseGrounding => "caption_to_phrase_grounding",
            Task::ReferringExpressionSegmentation => "referring_expression_segmentation",
            Task::RegionToSegmentation => "region_to_segmentation",
            Task::OpenVocabularyDetection => "open_vocabulary_detection",
            Task::RegionToCategory => "region_to_category",
            Task::RegionToDescription => "region_to_description",
            Task::RegionToOcr => "region_to_ocr",
            Task::Vqa => "vqa",
        }
    }

    /// The prompt template (`{input}` where the input goes), as the reference processor has it.
    fn template(self) -> Option<&'static str> {
        Some(match self {
            Task::Ocr => "What is the text in the image?",
            Task::OcrWithRegion => "What is the text in the image, with regions?",
            Task::Caption => "What does the image describe?",
            Task::DetailedCaption => "Describe in detail what is shown in the image.",
            Task::MoreDetailedCaption => "Describe with a paragraph what is shown in the image.",
            Task::Od => "Locate the objects with category name in the image.",
            Task::DenseRegionCaption => "Locate the objects in the image, with their descriptions.",
            Task::RegionProposal => "Locate the region proposals in the image.",
            Task::CaptionToPhraseGrounding => "Locate the phrases in the caption: {input}",
            Task::ReferringExpressionSegmentation => "Locate {input} in the image with mask",
            Task::RegionToSegmentation => "What is the polygon mask of region {input}",
            Task::OpenVocabularyDetection => "Locate {input} in the image.",
            Task::RegionToCategory => "What is the region {input}?",
            Task::RegionToDescription => "What does the region {input} describe?",
            Task::RegionToOcr => "What text is in the region {input}?",
            Task::Vqa => return None,
        })
    }

    pub fn input(self) -> InputKind {
        match self {
            Task::CaptionToPhraseGrounding
            | Task::ReferringExpressionSegmentation
            | Task::OpenVocabularyDetection
            | Task::Vqa => InputKind::Text,
            Task::RegionToSegmentation
            | Task::RegionToCategory
            | Task::RegionToDescription
            | Task::RegionToOcr => InputKind::Region,
            _ => InputKind::None,
        }
    }

    pub fn parse_kind(self) -> ParseKind {
        match self {
            Task::OcrWithRegion => ParseKind::Ocr,
            Task::Od | Task::DenseRegionCaption => ParseKind::DescriptionWithBboxes,
            Task::RegionProposal => ParseKind::Bboxes,
            Task::CaptionToPhraseGrounding => ParseKind::PhraseGrounding,
            Task::ReferringExpressionSegmentation | Task::RegionToSegmentation => {
                ParseKind::Polygons
            }
            Task::OpenVocabularyDetection => ParseKind::DescriptionWithBboxesOrPolygons,
            _ => ParseKind::PureText,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromptError {
    #[error(
        "unknown task {0:?}; expected one of {list}",
        list = Task::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
    )]
    UnknownTask(String),
    #[error("task {task} takes no input, but one was given")]
    UnexpectedInput { task: Task },
    #[error("task {task} needs a text input")]
    MissingText { task: Task },
    #[error(
        "task {task} needs a region: [x1, y1, x2, y2] in image pixels, or the text <loc_x1><loc_y1><loc_x2><loc_y2>"
    )]
    MissingRegion { task: Task },
    #[error(
        "region {region:?} is not a box inside the {width}x{height} image (need 0 <= x1 <= x2 <= width, 0 <= y1 <= y2 <= height)"
    )]
    BadRegion {
        region: [f64; 4],
        width: u32,
        height: u32,
    },
    #[error("the VQA template {0:?} has no {{question}} placeholder")]
    BadVqaTemplate(String),
    #[error("text input is {len} characters, more than the limit of {max}")]
    InputTooLong { len: usize, max: usize },
    #[error(
        "the prompt is {prompt_tokens} tokens, more than this model's limit of {limit} prompt \
         tokens ({positions} encoder positions minus {image_tokens} image tokens); shorten the text input"
    )]
    TooManyTokens {
        prompt_tokens: usize,
        limit: usize,
        positions: usize,
        image_tokens: usize,
    },
    #[error(
        "region text {0:?} is not Florence-2's region notation <loc_x1><loc_y1><loc_x2><loc_y2> \
         (four bins 0..=999); a region in pixels goes in `region` instead"
    )]
    BadLocRegion(String),
    #[error("task {task} takes one region: give either `region` (pixels) or <loc_> text, not both")]
    TwoRegions { task: Task },
}

impl FromStr for Task {
    type Err = PromptError;

    /// Accepts the task token (`<OD>`) or the snake_case name (`od`), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Task::ALL
            .iter()
            .copied()
            .find(|task| {
                task.token().eq_ignore_ascii_case(t) || task.name().eq_ignore_ascii_case(t)
            })
            .ok_or_else(|| PromptError::UnknownTask(s.to_owned()))
    }
}

/// The input that goes with a task.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskInput {
    pub text: Option<String>,
    /// [x1, y1, x2, y2] in pixels of the original image.
    pub region: Option<[f64; 4]>,
}

/// Longest text input accepted (the REST contract's question limit).
pub const MAX_INPUT_CHARS: usize = 1024;

/// Parses a region written as "x1,y1,x2,y2" (image pixels), as the element's
/// `region` property and `florenced run --region` take it.
pub fn parse_region(text: &str) -> Result<[f64; 4], String> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("region {text:?} is not four numbers x1,y1,x2,y2"))?;
    match parts[..] {
        [x1, y1, x2, y2] if parts.iter().all(|v| v.is_finite()) => Ok([x1, y1, x2, y2]),
        _ => Err(format!("region {text:?} is not four numbers x1,y1,x2,y2")),
    }
}

/// Parses Florence-2's own region notation, `<loc_x1><loc_y1><loc_x2><loc_y2>`
/// with bins 0..=999 (surrounding whitespace allowed), as transformers' examples
/// pass it in the text input; `None` if `text` is not in that form.
pub fn parse_loc_region(text: &str) -> Option<[u32; 4]> {
    let mut rest = text.trim();
    let mut bins = [0u32; 4];
    for bin in &mut bins {
        let after = rest.strip_prefix("<loc_")?;
        let end = after.find('>')?;
        let digits = &after[..end];
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *bin = digits.parse().ok()?;
        rest = &after[end + 1..];
    }
    rest.is_empty().then_some(bins)
}

/// The loc tokens of a quantised box, as the prompt carries them.
fn loc_tokens(bins: [u32; 4]) -> String {
    bins.iter().map(|v| format!("<loc_{v}>")).collect()
}

/// Quantise a pixel box into Florence-2's 1000 bins per axis, as the reference does:
/// floor(x / (size / 1000)) clamped to 0..=999, in float32 like its torch tensors
/// (60 / 0.3 is 199.99998 in float32, so bin 199, not 200).
pub fn quantize_box(region: [f64; 4], width: u32, height: u32) -> [u32; 4] {
    let (bw, bh) = (
        (width as f64 / 1000.0) as f32,
        (height as f64 / 1000.0) as f32,
    );
    let q = |v: f64, per: f32| (v as f32 / per).floor().clamp(0.0, 999.0) as u32;
    [
        q(region[0], bw),
        q(region[1], bh),
        q(region[2], bw),
        q(region[3], bh),
    ]
}

/// Builds the text prompt (without `<s>`/`</s>`) for a task on an image of the given size.
pub fn build_prompt(
    task: Task,
    input: &TaskInput,
    width: u32,
    height: u32,
    vqa_template: &str,
) -> Result<String, PromptError> {
    let text = input
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(t) = text
        && t.chars().count() > MAX_INPUT_CHARS
    {
        return Err(PromptError::InputTooLong {
            len: t.chars().count(),
            max: MAX_INPUT_CHARS,
        });
    }
    match task.input() {
        InputKind::None => {
            if text.is_some() || input.region.is_some() {
                return Err(PromptError::UnexpectedInput { task });
            }
            Ok(task.template().unwrap_or_default().to_owned())
        }
        InputKind::Text => {
            let t = text.ok_or(PromptError::MissingText { task })?;
            if input.region.is_some() {
                return Err(PromptError::UnexpectedInput { task });
            }
            if task == Task::Vqa {
                if !vqa_template.contains("{question}") {
                    return Err(PromptError::BadVqaTemplate(vqa_template.to_owned()));
                }
                return Ok(vqa_template.replace("{question}", t));
            }
            Ok(task.template().unwrap_or_default().replace("{input}", t))
        }
        InputKind::Region => {
            let template = task.template().unwrap_or_default();
            if let Some(t) = text {
                if input.region.is_some() {
                    return Err(PromptError::TwoRegions { task });
                }
                let bins =
                    parse_loc_region(t).ok_or_else(|| PromptError::BadLocRegion(t.to_owned()))?;
                return Ok(template.replace("{input}", &loc_tokens(bins)));
            }
            let r = input.region.ok_or(PromptError::MissingRegion { task })?;
            let (w, h) = (width as f64, height as f64);
            let ok = r.iter().all(|v| v.is_finite())
                && 0.0 <= r[0]
                && r[0] <= r[2]
                && r[2] <= w
                && 0.0 <= r[1]
                && r[1] <= r[3]
                && r[3] <= h;
            if !ok {
                return Err(PromptError::BadRegion {
                    region: r,
                    width,
                    height,
                });
            }
            let bins = quantize_box(r, width, height);
            Ok(template.replace("{input}", &loc_tokens(bins)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_and_names() {
        assert_eq!("<OD>".parse::<Task>().unwrap(), Task::Od);
        assert_eq!(
            "more_detailed_caption".parse::<Task>().unwrap(),
            Task::MoreDetailedCaption
        );
        assert_eq!("<caption>".parse::<Task>().unwrap(), Task::Caption);
        let err = "<FOO>".parse::<Task>().unwrap_err();
        assert!(err.to_string().contains("region_to_ocr"));
    }

    #[test]
    fn prompts_follow_the_reference() {
        let none = TaskInput::default();
        assert_eq!(
            build_prompt(Task::Caption, &none, 10, 10, "").unwrap(),
            "What does the image describe?"
        );
        let text = TaskInput {
            text: Some("  a red car ".into()),
            region: None,
        };
        assert_eq!(
            build_prompt(Task::CaptionToPhraseGrounding, &text, 10, 10, "").unwrap(),
            "Locate the phrases in the caption: a red car"
        );
        assert_eq!(
            build_prompt(Task::Vqa, &text, 10, 10, "<VQA>{question}").unwrap(),
            "<VQA>a red car"
        );
        let region = TaskInput {
            text: None,
            region: Some([64.0, 48.0, 320.0, 479.0]),
        };
        assert_eq!(
            build_prompt(Task::RegionToCategory, &region, 640, 480, "").unwrap(),
            "What is the region <loc_100><loc_100><loc_500><loc_997>?"
        );
    }

    #[test]
    fn wrong_inputs_are_errors() {
        let text = TaskInput {
            text: Some("x".into()),
            region: None,
        };
        assert_eq!(
            build_prompt(Task::Od, &text, 10, 10, ""),
            Err(PromptError::UnexpectedInput { task: Task::Od })
        );
        assert_eq!(
            build_prompt(
                Task::OpenVocabularyDetection,
                &TaskInput::default(),
                10,
                10,
                ""
            ),
            Err(PromptError::MissingText {
                task: Task::OpenVocabularyDetection
            })
        );
        let outside = TaskInput {
            text: None,
            region: Some([0.0, 0.0, 11.0, 5.0]),
        };
        assert!(matches!(
            build_prompt(Task::RegionToOcr, &outside, 10, 10, ""),
            Err(PromptError::BadRegion { .. })
        ));
        assert!(matches!(
            build_prompt(Task::Vqa, &text, 10, 10, "<VQA>"),
            Err(PromptError::BadVqaTemplate(_))
        ));
        let long = TaskInput {
            text: Some("a".repeat(MAX_INPUT_CHARS + 1)),
            region: None,
        };
        assert!(matches!(
            build_prompt(Task::Vqa, &long, 10, 10, "{question}"),
            Err(PromptError::InputTooLong { .. })
        ));
    }

    #[test]
    fn region_tasks_take_loc_notation() {
        let loc = |t: &str| TaskInput {
            text: Some(t.into()),
            region: None,
        };
        assert_eq!(
            build_prompt(
                Task::RegionToCategory,
                &loc(" <loc_52><loc_332><loc_932><loc_774> "),
                640,
                480,
                ""
            )
            .unwrap(),
            "What is the region <loc_52><loc_332><loc_932><loc_774>?"
        );
        assert_eq!(
            parse_loc_region("<loc_0><loc_0><loc_999><loc_999>"),
            Some([0, 0, 999, 999])
        );
        for bad in [
            "<loc_1><loc_2><loc_3>",
            "<loc_1><loc_2><loc_3><loc_4><loc_5>",
            "<loc_1><loc_2><loc_3><loc_1000>",
            "<loc_1> <loc_2><loc_3><loc_4>",
            "<loc_><loc_2><loc_3><loc_4>",
            "<loc_-1><loc_2><loc_3><loc_4>",
            "10,20,30,40",
            "a red car",
        ] {
            assert_eq!(parse_loc_region(bad), None, "{bad}");
            assert!(matches!(
                build_prompt(Task::RegionToOcr, &loc(bad), 10, 10, ""),
                Err(PromptError::BadLocRegion(_))
            ));
        }
        let both = TaskInput {
            text: Some("<loc_1><loc_2><loc_3><loc_4>".into()),
            region: Some([0.0, 0.0, 1.0, 1.0]),
        };
        assert_eq!(
            build_prompt(Task::RegionToSegmentation, &both, 10, 10, ""),
            Err(PromptError::TwoRegions {
                task: Task::RegionToSegmentation
            })
        );
    }

    #[test]
    fn quantisation_clamps_to_the_last_bin() {
        assert_eq!(
            quantize_box([0.0, 0.0, 640.0, 480.0], 640, 480),
            [0, 0, 999, 999]
        );
        assert_eq!(quantize_box([0.63, 0.0, 1.0, 1.0], 640, 480), [0, 0, 1, 2]);
        assert_eq!(
            quantize_box([20.0, 60.0, 120.0, 270.0], 200, 300),
            [100, 199, 600, 899]
        );
    }
}
