//! Writes a dataset version as one ZIP in the layout its consumers read
//! without a fix-up step:
//!
//! - **COCO**: `images/{split}/{name}.png` and `annotations/instances_{split}.json`
//!   (images with sizes; annotations with `bbox`, `area`, `iscrowd` 0 and
//!   `segmentation` polygons; categories with names), one JSON per split;
//! - **YOLO**: `images/{split}/{name}.png`, `labels/{split}/{name}.txt`
//!   (`class cx cy w h`, or `class x1 y1 …` polygons for segmentation, all
//!   normalised) and `data.yaml` with the split folders and `names`;
//! - **folder** (recognition): `{split}/{class}/{name}.png`.
//!
//! Each archive starts with `MANIFEST.md`, the version's own account of itself.
//! Images go in as the caller renders them; entries are written in the order
//! given, so the same items give the same bytes.

use std::{
    collections::{BTreeMap, btree_map::Entry},
    fs::File,
    io::{BufWriter, Read, Seek, SeekFrom, Write},
};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    geometry::{BoxPx, Polygon},
    split::Split,
    zip::ZipWriter,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Coco,
    Yolo,
    Folder,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Coco => "coco",
            Format::Yolo => "yolo",
            Format::Folder => "folder",
        }
    }
}

/// One labelled product in an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Index into the classes.
    pub class: usize,
    pub bbox: BoxPx,
    pub area: u64,
    pub polygons: Vec<Polygon>,
}

/// One image of the version.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'a> {
    pub split: Split,
    /// File stem, unique in the version (e.g. `000123`).
    pub name: &'a str,
    pub png: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub objects: Vec<Object>,
}

/// The writer of one archive.
pub struct Exporter<W: Write> {
    zip: ZipWriter<W>,
    format: Format,
    classes: Vec<String>,
    /// YOLO labels with polygons instead of boxes.
    segments: bool,
    /// COCO per split: image records and annotation records, spooled to
    /// temporary files so memory stays flat however large the version.
    coco: BTreeMap<Split, (Spool, Spool)>,
    next_image: u64,
    next_annotation: u64,
}

