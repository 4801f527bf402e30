//! Loader for MNIST's IDX files (big-endian header, then raw bytes), checked strictly: a wrong or
//! damaged file is reported by name instead of training on garbage.

use std::path::{Path, PathBuf};

use crate::{Grid, PIXELS, SIDE};

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
/// The four files of the data set, as named in a folder fetched by `cargo xtask setup`.
pub const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

const IMAGES_HEADER: usize = 16;
const LABELS_HEADER: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: bad magic number {found:#010x}, expected {expected:#010x} ({what})")]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
        what: &'static str,
    },
    #[error("{path}: images are {rows}×{cols} pixels, expected 28×28")]
    BadDimensions { path: PathBuf, rows: u32, cols: u32 },
    #[error("{path}: truncated: expected {expected} bytes, found {found}")]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path}: expected {expected} bytes, found {found} (trailing data after the last item)")]
    TrailingData {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path}: label {label} at index {index} is not a digit")]
    BadLabel {
        path: PathBuf,
        index: usize,
        label: u8,
    },
    #[error(
        "{images_path} holds {images} images but {labels_path} holds {labels} labels: the files do not belong together"
    )]
    CountMismatch {
        images_path: PathBuf,
        images: usize,
        labels_path: PathBuf,
        labels: usize,
    },
}

