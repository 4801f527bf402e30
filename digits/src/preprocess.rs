//! Any image of a digit → a 28×28 MNIST-style grid, made the way MNIST itself was made: light ink
//! on black, cropped to the ink, scaled to fit 20×20 keeping the aspect ratio, and placed in 28×28
//! so that its centre of mass lies at the centre.

use std::io::Cursor;

use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageBuffer, ImageDecoder, ImageError, ImageFormat, Luma};

use crate::{Grid, PIXELS, SIDE};

/// Longest side of the digit's box inside the grid.
const BOX: f32 = 20.0;
/// Where MNIST's centres of mass lie, in pixel indices (measured on the training set: 14.0, 14.0).
const CENTRE: f32 = 14.0;
/// Larger images are first shrunk to this longest side: the digit ends up 20 pixels tall anyway.
const WORKING_SIDE: u32 = 1024;
/// Below this contrast between ink and background (on a 0..1 scale) the image holds no digit.
const MIN_CONTRAST: f32 = 0.12;
/// Ink fainter than this share of the darkest stroke is noise (JPEG ringing, paper texture).
const NOISE_FLOOR: f32 = 0.08;

/// Formats we decode; `image` may recognise more, which are refused as "not an image".
const FORMATS: [ImageFormat; 5] = [
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::Bmp,
    ImageFormat::Gif,
    ImageFormat::WebP,
];

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// Not a PNG, JPEG, BMP, GIF or WebP image (a service answers 415).
    #[error("not an image: PNG, JPEG, BMP, GIF and WebP are accepted")]
    NotAnImage,
    /// A known format that fails to decode (a service answers 400).
    #[error("the {format} image is corrupt: {reason}")]
    Corrupt {
        format: &'static str,
        reason: String,
    },
    /// Beyond the decoding budget ([`DecodeLimits`]): a guard against decompression bombs. The
    /// text is a whole sentence for the client (a service answers 400).
    #[error("{0}")]
    TooLarge(String),
    /// Decodes fine but shows no digit: blank, or too faint (a service answers 400).
    #[error("the image is blank: no digit found")]
    Empty,
}

/// The decoding budget of one image, checked against the file's header before any pixel is
/// decoded, and handed to the decoder as its allocation limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Longest side in pixels (for a GIF, of its logical screen: the canvas every frame is
    /// drawn on, which is what gets allocated).
    pub max_side: u32,
    /// Most bytes the decoded image may take (width × height × bytes per pixel, as decoded:
    /// 16-bit and alpha channels count), and the most the decoder may allocate beside it.
    pub max_bytes: u64,
}

impl DecodeLimits {
    pub const DEFAULT_MAX_SIDE: u32 = 4096;
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
}

impl Default for DecodeLimits {
    /// 4096 pixels and 64 MiB: a phone camera's photo of a digit (4032×3024, RGB, 35 MiB) fits.
    fn default() -> Self {
        Self {
            max_side: Self::DEFAULT_MAX_SIDE,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// Image file bytes → an MNIST-style grid, with the default [`DecodeLimits`].
pub fn preprocess(bytes: &[u8]) -> Result<Grid, PreprocessError> {
    preprocess_with_limits(bytes, &DecodeLimits::default())
}

/// Image file bytes → an MNIST-style grid.
pub fn preprocess_with_limits(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<Grid, PreprocessError> {
    let image = decode(bytes, limits)?;
    let grey = flatten_to_grey(&image);
    drop(image);
    grid_from_grey(&shrink(grey))
}

fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, PreprocessError> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| PreprocessError::NotAnImage)?;
    let format = match reader.format() {
        Some(format) if FORMATS.contains(&format) => format,
        _ => return Err(PreprocessError::NotAnImage),
    };
    let fail = |err| classify(err, format);
    // Only the header is read here; the decoders allocate within `max_bytes` from the start.
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(limits.max_bytes);
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().map_err(fail)?;
    let (width, height) = decoder.dimensions();
    if width.max(height) > limits.max_side {
        return Err(PreprocessError::TooLarge(format!(
            "The {} image is {width}×{height} pixels; at most {} pixels on its longest side are accepted.",
            format_name(format),
            limits.max_side
        )));
    }
    let decoded = decoder.total_bytes();
    if decoded > limits.max_bytes {
        return Err(PreprocessError::TooLarge(format!(
            "The {} image would take {} MiB once decoded ({width}×{height} pixels of {} bytes); \
             at most {} MiB are accepted.",
            format_name(format),
            decoded.div_ceil(1024 * 1024),
            decoder.color_type().bytes_per_pixel(),
            limits.max_bytes / (1024 * 1024)
        )));
    }
    // `into_decoder` + `from_decoder` never count the output buffer against the allocation
    // limit (`ImageReader::decode` does): reserve it here, so that what the decoder allocates
    // beside it (a GIF's frame, say) stays within the same budget, and set the strict sides.
    let mut budget = image_limits(limits);
    budget.reserve(decoded).map_err(fail)?;
    decoder.set_limits(budget).map_err(fail)?;
    // A photo's EXIF orientation says which way is up; a digit upside down is another digit.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err(PreprocessError::Empty);
    }
    Ok(image)
}

fn image_limits(limits: &DecodeLimits) -> image::Limits {
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(limits.max_bytes);
    image_limits
}

fn classify(err: ImageError, format: ImageFormat) -> PreprocessError {
    match err {
        ImageError::Limits(limit) => PreprocessError::TooLarge(format!(
            "The {} image is beyond the decoding limits ({limit}).",
            format_name(format)
        )),
        ImageError::Unsupported(_) => PreprocessError::NotAnImage,
        other => PreprocessError::Corrupt {
            format: format_name(format),
            reason: other.to_string(),
        },
    }
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Gif => "GIF",
        ImageFormat::WebP => "WebP",
        _ => "image",
    }
}