impl<W: Write> Exporter<W> {
    /// Starts an archive with its manifest.
    pub fn new(
        out: W,
        format: Format,
        classes: Vec<String>,
        segments: bool,
        manifest: &str,
    ) -> std::io::Result<Self> {
        let mut zip = ZipWriter::new(out);
        zip.add("MANIFEST.md", manifest.as_bytes())?;
        Ok(Self {
            zip,
            format,
            classes,
            segments,
            coco: BTreeMap::new(),
            next_image: 1,
            next_annotation: 1,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.zip.written()
    }

    pub fn add(&mut self, item: &Item<'_>) -> std::io::Result<()> {
        let split = item.split.as_str();
        match self.format {
            Format::Coco => {
                let file = format!("images/{split}/{}.png", item.name);
                self.zip.add(&file, item.png)?;
                let id = self.next_image;
                self.next_image += 1;
                let (images, annotations) = match self.coco.entry(item.split) {
                    Entry::Occupied(spools) => spools.into_mut(),
                    Entry::Vacant(slot) => slot.insert((Spool::new()?, Spool::new()?)),
                };
                images.push(
                    json!({"id": id, "file_name": format!("{split}/{}.png", item.name),
                           "width": item.width, "height": item.height})
                    .to_string(),
                )?;
                for object in &item.objects {
                    let b = object.bbox;
                    let segmentation: Vec<Vec<u32>> = object
                        .polygons
                        .iter()
                        .filter(|p| p.len() >= 3)
                        .map(|p| p.iter().flatten().copied().collect())
                        .collect();
                    annotations.push(
                        json!({"id": self.next_annotation, "image_id": id,
                               "category_id": object.class + 1,
                               "bbox": [b.x, b.y, b.w, b.h], "area": object.area,
                               "iscrowd": 0, "segmentation": segmentation})
                        .to_string(),
                    )?;
                    self.next_annotation += 1;
                }
            }
            Format::Yolo => {
                self.zip
                    .add(&format!("images/{split}/{}.png", item.name), item.png)?;
                let mut label = String::new();
                for object in &item.objects {
                    label.push_str(&object.class.to_string());
                    let (w, h) = (f64::from(item.width), f64::from(item.height));
                    match (self.segments, object.polygons.first()) {
                        (true, Some(polygon)) if polygon.len() >= 3 => {
                            for [x, y] in polygon {
                                label.push_str(&format!(
                                    " {:.6} {:.6}",
                                    f64::from(*x) / w,
                                    f64::from(*y) / h
                                ));
                            }
                        }
                        _ => {
                            for v in object.bbox.normalised(item.width, item.height) {
                                label.push_str(&format!(" {v:.6}"));
                            }
                        }
                    }
                    label.push('\n');
                }
                self.zip.add(
                    &format!("labels/{split}/{}.txt", item.name),
                    label.as_bytes(),
                )?;
            }
            Format::Folder => {
                let class = item
                    .objects
                    .first()
                    .and_then(|o| self.classes.get(o.class))
                    .map(|c| folder_name(c))
                    .unwrap_or_else(|| "unlabelled".into());
                self.zip
                    .add(&format!("{split}/{class}/{}.png", item.name), item.png)?;
            }
        }
        Ok(())
    }

    /// Writes the label files that cover the whole version and closes the
    /// archive; returns the output and the archive's length.
    pub fn finish(mut self, splits: &[Split]) -> std::io::Result<(W, u64)> {
        match self.format {
            Format::Coco => {
                let categories: Vec<String> = self
                    .classes
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        json!({"id": i + 1, "name": name, "supercategory": "product"}).to_string()
                    })
                    .collect();
                for split in splits {
                    let (images, annotations) = match self.coco.remove(split) {
                        Some(spools) => spools,
                        None => (Spool::new()?, Spool::new()?),
                    };
                    let head = format!(
                        "{{\"info\":{{\"description\":\"{} split\"}},\"images\":[",
                        split.as_str()
                    );
                    let middle = "],\"annotations\":[";
                    let tail = format!("],\"categories\":[{}]}}\n", categories.join(","));
                    let (mut images, images_len) = images.finish()?;
                    let (mut annotations, annotations_len) = annotations.finish()?;
                    let mut crc = crc32fast::Hasher::new();
                    crc.update(head.as_bytes());
                    hash_file(&mut crc, &mut images)?;
                    crc.update(middle.as_bytes());
                    hash_file(&mut crc, &mut annotations)?;
                    crc.update(tail.as_bytes());
                    let size = (head.len() + middle.len() + tail.len()) as u64
                        + images_len
                        + annotations_len;
                    let mut body = head
                        .as_bytes()
                        .chain(images)
                        .chain(middle.as_bytes())
                        .chain(annotations)
                        .chain(tail.as_bytes());
                    self.zip.add_reader(
                        &format!("annotations/instances_{}.json", split.as_str()),
                        crc.finalize(),
                        size,
                        &mut body,
                    )?;
                }
            }
            Format::Yolo => {
                let mut yaml =
                    // No `path`: Ultralytics then takes the split folders relative
                    // to this file's folder, wherever the archive is unpacked
                    // (`path: .` would mean the reader's working directory).
                    String::from("# Paths are relative to this file's folder.\n");
                for split in splits {
                    yaml.push_str(&format!("{0}: images/{0}\n", split.as_str()));
                }
                yaml.push_str(&format!("nc: {}\nnames:\n", self.classes.len()));
                for (i, name) in self.classes.iter().enumerate() {
                    yaml.push_str(&format!(
                        "  {i}: {}\n",
                        serde_json::to_string(name).unwrap_or_default()
                    ));
                }
                self.zip.add("data.yaml", yaml.as_bytes())?;
            }
            Format::Folder => {}
        }
        self.zip.finish()
    }
}

/// Comma-separated JSON records in a temporary file.
struct Spool {
    file: BufWriter<File>,
    count: u64,
}

impl Spool {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            file: BufWriter::new(tempfile::tempfile()?),
            count: 0,
        })
    }

    fn push(&mut self, record: String) -> std::io::Result<()> {
        if self.count > 0 {
            self.file.write_all(b",")?;
        }
        self.file.write_all(record.as_bytes())?;
        self.count += 1;
        Ok(())
    }

    /// The file, rewound, and its length.
    fn finish(self) -> std::io::Result<(File, u64)> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        let length = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok((file, length))
    }
}

/// Feeds a file to a CRC and rewinds it.
fn hash_file(crc: &mut crc32fast::Hasher, file: &mut File) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let got = file.read(&mut buffer)?;
        if got == 0 {
            break;
        }
        crc.update(&buffer[..got]);
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(())
}

