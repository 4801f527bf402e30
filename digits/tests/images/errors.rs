use digits::{DecodeLimits, OutputFormat, PreprocessError, Rendering, encode, grid_to_png};
use digits::{preprocess, preprocess_with_limits};

use crate::test_digits;

fn png_of_first_digit() -> Vec<u8> {
    grid_to_png(&test_digits().images[0]).unwrap()
}

#[test]
fn garbage_is_not_an_image() {
    for bytes in [
        &b"hello, this is text, not a picture"[..],
        &[][..],
        &[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3][..],
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    ] {
        let err = preprocess(bytes).unwrap_err();
        assert!(matches!(err, PreprocessError::NotAnImage), "{err:?}");
    }
}

#[test]
fn formats_we_do_not_accept_are_not_images() {
    // A little-endian TIFF header: `image` knows it, we do not accept it.
    let tiff = [b'I', b'I', 42, 0, 8, 0, 0, 0, 0, 0];
    assert!(matches!(
        preprocess(&tiff).unwrap_err(),
        PreprocessError::NotAnImage
    ));
}

#[test]
fn a_truncated_png_is_corrupt() {
    let png = png_of_first_digit();
    for cut in [png.len() / 2, 40] {
        let err = preprocess(&png[..cut]).unwrap_err();
        assert!(
            matches!(err, PreprocessError::Corrupt { format: "PNG", .. }),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn a_damaged_jpeg_is_corrupt() {
    let jpeg = encode(
        &test_digits().images[0],
        &Rendering::drawn(100),
        OutputFormat::Jpeg { quality: 90 },
    )
    .unwrap();
    let err = preprocess(&jpeg[..20]).unwrap_err();
    assert!(
        matches!(err, PreprocessError::Corrupt { format: "JPEG", .. }),
        "{err:?}"
    );
}

#[test]
fn a_blank_image_is_empty() {
    let blank = encode(&[0; 784], &Rendering::drawn(64), OutputFormat::Png).unwrap();
    let err = preprocess(&blank).unwrap_err();
    assert!(matches!(err, PreprocessError::Empty), "{err:?}");
}

#[test]
fn dimensions_beyond_the_limits_are_refused_before_decoding() {
    let png = encode(
        &test_digits().images[0],
        &Rendering::drawn(280),
        OutputFormat::Png,
    )
    .unwrap();
    let small = DecodeLimits {
        max_side: 100,
        ..DecodeLimits::default()
    };
    let err = preprocess_with_limits(&png, &small).unwrap_err();
    assert!(matches!(err, PreprocessError::TooLarge(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "The PNG image is 280×280 pixels; at most 100 pixels on its longest side are accepted."
    );
    // The same image within a budget that fits it still decodes.
    let fits = DecodeLimits {
        max_side: 280,
        max_bytes: 280 * 280 * 4,
    };
    assert!(preprocess_with_limits(&png, &fits).is_ok());
    let tight = DecodeLimits {
        max_side: 280,
        max_bytes: 280 * 280 - 1,
    };
    let err = preprocess_with_limits(&png, &tight).unwrap_err();
    assert!(err.to_string().contains("once decoded"), "{err}");

    // A decompression bomb: a tiny file whose header claims 100,000 × 100,000 pixels.
    let bomb = with_png_size(&png_of_first_digit(), 100_000, 100_000);
    let err = preprocess(&bomb).unwrap_err();
    assert!(matches!(err, PreprocessError::TooLarge(_)), "{err:?}");
}

/// The PNG with other dimensions written into its IHDR chunk (CRC fixed).
fn with_png_size(png: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut png = png.to_vec();
    // 8-byte signature, then IHDR: length (4), type (4), width (4), height (4), ... , CRC.
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_gif_whose_canvas_is_huge_is_refused_from_its_header() {
    let bomb = digits::bombs::gif_canvas(8192);
    assert_eq!(bomb.len(), 35);
    let err = preprocess(&bomb).unwrap_err();
    assert!(matches!(err, PreprocessError::TooLarge(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "The GIF image is 8192×8192 pixels; at most 4096 pixels on its longest side are accepted."
    );
    // Within the side limit, the canvas still counts against the decoded size: 4096² RGBA is
    // 64 MiB, refused by a budget of 32 MiB.
    let limits = DecodeLimits {
        max_side: 4096,
        max_bytes: 32 * 1024 * 1024,
    };
    let err = preprocess_with_limits(&digits::bombs::gif_canvas(4096), &limits).unwrap_err();
    assert!(matches!(err, PreprocessError::TooLarge(_)), "{err:?}");
    assert!(err.to_string().contains("64 MiB once decoded"), "{err}");
}

#[test]
fn sixteen_bit_and_rgba_pngs_are_refused_by_their_decoded_size() {
    use digits::bombs::{PngPixels, png_zeros};
    // 2048² is within the side limit; as 16-bit grey it takes 8 MiB, as RGBA 16 MiB.
    let limits = DecodeLimits {
        max_side: 4096,
        max_bytes: 8 * 1024 * 1024 - 1,
    };
    for pixels in [PngPixels::Grey16, PngPixels::Rgba8] {
        let png = png_zeros(2048, pixels).unwrap();
        let err = preprocess_with_limits(&png, &limits).unwrap_err();
        assert!(
            matches!(err, PreprocessError::TooLarge(_)),
            "{pixels:?}: {err:?}"
        );
        assert!(err.to_string().contains("once decoded"), "{err}");
    }
    // The 8192² ones of the issue, with the default limits.
    for pixels in [PngPixels::Grey16, PngPixels::Rgba8] {
        let png = png_zeros(8192, pixels).unwrap();
        assert!(png.len() < 1024 * 1024, "{pixels:?}: {} bytes", png.len());
        let err = preprocess(&png).unwrap_err();
        assert!(
            matches!(err, PreprocessError::TooLarge(_)),
            "{pixels:?}: {err:?}"
        );
    }
}