/// Grey levels with transparency composited away. Transparent pixels become the opposite of the
/// ink's colour: paper white under dark strokes, black under light strokes, so either way the
/// strokes stay visible.
fn flatten_to_grey(image: &DynamicImage) -> GrayImage {
    if !image.color().has_alpha() {
        return image.to_luma8();
    }
    let grey_alpha = image.to_luma_alpha8();
    let (mut weighted, mut weights) = (0_u64, 0_u64);
    for pixel in grey_alpha.pixels() {
        let [luma, alpha] = pixel.0;
        weighted += u64::from(luma) * u64::from(alpha);
        weights += u64::from(alpha);
    }
    let ink_is_light = weights > 0 && weighted >= 128 * weights;
    let background: u32 = if ink_is_light { 0 } else { 255 };
    let (width, height) = grey_alpha.dimensions();
    let composited = grey_alpha
        .pixels()
        .map(|pixel| {
            let [luma, alpha] = pixel.0;
            let (luma, alpha) = (u32::from(luma), u32::from(alpha));
            ((luma * alpha + background * (255 - alpha) + 127) / 255) as u8
        })
        .collect();
    GrayImage::from_raw(width, height, composited).unwrap_or_default()
}

/// Bounds the work on huge images: area-averages them down to [`WORKING_SIDE`].
fn shrink(grey: GrayImage) -> GrayImage {
    let (width, height) = grey.dimensions();
    let longest = width.max(height);
    if longest <= WORKING_SIDE {
        return grey;
    }
    let scale = WORKING_SIDE as f32 / longest as f32;
    let new_width = ((width as f32 * scale).round() as u32).max(1);
    let new_height = ((height as f32 * scale).round() as u32).max(1);
    imageops::thumbnail(&grey, new_width, new_height)
}

type Plane = ImageBuffer<Luma<f32>, Vec<f32>>;

/// A grey image (any polarity, any size) → an MNIST-style grid.
fn grid_from_grey(grey: &GrayImage) -> Result<Grid, PreprocessError> {
    let (width, height) = grey.dimensions();
    // The background is what the border mostly shows; light paper means dark ink: invert.
    let background = median(border(grey)) as f32 / 255.0;
    let dark_ink = background > 0.5;
    let ink_of = |pixel: u8| {
        let level = f32::from(pixel) / 255.0;
        let (level, background) = if dark_ink {
            (1.0 - level, 1.0 - background)
        } else {
            (level, background)
        };
        (level - background).max(0.0)
    };
    let mut ink: Vec<f32> = grey.as_raw().iter().map(|&pixel| ink_of(pixel)).collect();
    let peak = ink.iter().copied().fold(0.0, f32::max);
    if peak < MIN_CONTRAST {
        return Err(PreprocessError::Empty);
    }
    for value in &mut ink {
        *value /= peak;
        if *value < NOISE_FLOOR {
            *value = 0.0;
        }
    }
    let plane = Plane::from_raw(width, height, ink).ok_or(PreprocessError::Empty)?;
    let (left, top, right, bottom) = ink_box(&plane).ok_or(PreprocessError::Empty)?;
    let (box_width, box_height) = (right - left + 1, bottom - top + 1);
    let cropped = imageops::crop_imm(&plane, left, top, box_width, box_height).to_image();

    let scale = BOX / box_width.max(box_height) as f32;
    let fit = |side: u32| ((side as f32 * scale).round() as u32).clamp(1, BOX as u32);
    let (fit_width, fit_height) = (fit(box_width), fit(box_height));
    let mut digit = if (fit_width, fit_height) == (box_width, box_height) {
        cropped
    } else {
        imageops::resize(&cropped, fit_width, fit_height, FilterType::Triangle)
    };
    // Thin strokes fade when shrunk: the darkest stroke stays full ink, as in MNIST.
    let peak = digit.pixels().map(|pixel| pixel.0[0]).fold(0.0, f32::max);
    if peak <= 0.0 {
        return Err(PreprocessError::Empty);
    }
    for pixel in digit.pixels_mut() {
        pixel.0[0] = (pixel.0[0] / peak).clamp(0.0, 1.0);
    }
    Ok(place_by_centre_of_mass(&digit))
}