/// A class name as a folder name: no separators, no leading dot.
pub fn folder_name(class: &str) -> String {
    let cleaned: String = class
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item<'a>(split: Split, name: &'a str, class: usize) -> Item<'a> {
        Item {
            split,
            name,
            png: b"not really a png",
            width: 100,
            height: 50,
            objects: vec![Object {
                class,
                bbox: BoxPx {
                    x: 10,
                    y: 5,
                    w: 20,
                    h: 10,
                },
                area: 200,
                polygons: vec![vec![[10, 5], [30, 5], [30, 15], [10, 15]]],
            }],
        }
    }

    fn export(format: Format, segments: bool) -> Vec<u8> {
        let classes = vec![
            "8690000000001 Cola".to_owned(),
            "8690000000002 Su/1L".to_owned(),
        ];
        let mut ex = Exporter::new(Vec::new(), format, classes, segments, "# v1\n").unwrap();
        ex.add(&item(Split::Train, "000001", 0)).unwrap();
        ex.add(&item(Split::Val, "000002", 1)).unwrap();
        ex.finish(&[Split::Train, Split::Val]).unwrap().0
    }

    /// The archive's entries, read back by Python's zipfile.
    fn entries(bytes: &[u8]) -> BTreeMap<String, String> {
        let path = std::env::temp_dir().join(format!(
            "export-{}-{:?}.zip",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, bytes).unwrap();
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import zipfile, sys, json\nz = zipfile.ZipFile(sys.argv[1])\nprint(json.dumps({n: z.read(n).decode('utf-8', 'replace') for n in z.namelist()}))"])
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(child.wait().unwrap().success());
        std::fs::remove_file(&path).ok();
        serde_json::from_str(&out).unwrap()
    }

    #[test]
    fn coco_has_one_file_per_split_with_boxes_areas_and_polygons() {
        let files = entries(&export(Format::Coco, false));
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "MANIFEST.md",
                "annotations/instances_train.json",
                "annotations/instances_val.json",
                "images/train/000001.png",
                "images/val/000002.png"
            ]
        );
        let val: serde_json::Value =
            serde_json::from_str(&files["annotations/instances_val.json"]).unwrap();
        assert_eq!(val["images"][0]["file_name"], "val/000002.png");
        assert_eq!(val["images"][0]["id"], 2);
        let ann = &val["annotations"][0];
        assert_eq!(ann["image_id"], 2);
        assert_eq!(ann["category_id"], 2);
        assert_eq!(ann["bbox"], json!([10, 5, 20, 10]));
        assert_eq!(ann["area"], 200);
        assert_eq!(ann["iscrowd"], 0);
        assert_eq!(ann["segmentation"], json!([[10, 5, 30, 5, 30, 15, 10, 15]]));
        assert_eq!(
            val["categories"][1],
            json!({"id": 2, "name": "8690000000002 Su/1L", "supercategory": "product"})
        );
        assert_eq!(
            export(Format::Coco, false),
            export(Format::Coco, false),
            "byte-identical"
        );
    }

    #[test]
    fn yolo_labels_are_normalised_and_data_yaml_names_the_splits_and_classes() {
        let files = entries(&export(Format::Yolo, false));
        assert_eq!(
            files["labels/train/000001.txt"],
            "0 0.200000 0.200000 0.200000 0.200000\n"
        );
        assert_eq!(
            files["data.yaml"],
            "# Paths are relative to this file's folder.\ntrain: images/train\nval: images/val\nnc: 2\nnames:\n  0: \"8690000000001 Cola\"\n  1: \"8690000000002 Su/1L\"\n"
        );
        let segments = entries(&export(Format::Yolo, true));
        assert_eq!(
            segments["labels/val/000002.txt"],
            "1 0.100000 0.100000 0.300000 0.100000 0.300000 0.300000 0.100000 0.300000\n"
        );
    }

    #[test]
    fn the_folder_layout_puts_each_image_under_its_class() {
        let files = entries(&export(Format::Folder, false));
        assert!(
            files.contains_key("train/8690000000001_Cola/000001.png"),
            "{:?}",
            files.keys()
        );
        assert!(
            files.contains_key("val/8690000000002_Su_1L/000002.png"),
            "{:?}",
            files.keys()
        );
        assert_eq!(folder_name("../x"), "_x");
    }
}
