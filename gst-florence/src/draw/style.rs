//! How drawings look on a picture of a given size: line width and text size
//! grow with the picture, so a 4K frame's labels are as readable as a VGA
//! frame's; colours tell regions apart.

use tiny_skia::Color;

/// Tableau 10: distinct, legible under white text.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Outline width, pixels.
    pub line_width: f32,
    /// Text height (the font's pixel size).
    pub text_px: f32,
    /// Space around text on its background, pixels.
    pub padding: f32,
}

impl Style {
    pub fn for_size(width: u32, height: u32) -> Style {
        let short = width.min(height) as f32;
        let text_px = (short / 28.0).clamp(11.0, 48.0);
        Style {
            line_width: (short / 240.0).clamp(2.0, 8.0),
            text_px,
            padding: (text_px / 5.0).round().max(2.0),
        }
    }

    /// The colour of region `index` labelled `label`: one colour per label,
    /// so every "car" matches; unlabelled regions by their position.
    pub fn colour(&self, index: usize, label: &str) -> Color {
        let slot = if label.is_empty() {
            index
        } else {
            label.bytes().fold(0usize, |h, b| {
                h.wrapping_mul(31).wrapping_add(usize::from(b))
            })
        };
        let (r, g, b) = PALETTE[slot % PALETTE.len()];
        Color::from_rgba8(r, g, b, 255)
    }
}
