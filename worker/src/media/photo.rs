//! Photos people upload (a search query, a shelf photo): JPEG, PNG or WebP,
//! read upright (the camera's EXIF orientation applied, as a browser shows
//! them) within limits on size, each refusal a sentence a person can act on.

use std::io::Cursor;

use image::{
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage, metadata::Orientation,
};

/// How large a photo may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    /// Pixels a side (either side).
    pub max_side: u32,
    /// Pixels in all.
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 40 << 20,
            max_side: 12_000,
            max_pixels: 100_000_000,
        }
    }
}

/// Why a file is not a photo this server takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {} MB; the most accepted is {} MB", .bytes >> 20, .max >> 20)]
    TooLarge { bytes: usize, max: usize },
    #[error(
        "HEIC/HEIF photos cannot be read here; export them as JPEG (on an iPhone: Settings > \
         Camera > Formats > Most Compatible)"
    )]
    Heic,
    #[error("this file is not an image (JPEG, PNG or WebP)")]
    NotAnImage,
    #[error("{0} images are not taken; use JPEG, PNG or WebP")]
    Unsupported(String),
    #[error(
        "the image is {width}x{height}; the most accepted is {max_side} pixels a side and {max_megapixels} megapixels"
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        max_side: u32,
        max_megapixels: u64,
    },
    #[error("the image is damaged: {0}")]
    Damaged(String),
}

/// What a photo's header says, before its pixels are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Upright size.
    pub width: u32,
    pub height: u32,
    /// `jpeg`, `png` or `webp`.
    pub format: &'static str,
    pub orientation: Orientation,
}

fn is_heic(bytes: &[u8]) -> bool {
    bytes.len() >= 12
        && &bytes[4..8] == b"ftyp"
        && matches!(
            &bytes[8..12],
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"mif1" | b"msf1" | b"heim" | b"heis"
        )
}

/// A reader of the photo's bytes, with the format's name.
type Reader<'a> = (ImageReader<Cursor<&'a [u8]>>, &'static str);

fn reader<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Reader<'a>, PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(PhotoError::TooLarge {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    if is_heic(bytes) {
        return Err(PhotoError::Heic);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PhotoError::Damaged(e.to_string()))?;
    let format = match reader.format() {
        Some(ImageFormat::Jpeg) => "jpeg",
        Some(ImageFormat::Png) => "png",
        Some(ImageFormat::WebP) => "webp",
        Some(other) => return Err(PhotoError::Unsupported(format!("{other:?}").to_uppercase())),
        None => return Err(PhotoError::NotAnImage),
    };
    Ok((reader, format))
}

fn upright(width: u32, height: u32, orientation: Orientation) -> (u32, u32) {
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    }
}

fn check_size(width: u32, height: u32, limits: &Limits) -> Result<(), PhotoError> {
    if width.max(height) > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(PhotoError::TooManyPixels {
            width,
            height,
            max_side: limits.max_side,
            max_megapixels: limits.max_pixels / 1_000_000,
        });
    }
    Ok(())
}

/// Reads a photo's header: its format, upright size and orientation.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, PhotoError> {
    let (reader, format) = reader(bytes, limits)?;
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| PhotoError::Damaged(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    // A broken EXIF block is no reason to refuse a photo: it stands as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (width, height) = upright(w, h, orientation);
    check_size(width, height, limits)?;
    Ok(Probe {
        width,
        height,
        format,
        orientation,
    })
}

/// Decodes a photo upright.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<RgbImage, PhotoError> {
    let (reader, _) = reader(bytes, limits)?;
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| PhotoError::Damaged(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    check_size(w, h, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| PhotoError::Damaged(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// A JPEG of an image, as photos are stored for the browser.
pub fn jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .expect("encoding to memory");
    out.into_inner()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::Rgb;

    /// A JPEG with an EXIF block saying how the camera was held.
    pub(crate) fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"II*\0");
        tiff.extend_from_slice(&8u32.to_le_bytes());
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&0x0112u16.to_le_bytes());
        tiff.extend_from_slice(&3u16.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    /// 60x40: red on the left third, the rest grey.
    fn landscape() -> RgbImage {
        RgbImage::from_fn(60, 40, |x, _| {
            Rgb(if x < 20 {
                [220, 20, 20]
            } else {
                [128, 128, 128]
            })
        })
    }

    #[test]
    fn a_photo_taken_sideways_is_read_upright() {
        let stored = jpeg(&landscape(), 95);
        let rotated = with_orientation(&stored, 6);
        let probe = probe(&rotated, &Limits::default()).unwrap();
        assert_eq!((probe.width, probe.height, probe.format), (40, 60, "jpeg"));
        assert_eq!(probe.orientation, Orientation::Rotate90);
        let image = decode(&rotated, &Limits::default()).unwrap();
        assert_eq!(image.dimensions(), (40, 60));
        // Turned clockwise, the red left third is now the top third.
        let red = |p: &Rgb<u8>| p.0[0] > 180 && p.0[1] < 80;
        assert!(red(image.get_pixel(20, 5)));
        assert!(!red(image.get_pixel(20, 55)));
        let plain = decode(&stored, &Limits::default()).unwrap();
        assert_eq!(plain.dimensions(), (60, 40));
    }

    #[test]
    fn what_is_not_a_photo_is_refused_in_words() {
        let limits = Limits::default();
        assert_eq!(probe(b"", &limits), Err(PhotoError::Empty));
        assert_eq!(probe(b"hello, world", &limits), Err(PhotoError::NotAnImage));
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(probe(heic, &limits), Err(PhotoError::Heic));
        let small = Limits {
            max_bytes: 100,
            ..limits
        };
        let stored = jpeg(&landscape(), 95);
        assert!(matches!(
            probe(&stored, &small),
            Err(PhotoError::TooLarge { .. })
        ));
        let narrow = Limits {
            max_side: 50,
            ..limits
        };
        let e = probe(&stored, &narrow).unwrap_err();
        assert!(e.to_string().contains("60x40"), "{e}");
        let mut png = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(landscape())
            .write_to(&mut png, ImageFormat::Png)
            .unwrap();
        let png = png.into_inner();
        assert!(decode(&png, &limits).is_ok());
        assert!(matches!(
            decode(&png[..png.len() / 2], &limits),
            Err(PhotoError::Damaged(_))
        ));
        let mut gif = b"GIF89a".to_vec();
        gif.extend_from_slice(&[1, 0, 1, 0, 0, 0, 0]);
        assert!(matches!(
            probe(&gif, &limits),
            Err(PhotoError::Unsupported(_) | PhotoError::Damaged(_))
        ));
    }
}