/// Digits with their labels, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub images: Vec<Grid>,
    pub labels: Vec<u8>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` digits (all of them when there are fewer), for quick runs on a subset.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// The 60,000 training digits from `dir` (which holds the four files named in [`FILES`]).
pub fn load_train(dir: &Path) -> Result<Dataset, IdxError> {
    load(&dir.join(TRAIN_IMAGES), &dir.join(TRAIN_LABELS))
}

/// The 10,000 test digits from `dir` (which holds the four files named in [`FILES`]).
pub fn load_test(dir: &Path) -> Result<Dataset, IdxError> {
    load(&dir.join(TEST_IMAGES), &dir.join(TEST_LABELS))
}

/// An images file and its labels file, checked to belong together.
pub fn load(images_path: &Path, labels_path: &Path) -> Result<Dataset, IdxError> {
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path)?;
    if images.len() != labels.len() {
        return Err(IdxError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.len(),
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    Ok(Dataset { images, labels })
}

pub fn read_images(path: &Path) -> Result<Vec<Grid>, IdxError> {
    parse_images(&read(path)?, path)
}

pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    parse_labels(&read(path)?, path)
}

/// Parses the content of an images file; `path` only names it in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Vec<Grid>, IdxError> {
    check_magic(bytes, IMAGES_MAGIC, "images, idx3-ubyte", path)?;
    let header = header(bytes, IMAGES_HEADER, path)?;
    let (count, rows, cols) = (header[1], header[2], header[3]);
    if rows as usize != SIDE || cols as usize != SIDE {
        return Err(IdxError::BadDimensions {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    let body = body(bytes, IMAGES_HEADER, u64::from(count) * PIXELS as u64, path)?;
    Ok(body
        .chunks_exact(PIXELS)
        .map(|chunk| {
            let mut grid = [0; PIXELS];
            grid.copy_from_slice(chunk);
            grid
        })
        .collect())
}

/// Parses the content of a labels file; `path` only names it in errors.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, IdxError> {
    check_magic(bytes, LABELS_MAGIC, "labels, idx1-ubyte", path)?;
    let header = header(bytes, LABELS_HEADER, path)?;
    let labels = body(bytes, LABELS_HEADER, u64::from(header[1]), path)?;
    if let Some(index) = labels.iter().position(|&label| label > 9) {
        return Err(IdxError::BadLabel {
            path: path.to_path_buf(),
            index,
            label: labels[index],
        });
    }
    Ok(labels.to_vec())
}

fn read(path: &Path) -> Result<Vec<u8>, IdxError> {
    std::fs::read(path).map_err(|source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The big-endian u32 fields of a header `len` bytes long.
fn header(bytes: &[u8], len: usize, path: &Path) -> Result<Vec<u32>, IdxError> {
    let Some(header) = bytes.get(..len) else {
        return Err(IdxError::Truncated {
            path: path.to_path_buf(),
            expected: len as u64,
            found: bytes.len() as u64,
        });
    };
    Ok(header
        .chunks_exact(4)
        .map(|field| u32::from_be_bytes([field[0], field[1], field[2], field[3]]))
        .collect())
}

/// Checked before the length, so that a file of the wrong kind says so.
fn check_magic(
    bytes: &[u8],
    expected: u32,
    what: &'static str,
    path: &Path,
) -> Result<(), IdxError> {
    let found = header(bytes, 4, path)?[0];
    if found == expected {
        Ok(())
    } else {
        Err(IdxError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected,
            what,
        })
    }
}

/// The `body_len` bytes after the header, when the file is exactly that long.
fn body<'a>(
    bytes: &'a [u8],
    header_len: usize,
    body_len: u64,
    path: &Path,
) -> Result<&'a [u8], IdxError> {
    let expected = header_len as u64 + body_len;
    let found = bytes.len() as u64;
    if found < expected {
        return Err(IdxError::Truncated {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(IdxError::TrailingData {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    Ok(&bytes[header_len..])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn images_file(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for field in [IMAGES_MAGIC, count, rows, cols] {
            bytes.extend(field.to_be_bytes());
        }
        bytes.extend(pixels);
        bytes
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(LABELS_MAGIC.to_be_bytes());
        bytes.extend((labels.len() as u32).to_be_bytes());
        bytes.extend(labels);
        bytes
    }

    /// A private folder under the system's temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "digits-idx-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn loads_images_and_labels_that_belong_together() {
        let dir = TempDir::new("ok");
        let mut pixels = vec![0_u8; 2 * PIXELS];
        pixels[0] = 7;
        pixels[PIXELS + 783] = 255;
        dir.write(TRAIN_IMAGES, &images_file(2, 28, 28, &pixels));
        dir.write(TRAIN_LABELS, &labels_file(&[3, 9]));
        let data = load_train(&dir.0).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data.labels, [3, 9]);
        assert_eq!(data.images[0][0], 7);
        assert_eq!(data.images[1][783], 255);
        assert_eq!(data.take(1).len(), 1);
    }

    #[test]
    fn a_truncated_file_says_how_many_bytes_are_missing() {
        let dir = TempDir::new("truncated");
        let mut bytes = images_file(2, 28, 28, &vec![0; 2 * PIXELS]);
        bytes.truncate(bytes.len() - 100);
        let path = dir.write(TEST_IMAGES, &bytes);
        let err = read_images(&path).unwrap_err();
        assert!(matches!(
            err,
            IdxError::Truncated {
                expected: 1584,
                found: 1484,
                ..
            }
        ));
        let message = err.to_string();
        assert!(
            message.contains("truncated: expected 1584 bytes, found 1484"),
            "{message}"
        );
        assert!(message.contains(TEST_IMAGES), "{message}");

        // Shorter than the header itself.
        let path = dir.write(TEST_LABELS, &[0, 0, 8, 1, 0, 0]);
        let err = read_labels(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("truncated: expected 8 bytes, found 6"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_magic_number_names_the_file_and_the_numbers() {
        let dir = TempDir::new("magic");
        // A labels file where an images file is expected.
        let path = dir.write(TRAIN_IMAGES, &labels_file(&[1, 2, 3]));
        let err = read_images(&path).unwrap_err();
        assert!(matches!(
            err,
            IdxError::BadMagic {
                found: LABELS_MAGIC,
                expected: IMAGES_MAGIC,
                ..
            }
        ));
        let message = err.to_string();
        assert!(message.contains("bad magic number 0x00000801"), "{message}");
        assert!(message.contains(TRAIN_IMAGES), "{message}");

        // A gzip-compressed file that was not unpacked.
        let path = dir.write(TRAIN_LABELS, &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        assert!(matches!(
            read_labels(&path).unwrap_err(),
            IdxError::BadMagic { .. }
        ));
    }

    #[test]
    fn other_damage_is_refused() {
        let dir = TempDir::new("damage");
        let path = dir.write("wrong-size", &images_file(1, 32, 32, &[0; 1024]));
        assert!(matches!(
            read_images(&path).unwrap_err(),
            IdxError::BadDimensions {
                rows: 32,
                cols: 32,
                ..
            }
        ));

        let mut bytes = labels_file(&[1, 2]);
        bytes.push(0);
        let path = dir.write("trailing", &bytes);
        assert!(matches!(
            read_labels(&path).unwrap_err(),
            IdxError::TrailingData {
                expected: 10,
                found: 11,
                ..
            }
        ));

        let path = dir.write("bad-label", &labels_file(&[1, 10]));
        assert!(matches!(
            read_labels(&path).unwrap_err(),
            IdxError::BadLabel {
                index: 1,
                label: 10,
                ..
            }
        ));

        let images = dir.write("images", &images_file(2, 28, 28, &vec![0; 2 * PIXELS]));
        let labels = dir.write("labels", &labels_file(&[1, 2, 3]));
        let err = load(&images, &labels).unwrap_err();
        assert!(matches!(
            err,
            IdxError::CountMismatch {
                images: 2,
                labels: 3,
                ..
            }
        ));

        let err = load_test(&dir.0.join("missing")).unwrap_err();
        assert!(matches!(err, IdxError::Io { .. }), "{err}");
    }
}
