//! Text on a picture: a region's label on a filled tag, and a text result as
//! a band of wrapped lines along the bottom. Glyphs come from the built-in
//! Hack font through ab_glyph; tiny-skia blends them.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, Glyph, PxScale, ScaleFont, point};
use tiny_skia::{Color, IntSize, Mask, Paint, Pixmap, PixmapPaint, Rect, Transform};

use super::style::Style;

/// Band behind a text result: black, partly see-through.
const BAND_ALPHA: u8 = 170;

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR)
            .expect("the built-in Hack font parses")
    })
}

/// One line laid out at `px`: its glyphs with the baseline at the font's
/// ascent, and its width.
fn layout(text: &str, px: f32) -> (Vec<Glyph>, f32) {
    let font = font().as_scaled(PxScale::from(px));
    let mut caret = 0.0;
    let mut previous = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars().filter(|c| !c.is_control()) {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            caret += font.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(px, point(caret, font.ascent())));
        caret += font.h_advance(id);
        previous = Some(id);
    }
    (glyphs, caret)
}

fn line_height(px: f32) -> f32 {
    let font = font().as_scaled(PxScale::from(px));
    (font.ascent() - font.descent()).ceil()
}

/// Adds the coverage of `glyphs`, moved by (`dx`, `dy`), to `mask`.
fn rasterize(mask: &mut Mask, glyphs: &[Glyph], dx: f32, dy: f32) {
    let (width, height) = (mask.width() as i64, mask.height() as i64);
    let data = mask.data_mut();
    for glyph in glyphs {
        let Some(outline) = font().outline_glyph(glyph.clone()) else {
            continue; // a space
        };
        let bounds = outline.px_bounds();
        outline.draw(|x, y, coverage| {
            let px = (bounds.min.x + dx) as i64 + i64::from(x);
            let py = (bounds.min.y + dy) as i64 + i64::from(y);
            if (0..width).contains(&px) && (0..height).contains(&py) {
                let cell = &mut data[(py * width + px) as usize];
                *cell = (*cell).max((coverage.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        });
    }
}

/// `lines` in white on `background`, in a `width` x `height` tile.
fn tile(
    lines: &[(Vec<Glyph>, f32)],
    width: u32,
    height: u32,
    background: Color,
    style: &Style,
) -> Option<Pixmap> {
    let mut tile = Pixmap::new(width, height)?;
    tile.fill(background);
    let mut mask = Mask::from_vec(
        vec![0; (width * height) as usize],
        IntSize::from_wh(width, height)?,
    )?;
    let step = line_height(style.text_px);
    for (row, (glyphs, _)) in lines.iter().enumerate() {
        rasterize(
            &mut mask,
            glyphs,
            style.padding,
            style.padding + row as f32 * step,
        );
    }
    let mut white = Paint::default();
    white.set_color(Color::WHITE);
    let all = Rect::from_xywh(0.0, 0.0, width as f32, height as f32)?;
    tile.fill_rect(all, &white, Transform::identity(), Some(&mask));
    Some(tile)
}

/// A region's label, laid out once.
pub struct Label {
    line: (Vec<Glyph>, f32),
    style: Style,
}

impl Label {
    /// `None` for an empty label.
    pub fn new(text: &str, style: &Style) -> Option<Label> {
        let text = text.trim();
        (!text.is_empty()).then(|| Label {
            line: layout(text, style.text_px),
            style: *style,
        })
    }

    fn size(&self) -> (u32, u32) {
        let pad = 2.0 * self.style.padding;
        (
            (self.line.1 + pad).ceil() as u32,
            (line_height(self.style.text_px) + pad) as u32,
        )
    }

    /// Draws the tag on `canvas` above (`x`, `y`), the region's top-left
    /// corner, or just inside it where there is no room above; kept inside
    /// the canvas.
    pub fn draw_at(&self, canvas: &mut Pixmap, x: f32, y: f32, colour: Color) {
        let (w, h) = self.size();
        let Some(tag) = tile(std::slice::from_ref(&self.line), w, h, colour, &self.style) else {
            return;
        };
        let top = if y - h as f32 >= 0.0 { y - h as f32 } else { y };
        let max_x = canvas.width().saturating_sub(w) as f32;
        let max_y = canvas.height().saturating_sub(h) as f32;
        canvas.draw_pixmap(
            x.clamp(0.0, max_x) as i32,
            top.clamp(0.0, max_y) as i32,
            tag.as_ref(),
            &PixmapPaint::default(),
            Transform::identity(),
            None,
        );
    }
}

/// Greedy word wrap of `text` into lines at most `width` pixels wide (a word
/// wider than that gets a line of its own).
fn wrap(text: &str, width: f32, px: f32) -> Vec<(Vec<Glyph>, f32)> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let candidate = if current.is_empty() {
            word.to_owned()
        } else {
            format!("{current} {word}")
        };
        if layout(&candidate, px).1 <= width || current.is_empty() {
            current = candidate;
        } else {
            lines.push(layout(&current, px));
            current = word.to_owned();
        }
    }
    if !current.is_empty() {
        lines.push(layout(&current, px));
    }
    lines
}

/// `text` as a band of wrapped white lines along the bottom of `canvas`.
pub fn band(canvas: &mut Pixmap, text: &str, style: &Style) {
    let width = canvas.width();
    let lines = wrap(text, width as f32 - 2.0 * style.padding, style.text_px);
    if lines.is_empty() {
        return;
    }
    let height = (lines.len() as f32 * line_height(style.text_px) + 2.0 * style.padding) as u32;
    let height = height.min(canvas.height());
    let background = Color::from_rgba8(0, 0, 0, BAND_ALPHA);
    let Some(band) = tile(&lines, width, height, background, style) else {
        return;
    };
    canvas.draw_pixmap(
        0,
        (canvas.height() - height) as i32,
        band.as_ref(),
        &PixmapPaint::default(),
        Transform::identity(),
        None,
    );
}