fn border(grey: &GrayImage) -> Vec<u8> {
    let (width, height) = grey.dimensions();
    let mut ring = Vec::with_capacity(2 * (width + height) as usize);
    for x in 0..width {
        ring.push(grey.get_pixel(x, 0).0[0]);
        ring.push(grey.get_pixel(x, height - 1).0[0]);
    }
    for y in 1..height.saturating_sub(1) {
        ring.push(grey.get_pixel(0, y).0[0]);
        ring.push(grey.get_pixel(width - 1, y).0[0]);
    }
    ring
}

fn median(mut values: Vec<u8>) -> u8 {
    if values.is_empty() {
        return 0;
    }
    let middle = values.len() / 2;
    *values.select_nth_unstable(middle).1
}

/// Inclusive bounds (left, top, right, bottom) of the pixels holding ink.
fn ink_box(plane: &Plane) -> Option<(u32, u32, u32, u32)> {
    let mut bounds: Option<(u32, u32, u32, u32)> = None;
    for (x, y, pixel) in plane.enumerate_pixels() {
        if pixel.0[0] > 0.0 {
            bounds = Some(match bounds {
                None => (x, y, x, y),
                Some((left, top, right, bottom)) => {
                    (left.min(x), top.min(y), right.max(x), bottom.max(y))
                }
            });
        }
    }
    bounds
}

/// The digit pasted into a 28×28 grid with its centre of mass as near the centre as it fits.
fn place_by_centre_of_mass(digit: &Plane) -> Grid {
    let (width, height) = digit.dimensions();
    let (mut mass, mut sum_x, mut sum_y) = (0.0_f64, 0.0_f64, 0.0_f64);
    for (x, y, pixel) in digit.enumerate_pixels() {
        let value = f64::from(pixel.0[0]);
        mass += value;
        sum_x += value * f64::from(x);
        sum_y += value * f64::from(y);
    }
    let offset = |sum: f64, side: u32| {
        let centre = if mass > 0.0 {
            sum / mass
        } else {
            f64::from(side) / 2.0
        };
        let room = (SIDE as u32 - side) as f64;
        (f64::from(CENTRE) - centre).round().clamp(0.0, room) as usize
    };
    let (left, top) = (offset(sum_x, width), offset(sum_y, height));
    let mut grid = [0_u8; PIXELS];
    for (x, y, pixel) in digit.enumerate_pixels() {
        let index = (top + y as usize) * SIDE + left + x as usize;
        grid[index] = (pixel.0[0] * 255.0).round() as u8;
    }
    grid
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn grey(width: u32, height: u32, paint: impl Fn(u32, u32) -> u8) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| Luma([paint(x, y)]))
    }

    fn centre_of_mass(grid: &Grid) -> (f64, f64) {
        let (mut mass, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for (index, &value) in grid.iter().enumerate() {
            let value = f64::from(value);
            mass += value;
            sx += value * (index % SIDE) as f64;
            sy += value * (index / SIDE) as f64;
        }
        (sx / mass, sy / mass)
    }

    fn box_of(grid: &Grid) -> (usize, usize) {
        let rows: Vec<usize> = (0..PIXELS)
            .filter(|&i| grid[i] > 0)
            .map(|i| i / SIDE)
            .collect();
        let cols: Vec<usize> = (0..PIXELS)
            .filter(|&i| grid[i] > 0)
            .map(|i| i % SIDE)
            .collect();
        let span = |v: &[usize]| v.iter().max().unwrap() - v.iter().min().unwrap() + 1;
        (span(&cols), span(&rows))
    }

    #[test]
    fn a_dark_bar_on_paper_becomes_a_centred_light_bar_twenty_pixels_tall() {
        // A 10×100 black bar, off-centre on a 300×200 white page.
        let page = grey(300, 200, |x, y| {
            if (30..40).contains(&x) && (50..150).contains(&y) {
                0
            } else {
                255
            }
        });
        let grid = grid_from_grey(&page).unwrap();
        assert_eq!(box_of(&grid), (2, 20));
        let (cx, cy) = centre_of_mass(&grid);
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "{cx} {cy}"
        );
        assert_eq!(grid.iter().copied().max(), Some(255));
    }

    #[test]
    fn blank_and_faint_images_are_empty() {
        assert!(matches!(
            grid_from_grey(&grey(50, 50, |_, _| 255)),
            Err(PreprocessError::Empty)
        ));
        assert!(matches!(
            grid_from_grey(&grey(50, 50, |_, _| 0)),
            Err(PreprocessError::Empty)
        ));
        assert!(matches!(
            grid_from_grey(&grey(50, 50, |x, _| if x == 20 { 250 } else { 255 })),
            Err(PreprocessError::Empty)
        ));
    }

    #[test]
    fn a_single_pixel_image_does_not_panic() {
        let _ = grid_from_grey(&grey(1, 1, |_, _| 255));
        let _ = grid_from_grey(&grey(1, 3, |_, y| if y == 1 { 0 } else { 255 }));
    }
}
