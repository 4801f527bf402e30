//! Decompression bombs: small files that claim huge images. Tests and `cargo xtask bench bombs`
//! send them to check that preprocessing refuses them from their header, before decoding.

/// A 35-byte GIF whose logical screen (the canvas a decoder allocates) is `side`×`side`, holding
/// a single 1×1 frame.
pub fn gif_canvas(side: u16) -> Vec<u8> {
    let [lo, hi] = side.to_le_bytes();
    let mut gif = Vec::with_capacity(35);
    gif.extend_from_slice(b"GIF89a");
    // Logical screen descriptor: width, height, a global colour table of 2 entries, background
    // colour 0, no aspect ratio; then the table: black, white.
    gif.extend_from_slice(&[lo, hi, lo, hi, 0x80, 0, 0]);
    gif.extend_from_slice(&[0, 0, 0, 0xff, 0xff, 0xff]);
    // Image descriptor: at (0, 0), 1×1, no local colour table.
    gif.extend_from_slice(&[0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
    // LZW, minimum code size 2: clear (4), pixel 0, end (5), 3 bits each, least significant first.
    gif.extend_from_slice(&[2, 2, 0x44, 0x01, 0]);
    gif.push(0x3b);
    gif
}

/// What the pixels of [`png_zeros`] are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PngPixels {
    /// 16-bit grey: 2 bytes a pixel once decoded.
    Grey16,
    /// 8-bit RGBA: 4 bytes a pixel once decoded.
    Rgba8,
}

/// A `side`×`side` PNG of zeros, encoded row by row (the whole image is never in memory): an
/// 8192² one is about 130 KB for 128 MiB (grey 16) or 256 MiB (RGBA) of pixels.
pub fn png_zeros(side: u32, pixels: PngPixels) -> Result<Vec<u8>, png::EncodingError> {
    let mut file = Vec::new();
    let (color, depth, bytes_per_pixel) = match pixels {
        PngPixels::Grey16 => (png::ColorType::Grayscale, png::BitDepth::Sixteen, 2),
        PngPixels::Rgba8 => (png::ColorType::Rgba, png::BitDepth::Eight, 4),
    };
    let mut encoder = png::Encoder::new(&mut file, side, side);
    encoder.set_color(color);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header()?;
    let mut stream = writer.stream_writer()?;
    let row = vec![0_u8; side as usize * bytes_per_pixel];
    for _ in 0..side {
        std::io::Write::write_all(&mut stream, &row)?;
    }
    stream.finish()?;
    writer.finish()?;
    Ok(file)
}

/// An Open Inference Protocol JSON body (`/v2/models/{m}/infer`) carrying `batch` 28×28 images
/// of zeros: `batch` × 784 numbers, about 1.6 KB an image.
pub fn oip_zeros(batch: usize) -> Vec<u8> {
    let head =
        format!(r#"{{"inputs":[{{"name":"input","shape":[{batch},784],"datatype":"FP32","data":["#);
    let mut body = head.into_bytes();
    body.reserve(batch * 784 * 2 + 4);
    for i in 0..batch * 784 {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'0');
    }
    body.extend_from_slice(b"]}]}");
    body
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use image::ImageDecoder;

    #[test]
    fn the_gif_is_35_bytes_and_decodes_to_its_canvas() {
        let gif = gif_canvas(3);
        assert_eq!(gif.len(), 35);
        let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&gif)).unwrap();
        assert_eq!(decoder.dimensions(), (3, 3));
        let image = image::DynamicImage::from_decoder(decoder).unwrap();
        assert_eq!(image.to_rgba8().get_pixel(0, 0).0, [0, 0, 0, 255]);
    }

    #[test]
    fn the_pngs_decode_to_zeros_of_their_kind() {
        for (pixels, colour) in [
            (PngPixels::Grey16, image::ColorType::L16),
            (PngPixels::Rgba8, image::ColorType::Rgba8),
        ] {
            let png = png_zeros(40, pixels).unwrap();
            let image = image::load_from_memory(&png).unwrap();
            assert_eq!(
                (image.width(), image.height(), image.color()),
                (40, 40, colour)
            );
            assert!(image.as_bytes().iter().all(|&b| b == 0));
        }
    }
}
