//! Digits changed the way real handwriting differs from MNIST's: turned, or drawn with a thicker
//! pen. Tests use them as a kind of digit the models have not seen; training could use them as
//! augmentation.

use crate::{Grid, SIDE};

/// `grid` turned counter-clockwise by `degrees` about its centre (bilinear, black outside).
pub fn rotate(grid: &Grid, degrees: f32) -> Grid {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let centre = (SIDE as f32 - 1.0) / 2.0;
    let mut out = [0u8; crate::PIXELS];
    for y in 0..SIDE {
        for x in 0..SIDE {
            // The source of output pixel (x, y): the inverse rotation (y grows downwards).
            let (dx, dy) = (x as f32 - centre, y as f32 - centre);
            let sx = cos * dx - sin * dy + centre;
            let sy = sin * dx + cos * dy + centre;
            out[y * SIDE + x] = bilinear(grid, sx, sy);
        }
    }
    out
}

/// `grid` with every stroke widened by `radius` pixels (grey-level dilation with a disc).
pub fn thicken(grid: &Grid, radius: usize) -> Grid {
    let r = radius as isize;
    let mut out = [0u8; crate::PIXELS];
    for y in 0..SIDE as isize {
        for x in 0..SIDE as isize {
            let mut brightest = 0u8;
            for dy in -r..=r {
                for dx in -r..=r {
                    if dx * dx + dy * dy > r * r {
                        continue;
                    }
                    let (sx, sy) = (x + dx, y + dy);
                    if (0..SIDE as isize).contains(&sx) && (0..SIDE as isize).contains(&sy) {
                        brightest = brightest.max(grid[sy as usize * SIDE + sx as usize]);
                    }
                }
            }
            out[y as usize * SIDE + x as usize] = brightest;
        }
    }
    out
}

fn bilinear(grid: &Grid, x: f32, y: f32) -> u8 {
    let pixel = |x: isize, y: isize| -> f32 {
        if (0..SIDE as isize).contains(&x) && (0..SIDE as isize).contains(&y) {
            f32::from(grid[y as usize * SIDE + x as usize])
        } else {
            0.0
        }
    };
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as isize, y0 as isize);
    let top = pixel(x0, y0) * (1.0 - fx) + pixel(x0 + 1, y0) * fx;
    let bottom = pixel(x0, y0 + 1) * (1.0 - fx) + pixel(x0 + 1, y0 + 1) * fx;
    (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(x: usize, y: usize) -> Grid {
        let mut grid = [0u8; crate::PIXELS];
        grid[y * SIDE + x] = 255;
        grid
    }

    fn brightest(grid: &Grid) -> (usize, usize) {
        let index = (0..grid.len()).max_by_key(|&i| grid[i]).unwrap_or(0);
        (index % SIDE, index / SIDE)
    }

    #[test]
    fn a_quarter_turn_moves_a_point_from_the_right_to_the_top() {
        // Right of centre, on the middle row: counter-clockwise it goes up.
        let turned = rotate(&dot(20, 13), 90.0);
        let (x, y) = brightest(&turned);
        assert!((13..=14).contains(&x), "{x},{y}");
        assert!((6..=7).contains(&y), "{x},{y}");
        assert_eq!(rotate(&dot(5, 9), 0.0), dot(5, 9));
    }

    #[test]
    fn thickening_widens_a_point_into_a_disc() {
        let thick = thicken(&dot(10, 10), 2);
        assert_eq!(thick.iter().filter(|&&p| p == 255).count(), 13);
        assert_eq!(thick[10 * SIDE + 12], 255);
        assert_eq!(thick[12 * SIDE + 12], 0);
        assert_eq!(thicken(&dot(3, 3), 0), dot(3, 3));
    }
}
