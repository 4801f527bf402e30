//! MNIST digits, shared by training (retrain-worker) and serving (predict-svc), so both see the
//! same pixels: the IDX loader, image preprocessing into MNIST's 28×28 format, and the model input.
//!
//! Models take pixels scaled to `[0, 1]` ([`to_input`]) and apply MNIST's normalisation
//! ([`MEAN`], [`STD`]) themselves as their first operation, in candle and in the exported ONNX
//! graph alike, so a caller cannot get normalisation wrong.

pub mod augment;
pub mod bombs;
pub mod encode;
pub mod idx;
pub mod preprocess;

pub use encode::{EncodeError, OutputFormat, Rendering, encode, grid_to_jpeg, grid_to_png};
pub use idx::{Dataset, IdxError, load_test, load_train};
pub use preprocess::{DecodeLimits, PreprocessError, preprocess, preprocess_with_limits};

/// Side of an MNIST digit in pixels.
pub const SIDE: usize = 28;
/// Pixels in an MNIST digit.
pub const PIXELS: usize = SIDE * SIDE;
/// Number of classes (the digits 0 to 9).
pub const CLASSES: usize = 10;

/// A 28×28 MNIST-style digit, row-major, light ink (up to 255) on a black (0) background.
pub type Grid = [u8; PIXELS];

/// Mean of MNIST's training pixels scaled to `[0, 1]`.
pub const MEAN: f32 = 0.1307;
/// Standard deviation of MNIST's training pixels scaled to `[0, 1]`.
pub const STD: f32 = 0.3081;

/// The model input for one digit: each pixel scaled to `[0, 1]` (the model normalises itself).
pub fn to_input(grid: &Grid) -> [f32; PIXELS] {
    let mut input = [0.0; PIXELS];
    for (value, &pixel) in input.iter_mut().zip(grid) {
        *value = f32::from(pixel) / 255.0;
    }
    input
}

/// [`to_input`] for many digits, appended to one flat `[N × 784]` buffer (an `[N, 1, 28, 28]` tensor).
pub fn to_input_batch<'a>(grids: impl IntoIterator<Item = &'a Grid>) -> Vec<f32> {
    let grids = grids.into_iter();
    let mut batch = Vec::with_capacity(grids.size_hint().0 * PIXELS);
    for grid in grids {
        batch.extend(grid.iter().map(|&pixel| f32::from(pixel) / 255.0));
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_scales_pixels_to_unit_range() {
        let mut grid = [0_u8; PIXELS];
        grid[0] = 255;
        grid[1] = 51;
        let input = to_input(&grid);
        assert_eq!(input[0], 1.0);
        assert!((input[1] - 0.2).abs() < 1e-7);
        assert_eq!(input[2], 0.0);
        let batch = to_input_batch([&grid, &grid]);
        assert_eq!(batch.len(), 2 * PIXELS);
        assert_eq!(&batch[PIXELS..], &input[..]);
    }
}
