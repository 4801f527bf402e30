//! Digits rendered as image files: test uploads for the services, and a way to look at a grid.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

use crate::{Grid, SIDE};

/// How a grid is drawn before it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendering {
    /// Side of the square picture in pixels (28 keeps MNIST's size).
    pub side: u32,
    /// Colour of the strokes.
    pub ink: [u8; 3],
    /// Colour of the background.
    pub paper: [u8; 3],
    /// Transparent background: the strokes' coverage becomes the alpha channel (ignored by JPEG,
    /// which has no alpha: there the paper shows).
    pub transparent: bool,
}

impl Rendering {
    /// As MNIST stores it: white strokes on black, 28×28.
    pub const MNIST: Rendering = Rendering {
        side: SIDE as u32,
        ink: [255; 3],
        paper: [0; 3],
        transparent: false,
    };

    /// As people draw: black strokes on white paper, `side`×`side` pixels.
    pub const fn drawn(side: u32) -> Rendering {
        Rendering {
            side,
            ink: [0; 3],
            paper: [255; 3],
            transparent: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    Jpeg {
        quality: u8,
    },
    Bmp,
    Gif,
    /// Lossless WebP.
    WebP,
}

#[derive(Debug, thiserror::Error)]
#[error("encoding a digit as {format:?}: {reason}")]
pub struct EncodeError {
    format: OutputFormat,
    reason: String,
}

/// A grid as a 28×28 greyscale PNG, white on black like MNIST.
pub fn grid_to_png(grid: &Grid) -> Result<Vec<u8>, EncodeError> {
    encode(grid, &Rendering::MNIST, OutputFormat::Png)
}

/// A grid drawn black on white, `side`×`side` pixels, as a JPEG of the given quality (1–100).
pub fn grid_to_jpeg(grid: &Grid, side: u32, quality: u8) -> Result<Vec<u8>, EncodeError> {
    encode(
        grid,
        &Rendering::drawn(side),
        OutputFormat::Jpeg { quality },
    )
}

/// A grid drawn as `rendering` says, encoded as `format`.
pub fn encode(
    grid: &Grid,
    rendering: &Rendering,
    format: OutputFormat,
) -> Result<Vec<u8>, EncodeError> {
    let coverage = scaled_coverage(grid, rendering.side);
    let blend = |channel: usize, amount: u8| {
        let (ink, paper) = (
            f32::from(rendering.ink[channel]),
            f32::from(rendering.paper[channel]),
        );
        (paper + (ink - paper) * f32::from(amount) / 255.0).round() as u8
    };
    let (width, height) = coverage.dimensions();
    let image = if rendering.transparent && !matches!(format, OutputFormat::Jpeg { .. }) {
        DynamicImage::ImageRgba8(RgbaImage::from_fn(width, height, |x, y| {
            let amount = coverage.get_pixel(x, y).0[0];
            let [r, g, b] = rendering.ink;
            Rgba([r, g, b, amount])
        }))
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
            let amount = coverage.get_pixel(x, y).0[0];
            Rgb([blend(0, amount), blend(1, amount), blend(2, amount)])
        }))
    };
    let grey = rendering.ink[0] == rendering.ink[1]
        && rendering.ink[1] == rendering.ink[2]
        && rendering.paper[0] == rendering.paper[1]
        && rendering.paper[1] == rendering.paper[2];
    let image = match (&image, grey) {
        (DynamicImage::ImageRgb8(_), true) => DynamicImage::ImageLuma8(image.to_luma8()),
        (DynamicImage::ImageRgba8(_), true) => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
        _ => image,
    };
    let fail = |err: image::ImageError| EncodeError {
        format,
        reason: err.to_string(),
    };
    let mut bytes = Cursor::new(Vec::new());
    match format {
        OutputFormat::Jpeg { quality } => {
            let opaque = match image {
                DynamicImage::ImageLumaA8(_) => DynamicImage::ImageLuma8(image.to_luma8()),
                DynamicImage::ImageRgba8(_) => DynamicImage::ImageRgb8(image.to_rgb8()),
                other => other,
            };
            opaque
                .write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, quality))
                .map_err(fail)?;
        }
        OutputFormat::Gif => {
            // GIF is paletted with at most one transparent colour: hand it RGBA.
            DynamicImage::ImageRgba8(image.to_rgba8())
                .write_to(&mut bytes, ImageFormat::Gif)
                .map_err(fail)?;
        }
        OutputFormat::Png => image.write_to(&mut bytes, ImageFormat::Png).map_err(fail)?,
        OutputFormat::Bmp => image.write_to(&mut bytes, ImageFormat::Bmp).map_err(fail)?,
        OutputFormat::WebP => image
            .write_to(&mut bytes, ImageFormat::WebP)
            .map_err(fail)?,
    }
    Ok(bytes.into_inner())
}

/// The grid's ink coverage (0 = paper, 255 = full ink) at `side`×`side` pixels.
fn scaled_coverage(grid: &Grid, side: u32) -> GrayImage {
    let native = GrayImage::from_raw(SIDE as u32, SIDE as u32, grid.to_vec())
        .unwrap_or_else(|| GrayImage::new(SIDE as u32, SIDE as u32));
    if side == SIDE as u32 {
        native
    } else {
        imageops::resize(&native, side.max(1), side.max(1), FilterType::Triangle)
    }
}
