//! Every family of object-storage keys, built in one place. Keys are
//! deterministic where a retry must replace rather than add (a job's frames
//! and masks), and named by the server where a client hands us bytes (uploads),
//! so that no client ever chooses where anything is written.
//!
//! | family  | key                                          |
//! |---------|----------------------------------------------|
//! | frames  | `frames/{barcode}/{job_id}/{index:04}.png`   |
//! | masks   | `masks/{barcode}/{job_id}/{index:04}.png`    |
//! | uploads | `uploads/{upload_id}/{cleaned file name}`    |
//! | dataset images | `datasets/{dataset}/v{n}/images/{ordinal:07}.png` |
//! | dataset exports | `datasets/{dataset}/v{n}/exports/{export}.{format}.zip` |
//! | backgrounds | `backgrounds/{id}.{png,jpg}` (a fresh id per upload) |
//! | shelf photos | `shelves/{id}/original.{ext}`, `shelves/{id}/photo.jpg` (a fresh id per photo) |
//! | shelf crops | `shelves/{id}/crops/{x}-{y}-{w}-{h}.jpg` (the same box, the same key) |
//! | merchant images | `merchants/{merchant}/images/{line}.jpg` |
//! | merchant lists | `merchants/{merchant}/uploads/{id}.csv` (a fresh id per upload) |

use buybuddy_domain::Barcode;
use uuid::Uuid;

/// The keys of one video job's frames and masks: the same on every attempt.
#[derive(Debug, Clone)]
pub struct JobMedia {
    barcode: Barcode,
    job: Uuid,
}

impl JobMedia {
    pub fn new(barcode: &Barcode, job: Uuid) -> Self {
        Self {
            barcode: barcode.clone(),
            job,
        }
    }

    pub fn frames_prefix(&self) -> String {
        format!("frames/{}/{}/", self.barcode, self.job)
    }

    pub fn masks_prefix(&self) -> String {
        format!("masks/{}/{}/", self.barcode, self.job)
    }

    /// Both prefixes: what a failed attempt removes.
    pub fn prefixes(&self) -> [String; 2] {
        [self.frames_prefix(), self.masks_prefix()]
    }

    pub fn frame(&self, index: usize) -> String {
        format!("{}{index:04}.png", self.frames_prefix())
    }

    pub fn mask(&self, index: usize) -> String {
        format!("{}{index:04}.png", self.masks_prefix())
    }
}

/// The folder of one dataset version: everything it renders lives under it,
/// so that reprocessing a product never changes a version.
pub fn dataset_version(dataset: i32, number: i32) -> String {
    format!("datasets/{dataset}/v{number}/")
}

/// A version's image: the same on every attempt of the render job.
pub fn dataset_image(version_prefix: &str, ordinal: i32) -> String {
    format!("{version_prefix}images/{ordinal:07}.png")
}

/// An export's archive.
pub fn dataset_export(version_prefix: &str, export: i32, format: &str) -> String {
    format!("{version_prefix}exports/{export}.{format}.zip")
}

/// A training run's checkpoint after `step` steps.
pub fn training_checkpoint(run: i32, step: usize) -> String {
    format!("training/{run}/checkpoints/{step:08}.safetensors")
}

/// The folder of the model a training run registered: a Hugging Face
/// DINOv2 folder (`config.json`, `model.safetensors`).
pub fn trained_model(run: i32) -> String {
    format!("models/train-{run}/")
}

/// A new key for an uploaded background image.
pub fn background(extension: &str) -> String {
    format!("backgrounds/{}.{extension}", Uuid::now_v7())
}

/// The folder of a newly uploaded shelf photo (a fresh id): everything of the
/// photo lives under it.
pub fn shelf_folder() -> String {
    format!("shelves/{}/", Uuid::now_v7())
}

/// A shelf photo as uploaded.
pub fn shelf_original(folder: &str, extension: &str) -> String {
    format!("{folder}original.{extension}")
}

/// A shelf photo upright, as the browser shows it.
pub fn shelf_photo(folder: &str) -> String {
    format!("{folder}photo.jpg")
}

/// The folder of the photo a key of it lies in.
pub fn shelf_folder_of(key: &str) -> &str {
    key.rfind('/').map_or("", |at| &key[..=at])
}

/// The crop of a box: named by the box, so the same box writes the same key.
pub fn shelf_crop(folder: &str, x: i32, y: i32, w: i32, h: i32) -> String {
    format!("{folder}crops/{x}-{y}-{w}-{h}.jpg")
}

/// A merchant line's image, as fetched from its link (re-encoded as JPEG).
pub fn merchant_image(merchant: i32, line: i64) -> String {
    format!("merchants/{merchant}/images/{line}.jpg")
}

/// A merchant's list uploaded on the page, kept between the upload and the
/// mapping step (a fresh id per upload).
pub fn merchant_upload(merchant: i32) -> String {
    format!("merchants/{merchant}/uploads/{}.csv", Uuid::now_v7())
}

/// A new key for an uploaded file: a fresh id, and the client's file name
/// reduced to safe characters (kept only so people recognise the object).
pub fn upload(file_name: &str) -> String {
    format!("uploads/{}/{}", Uuid::now_v7(), safe_name(file_name))
}

fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        "video".into()
    } else {
        cleaned.chars().take(100).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_media_keys_are_deterministic_per_job() {
        let keys = JobMedia::new(&Barcode::parse("8690000000001").unwrap(), Uuid::nil());
        assert_eq!(
            keys.frame(7),
            "frames/8690000000001/00000000-0000-0000-0000-000000000000/0007.png"
        );
        assert_eq!(
            keys.mask(7),
            "masks/8690000000001/00000000-0000-0000-0000-000000000000/0007.png"
        );
    }

    #[test]
    fn shelf_keys_live_in_their_photo_folder() {
        let folder = shelf_folder();
        assert!(folder.starts_with("shelves/") && folder.ends_with('/'));
        assert_ne!(folder, shelf_folder());
        let photo = shelf_photo(&folder);
        assert_eq!(shelf_folder_of(&photo), folder);
        assert_eq!(shelf_folder_of(&shelf_original(&folder, "heic")), folder);
        assert_eq!(
            shelf_crop(&folder, 1, 2, 30, 40),
            format!("{folder}crops/1-2-30-40.jpg")
        );
    }

    #[test]
    fn upload_keys_are_named_by_the_server_whatever_the_client_sends() {
        let key = upload("../../etc/passwd");
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 3, "{key}");
        assert_eq!(parts[0], "uploads");
        assert!(Uuid::parse_str(parts[1]).is_ok(), "{key}");
        assert_eq!(parts[2], "_.._etc_passwd");
        assert!(upload("...").ends_with("/video"));
        assert!(upload("my clip (1).mp4").ends_with("/my_clip__1_.mp4"));
        assert_ne!(upload("a.mp4"), upload("a.mp4"));
    }
}
