use digits::{OutputFormat, Rendering, encode, preprocess};

use crate::{mean_abs_diff, test_digits};

const DIGITS: usize = 200;

/// How far preprocessing the rendered files lands from the original grids.
struct Distance {
    /// Mean absolute difference in grey levels (0–255), averaged over the digits.
    mean: f64,
    /// Share of digits that come back nearly unchanged (under 1 grey level on average).
    nearly_unchanged: f64,
}

/// Renders the first test digits, preprocesses the files, and compares with the originals.
fn round_trip(rendering: &Rendering, format: OutputFormat) -> Distance {
    let data = test_digits();
    let mut total = 0.0;
    let mut unchanged = 0;
    for grid in &data.images[..DIGITS] {
        let file = encode(grid, rendering, format).unwrap();
        let back =
            preprocess(&file).unwrap_or_else(|err| panic!("{rendering:?} {format:?}: {err}"));
        let diff = mean_abs_diff(grid, &back);
        total += diff;
        if diff < 1.0 {
            unchanged += 1;
        }
    }
    let distance = Distance {
        mean: total / DIGITS as f64,
        nearly_unchanged: f64::from(unchanged) / DIGITS as f64,
    };
    eprintln!(
        "{rendering:?} {format:?}: mean abs diff {:.2}, {:.0} % nearly unchanged",
        distance.mean,
        100.0 * distance.nearly_unchanged
    );
    distance
}

/// MNIST's own digits are already cropped, scaled and centred: preprocessing leaves nearly all
/// of them alone (a few are a pixel off-centre in MNIST itself, or have faint edges below the
/// noise floor).
#[test]
fn mnist_digits_as_png_come_back_nearly_unchanged() {
    let distance = round_trip(&Rendering::MNIST, OutputFormat::Png);
    assert!(distance.mean < 1.0, "mean {}", distance.mean);
    assert!(distance.nearly_unchanged > 0.95);
}

#[test]
fn lossless_formats_match_png() {
    for format in [OutputFormat::Bmp, OutputFormat::Gif, OutputFormat::WebP] {
        let distance = round_trip(&Rendering::MNIST, format);
        assert!(distance.mean < 1.0, "{format:?}: mean {}", distance.mean);
        assert!(distance.nearly_unchanged > 0.95, "{format:?}");
    }
}

// Scaling up then down again blurs the strokes a little: close, not equal. (With the trained
// models, 1,000 such digits as 280×280 JPEGs are classified as well as the originals.)
#[test]
fn drawn_dark_on_light_and_scaled_up_as_jpeg_comes_back_close() {
    let distance = round_trip(&Rendering::drawn(280), OutputFormat::Jpeg { quality: 90 });
    assert!(distance.mean < 12.0, "mean {}", distance.mean);
    let distance = round_trip(&Rendering::drawn(28), OutputFormat::Jpeg { quality: 75 });
    assert!(distance.mean < 15.0, "mean {}", distance.mean);
    let distance = round_trip(&Rendering::drawn(140), OutputFormat::Gif);
    assert!(distance.mean < 12.0, "mean {}", distance.mean);
}

#[test]
fn transparent_backgrounds_keep_the_strokes() {
    // Black strokes on a transparent background: the usual export of a drawing canvas.
    let black_on_clear = Rendering {
        transparent: true,
        ..Rendering::drawn(140)
    };
    let white_on_clear = Rendering {
        transparent: true,
        ..Rendering::MNIST
    };
    for (rendering, format) in [
        (black_on_clear, OutputFormat::Png),
        (black_on_clear, OutputFormat::WebP),
        (white_on_clear, OutputFormat::Png),
    ] {
        let distance = round_trip(&rendering, format);
        assert!(
            distance.mean < 12.0,
            "{rendering:?} {format:?}: mean {}",
            distance.mean
        );
    }
    // GIF transparency is all or nothing: the anti-aliased edges become solid ink, so the
    // strokes come back bolder, but still there.
    let distance = round_trip(&black_on_clear, OutputFormat::Gif);
    assert!(distance.mean < 30.0, "mean {}", distance.mean);
}

#[test]
fn coloured_ink_on_coloured_paper_is_read_as_grey() {
    let blue_on_cream = Rendering {
        side: 100,
        ink: [20, 40, 160],
        paper: [250, 240, 200],
        transparent: false,
    };
    for format in [OutputFormat::Png, OutputFormat::Jpeg { quality: 85 }] {
        let distance = round_trip(&blue_on_cream, format);
        assert!(distance.mean < 12.0, "{format:?}: mean {}", distance.mean);
    }
}
