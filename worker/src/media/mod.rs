//! Media in: decoding video frames with FFmpeg, the sample videos made here,
//! and photos people upload.

pub mod decode;
pub mod photo;
pub mod synthetic;

use std::{io::Read, path::Path};

/// The MIME type of a video file, from its first bytes (the container's
/// signature), in the names the Gemini API accepts; MP4 when unknown.
pub fn video_mime_type(path: &Path) -> std::io::Result<&'static str> {
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path)?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(mime_of(&head[..read]))
}

fn mime_of(head: &[u8]) -> &'static str {
    match head {
        [_, _, _, _, b'f', b't', b'y', b'p', b'q', b't', ..] => "video/mov",
        [_, _, _, _, b'f', b't', b'y', b'p', b'3', b'g', ..] => "video/3gpp",
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => "video/mp4",
        [0x1a, 0x45, 0xdf, 0xa3, ..] => "video/webm",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'A', b'V', b'I', ..] => "video/avi",
        [0x00, 0x00, 0x01, 0xba, ..] => "video/mpeg",
        [b'F', b'L', b'V', ..] => "video/x-flv",
        [0x30, 0x26, 0xb2, 0x75, ..] => "video/wmv",
        _ => "video/mp4",
    }
}

#[cfg(test)]
mod tests {
    use super::mime_of;

    #[test]
    fn containers_are_told_by_their_signature() {
        assert_eq!(mime_of(b"\0\0\0\x20ftypisom\0\0\x02\0"), "video/mp4");
        assert_eq!(mime_of(b"\0\0\0\x14ftypqt  \0\0\x02\0"), "video/mov");
        assert_eq!(mime_of(&[0x1a, 0x45, 0xdf, 0xa3, 0x9f]), "video/webm");
        assert_eq!(mime_of(b"RIFF\0\0\0\0AVI LIST"), "video/avi");
        assert_eq!(mime_of(b""), "video/mp4");
    }
}
