//! Box labels that come with uploaded shelf photos, read back: YOLO label
//! files (class names from a `data.yaml` or a `classes.txt`) and COCO
//! instance files, the formats our exports write and most labelling tools
//! produce. Every label file is paired with an image of the upload and every
//! box checked against that image: a file that names no uploaded image, a box
//! outside its image (beyond YOLO's own 1% tolerance) or one of no size is an
//! error naming the file and the line, never a box quietly dropped.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::geometry::BoxPx;

/// A box read from a label file, in the image's pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub bbox: BoxPx,
    /// The class's name (or its number when the upload names no classes).
    pub class: Option<String>,
}

/// What is wrong with a label file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct LabelError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

fn error(file: &str, line: Option<usize>, message: impl Into<String>) -> LabelError {
    LabelError {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

/// YOLO's tolerance for coordinates just outside the image (Ultralytics
/// accepts -0.01 to 1.01 and clips).
const TOLERANCE: f64 = 0.01;

/// What an upload's file is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Image,
    /// YOLO labels of one image.
    YoloLabels,
    /// Class names: a `data.yaml` (or any YAML), `classes.txt`, `*.names`.
    Names,
    /// COCO instances.
    Coco,
    /// Anything else (a manifest, a README): left alone.
    Other,
}

pub fn role(path: &str) -> FileRole {
    let name = base_name(path).to_ascii_lowercase();
    let extension = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match extension {
        "jpg" | "jpeg" | "png" | "webp" | "heic" | "heif" => FileRole::Image,
        "yaml" | "yml" | "names" => FileRole::Names,
        "txt" if name == "classes.txt" => FileRole::Names,
        "txt" => FileRole::YoloLabels,
        "json" => FileRole::Coco,
        _ => FileRole::Other,
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn stem(path: &str) -> &str {
    let name = base_name(path);
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

/// The label file Ultralytics looks for beside an image: the last
/// `/images/` of the path becomes `/labels/`, the extension `.txt`.
pub fn yolo_label_path(image_path: &str) -> String {
    let rooted = format!("/{image_path}");
    let swapped = match rooted.rfind("/images/") {
        Some(at) => format!("{}/labels/{}", &rooted[..at], &rooted[at + 8..]),
        None => rooted,
    };
    let without = match swapped.rfind('.') {
        Some(dot) if dot > swapped.rfind('/').unwrap_or(0) => &swapped[..dot],
        _ => &swapped,
    };
    format!("{}.txt", &without[1..])
}

/// Class names from a YOLO `data.yaml`: `names: [a, b]`, `names:` followed by
/// `  0: a` lines, or by `  - a` lines. Other keys are ignored.
pub fn yaml_names(text: &str) -> Result<Vec<String>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = lines
        .iter()
        .position(|l| l.trim_start() == *l && l.starts_with("names:"))
    else {
        return Err("it has no `names:` key".into());
    };
    let inline = lines[at]["names:".len()..].trim();
    let inline = strip_comment(inline);
    if !inline.is_empty() {
        let list = inline
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .ok_or_else(|| format!("`names: {inline}` is not a list"))?;
        return Ok(split_flow(list).into_iter().map(|n| unquote(&n)).collect());
    }
    let mut indexed: BTreeMap<usize, String> = BTreeMap::new();
    let mut listed = Vec::new();
    for line in &lines[at + 1..] {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim_start() == *line {
            break;
        }
        let item = strip_comment(line.trim());
        if let Some(name) = item.strip_prefix("- ") {
            listed.push(unquote(name.trim()));
        } else if let Some((index, name)) = item.split_once(':') {
            let index: usize = index
                .trim()
                .parse()
                .map_err(|_| format!("`{item}` is not `number: name`"))?;
            indexed.insert(index, unquote(name.trim()));
        } else {
            return Err(format!("`{item}` is not a class name"));
        }
    }
    if !listed.is_empty() {
        return Ok(listed);
    }
    let names: Vec<String> = indexed.values().cloned().collect();
    if indexed.keys().copied().ne(0..names.len()) {
        return Err("the class numbers under `names:` are not 0, 1, 2, …".into());
    }
    Ok(names)
}

fn strip_comment(text: &str) -> &str {
    // A `#` after a space starts a comment (outside quotes, which names
    // rarely need).
    match text.find(" #") {
        Some(at) if !text[..at].contains(['"', '\'']) => text[..at].trim_end(),
        _ => text,
    }
}

fn split_flow(list: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in list.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, ',') => items.push(std::mem::take(&mut current).trim().to_owned()),
            _ => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        items.push(current.trim().to_owned());
    }
    items
}

fn unquote(text: &str) -> String {
    let text = text.trim();
    if text.len() >= 2
        && ((text.starts_with('"') && text.ends_with('"'))
            || (text.starts_with('\'') && text.ends_with('\'')))
    {
        if text.starts_with('"')
            && let Ok(s) = serde_json::from_str::<String>(text)
        {
            return s;
        }
        return text[1..text.len() - 1].to_owned();
    }
    text.to_owned()
}

/// Class names from a `classes.txt` or `*.names` file: one per line.
pub fn line_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A box in pixels from its edges in fractions of the image, clipped to it;
/// `Err` with why it cannot be a box.
fn box_from_edges(
    [x0, y0, x1, y1]: [f64; 4],
    width: u32,
    height: u32,
    tolerance: f64,
) -> Result<BoxPx, String> {
    let outside = |v: f64| !(-tolerance..=1.0 + tolerance).contains(&v);
    if [x0, y0, x1, y1].into_iter().any(outside) {
        return Err(format!(
            "the box ({x0:.3}, {y0:.3}) to ({x1:.3}, {y1:.3}) lies outside the image"
        ));
    }
    let (w, h) = (f64::from(width), f64::from(height));
    let px = |v: f64, size: f64| (v.clamp(0.0, 1.0) * size).round() as u32;
    let (left, right) = (px(x0, w), px(x1, w));
    let (top, bottom) = (px(y0, h), px(y1, h));
    if right <= left || bottom <= top {
        return Err("the box has no size".into());
    }
    Ok(BoxPx {
        x: left,
        y: top,
        w: right - left,
        h: bottom - top,
    })
}

/// The boxes of one YOLO label file (`class cx cy w h`, or `class x1 y1 … xn
/// yn` for a segment, whose box is the outline's extent) for an image of
/// `width` x `height`.
pub fn yolo_boxes(
    file: &str,
    text: &str,
    width: u32,
    height: u32,
    names: &[String],
) -> Result<Vec<Labelled>, LabelError> {
    let mut boxes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = Some(i + 1);
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.is_empty() {
            continue;
        }
        let class: usize = tokens[0]
            .parse()
            .map_err(|_| error(file, at, format!("{:?} is not a class number", tokens[0])))?;
        let numbers = tokens[1..]
            .iter()
            .map(|t| t.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| error(file, at, "a coordinate is not a number"))?;
        let edges = match numbers.len() {
            4 => {
                let [cx, cy, w, h] = [numbers[0], numbers[1], numbers[2], numbers[3]];
                [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
            }
            n if n >= 6 && n % 2 == 0 => {
                let xs = numbers.iter().step_by(2);
                let ys = numbers.iter().skip(1).step_by(2);
                let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                [x0, y0, x1, y1]
            }
            n => {
                return Err(error(
                    file,
                    at,
                    format!(
                        "{} values; a YOLO label is `class cx cy w h` (5) or a class and at \
                         least 3 points",
                        n + 1
                    ),
                ));
            }
        };
        let bbox = box_from_edges(edges, width, height, TOLERANCE)
            .map_err(|message| error(file, at, message))?;
        let class = if names.is_empty() {
            class.to_string()
        } else {
            names.get(class).cloned().ok_or_else(|| {
                error(
                    file,
                    at,
                    format!(
                        "class {class}, but the class names list only {}",
                        names.len()
                    ),
                )
            })?
        };
        boxes.push(Labelled {
            bbox,
            class: Some(class),
        });
    }
    Ok(boxes)
}

/// One image of a COCO file, with its boxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CocoImage {
    pub file_name: String,
    pub width: u32,
    pub height: u32,
    pub boxes: Vec<Labelled>,
}

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImageRecord>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    #[serde(default)]
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImageRecord {
    id: i64,
    file_name: String,
    width: u32,
    height: u32,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: i64,
    category_id: Option<i64>,
    bbox: [f64; 4],
}

#[derive(Deserialize)]
struct CocoCategory {
    id: i64,
    name: String,
}

/// The images of a COCO instances file with their boxes (`bbox` is
/// `[x, y, w, h]` in pixels of the size the file gives each image).
pub fn coco_images(file: &str, text: &str) -> Result<Vec<CocoImage>, LabelError> {
    let parsed: CocoFile = serde_json::from_str(text)
        .map_err(|e| error(file, None, format!("not a COCO instances file: {e}")))?;
    let categories: BTreeMap<i64, String> = parsed
        .categories
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let mut index = BTreeMap::new();
    let mut images: Vec<CocoImage> = Vec::with_capacity(parsed.images.len());
    for record in parsed.images {
        if record.width == 0 || record.height == 0 {
            return Err(error(
                file,
                None,
                format!("image {} has no size", record.file_name),
            ));
        }
        index.insert(record.id, images.len());
        images.push(CocoImage {
            file_name: record.file_name,
            width: record.width,
            height: record.height,
            boxes: Vec::new(),
        });
    }
    for (n, annotation) in parsed.annotations.into_iter().enumerate() {
        let which = format!("annotation {}", n + 1);
        let &at = index.get(&annotation.image_id).ok_or_else(|| {
            error(
                file,
                None,
                format!(
                    "{which} is of image id {}, which the file does not list",
                    annotation.image_id
                ),
            )
        })?;
        let class = match annotation.category_id {
            Some(id) => Some(categories.get(&id).cloned().ok_or_else(|| {
                error(
                    file,
                    None,
                    format!("{which} is of category {id}, which the file does not list"),
                )
            })?),
            None => None,
        };
        let image = &mut images[at];
        let [x, y, w, h] = annotation.bbox;
        if !(x.is_finite() && y.is_finite() && w.is_finite() && h.is_finite())
            || w <= 0.0
            || h <= 0.0
        {
            return Err(error(
                file,
                None,
                format!("{which} (on {}) has no size", image.file_name),
            ));
        }
        let (iw, ih) = (f64::from(image.width), f64::from(image.height));
        let bbox = box_from_edges(
            [x / iw, y / ih, (x + w) / iw, (y + h) / ih],
            image.width,
            image.height,
            TOLERANCE,
        )
        .map_err(|message| {
            error(
                file,
                None,
                format!("{which} (on {}): {message}", image.file_name),
            )
        })?;
        image.boxes.push(Labelled { bbox, class });
    }
    Ok(images)
}

/// An uploaded image's path and size (upright).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub path: String,
    pub width: u32,
    pub height: u32,
}

/// A label file of the upload: its path and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelEntry {
    pub path: String,
    pub text: String,
}

/// Pairs an upload's label files with its images and reads every box: the
/// boxes of each image, by its index in `images`. Every problem is reported,
/// not only the first.
pub fn read_upload(
    images: &[ImageEntry],
    labels: &[LabelEntry],
) -> Result<BTreeMap<usize, Vec<Labelled>>, Vec<LabelError>> {
    let mut errors = Vec::new();
    let mut boxes: BTreeMap<usize, Vec<Labelled>> = BTreeMap::new();
    let names = class_names(labels, &mut errors);
    let by_path: BTreeMap<&str, usize> = images
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    let by_label_path: BTreeMap<String, usize> = images
        .iter()
        .enumerate()
        .map(|(i, e)| (yolo_label_path(&e.path), i))
        .collect();
    let mut by_stem: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in images.iter().enumerate() {
        by_stem.entry(stem(&e.path)).or_default().push(i);
        by_name.entry(base_name(&e.path)).or_default().push(i);
    }
    let unique = |found: Option<&Vec<usize>>| match found.map(Vec::as_slice) {
        Some([one]) => Some(*one),
        _ => None,
    };
    for label in labels {
        match role(&label.path) {
            FileRole::YoloLabels => {
                let Some(at) = by_label_path
                    .get(&label.path)
                    .copied()
                    .or_else(|| unique(by_stem.get(stem(&label.path))))
                else {
                    errors.push(error(
                        &label.path,
                        None,
                        "names an image that is not in the upload (no image has this file's name)",
                    ));
                    continue;
                };
                let image = &images[at];
                match yolo_boxes(&label.path, &label.text, image.width, image.height, &names) {
                    Ok(found) => boxes.entry(at).or_default().extend(found),
                    Err(e) => errors.push(e),
                }
            }
            FileRole::Coco => match coco_images(&label.path, &label.text) {
                Ok(coco) => {
                    let mut missing = Vec::new();
                    for record in coco {
                        let found = by_path
                            .get(record.file_name.as_str())
                            .copied()
                            .or_else(|| unique(by_name.get(base_name(&record.file_name))));
                        let Some(at) = found else {
                            missing.push(record.file_name);
                            continue;
                        };
                        let image = &images[at];
                        if (record.width, record.height) != (image.width, image.height) {
                            errors.push(error(
                                &label.path,
                                None,
                                format!(
                                    "it gives {} as {}x{}, but the photo is {}x{} upright",
                                    record.file_name,
                                    record.width,
                                    record.height,
                                    image.width,
                                    image.height
                                ),
                            ));
                            continue;
                        }
                        boxes.entry(at).or_default().extend(record.boxes);
                    }
                    if !missing.is_empty() {
                        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
                        errors.push(error(
                            &label.path,
                            None,
                            format!(
                                "names {} image{} that {} not in the upload: {}{}",
                                missing.len(),
                                if missing.len() == 1 { "" } else { "s" },
                                if missing.len() == 1 { "is" } else { "are" },
                                shown.join(", "),
                                if missing.len() > shown.len() {
                                    ", …"
                                } else {
                                    ""
                                }
                            ),
                        ));
                    }
                }
                Err(e) => errors.push(e),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(boxes)
    } else {
        Err(errors)
    }
}

/// The class names the upload gives: its YAML files' `names` (all the same),
/// else its `classes.txt` / `*.names`.
fn class_names(labels: &[LabelEntry], errors: &mut Vec<LabelError>) -> Vec<String> {
    let mut from_yaml: Option<(String, Vec<String>)> = None;
    let mut from_lines: Option<Vec<String>> = None;
    for label in labels.iter().filter(|l| role(&l.path) == FileRole::Names) {
        let lower = label.path.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            match yaml_names(&label.text) {
                Ok(names) => match &from_yaml {
                    Some((first, earlier)) if *earlier != names => errors.push(error(
                        &label.path,
                        None,
                        format!("its class names differ from those of {first}"),
                    )),
                    Some(_) => {}
                    None => from_yaml = Some((label.path.clone(), names)),
                },
                Err(message) => errors.push(error(&label.path, None, message)),
            }
        } else {
            from_lines.get_or_insert_with(|| line_names(&label.text));
        }
    }
    from_yaml.map(|(_, n)| n).or(from_lines).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(path: &str, width: u32, height: u32) -> ImageEntry {
        ImageEntry {
            path: path.into(),
            width,
            height,
        }
    }

    fn label(path: &str, text: &str) -> LabelEntry {
        LabelEntry {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn label_paths_follow_ultralytics_rule() {
        assert_eq!(
            yolo_label_path("images/train/0000001.png"),
            "labels/train/0000001.txt"
        );
        assert_eq!(yolo_label_path("set/images/a.b.jpg"), "set/labels/a.b.txt");
        assert_eq!(yolo_label_path("shelf.jpg"), "shelf.txt");
    }

    #[test]
    fn yaml_names_come_in_three_spellings() {
        let ours = "# Paths are relative.\ntrain: images/train\nnc: 2\nnames:\n  0: \"8690000000001\"\n  1: \"a b\"\n";
        assert_eq!(yaml_names(ours).unwrap(), ["8690000000001", "a b"]);
        assert_eq!(
            yaml_names("names: [cola, 'diet cola', \"x,y\"]\n").unwrap(),
            ["cola", "diet cola", "x,y"]
        );
        assert_eq!(
            yaml_names("nc: 2\nnames:\n  - cola # the red one\n  - water\nval: v\n").unwrap(),
            ["cola", "water"]
        );
        assert!(yaml_names("nc: 2\n").is_err());
        assert!(yaml_names("names:\n  0: a\n  2: b\n").is_err());
    }

    #[test]
    fn yolo_boxes_become_pixels_and_segments_their_extent() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let boxes = yolo_boxes(
            "x.txt",
            "0 0.5 0.5 0.5 0.25\n\n1 0.1 0.1 0.3 0.1 0.2 0.4\n",
            200,
            100,
            &names,
        )
        .unwrap();
        assert_eq!(
            boxes,
            [
                Labelled {
                    bbox: BoxPx {
                        x: 50,
                        y: 38,
                        w: 100,
                        h: 25
                    },
                    class: Some("a".into())
                },
                Labelled {
                    bbox: BoxPx {
                        x: 20,
                        y: 10,
                        w: 40,
                        h: 30
                    },
                    class: Some("b".into())
                }
            ]
        );
        // Just outside is clipped, as Ultralytics does.
        let clipped = yolo_boxes("x.txt", "0 0.1 0.5 0.205 0.2", 100, 100, &[]).unwrap();
        assert_eq!(clipped[0].bbox.x, 0);
        assert_eq!(clipped[0].class.as_deref(), Some("0"));
    }

    #[test]
    fn bad_yolo_lines_are_refused_with_their_line_numbers() {
        let names = vec!["a".to_owned()];
        let cases = [
            (
                "0 0.5 0.5 0.2 0.2\n0 1.4 0.5 0.2 0.2",
                2,
                "outside the image",
            ),
            ("0 0.5 0.5 0 0.2", 1, "no size"),
            ("3 0.5 0.5 0.2 0.2", 1, "only 1"),
            ("0 0.5 0.5 0.2", 1, "4 values"),
            ("x 0.5 0.5 0.2 0.2", 1, "class number"),
            ("0 0.5 nan 0.2 0.2", 1, "not a number"),
        ];
        for (text, line, says) in cases {
            let e = yolo_boxes("l.txt", text, 100, 100, &names).unwrap_err();
            assert_eq!(e.line, Some(line), "{text}");
            assert!(e.to_string().contains(says), "{text}: {e}");
            assert!(
                e.to_string().starts_with(&format!("l.txt, line {line}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn coco_boxes_are_read_and_checked() {
        let coco = r#"{"images": [{"id": 1, "file_name": "val/a.jpg", "width": 100, "height": 50}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 20.4, 30]}],
            "categories": [{"id": 7, "name": "8690000000001"}]}"#;
        let images = coco_images("c.json", coco).unwrap();
        assert_eq!(
            images[0].boxes[0].bbox,
            BoxPx {
                x: 10,
                y: 5,
                w: 20,
                h: 30
            }
        );
        assert_eq!(images[0].boxes[0].class.as_deref(), Some("8690000000001"));
        let outside = coco.replace("[10, 5, 20.4, 30]", "[90, 5, 20, 30]");
        assert!(
            coco_images("c.json", &outside)
                .unwrap_err()
                .message
                .contains("outside")
        );
        let unknown = coco.replace("\"image_id\": 1", "\"image_id\": 2");
        assert!(
            coco_images("c.json", &unknown)
                .unwrap_err()
                .message
                .contains("image id 2")
        );
        assert!(
            coco_images("c.json", "[]")
                .unwrap_err()
                .message
                .contains("not a COCO")
        );
    }

    #[test]
    fn an_upload_pairs_labels_with_images_by_path_then_by_name() {
        let images = [
            image("images/train/0001.png", 100, 100),
            image("images/val/0002.png", 100, 100),
            image("shelf.jpg", 200, 100),
        ];
        let labels = [
            label("data.yaml", "names:\n  0: cola\n"),
            label("labels/train/0001.txt", "0 0.5 0.5 0.2 0.2"),
            label("elsewhere/0002.txt", "0 0.5 0.5 0.4 0.4\n0 0.2 0.2 0.1 0.1"),
            label(
                "coco.json",
                r#"{"images": [{"id": 3, "file_name": "photos/shelf.jpg", "width": 200, "height": 100}],
                    "annotations": [{"image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10]}],
                    "categories": [{"id": 1, "name": "water"}]}"#,
            ),
            label("MANIFEST.md", "# not labels"),
        ];
        let boxes = read_upload(&images, &labels).unwrap();
        assert_eq!(boxes[&0].len(), 1);
        assert_eq!(boxes[&1].len(), 2);
        assert_eq!(boxes[&2][0].class.as_deref(), Some("water"));
        assert_eq!(boxes[&0][0].class.as_deref(), Some("cola"));
    }

    #[test]
    fn labels_of_images_not_uploaded_are_all_reported() {
        let images = [image("a.jpg", 100, 100)];
        let labels = [
            label("b.txt", "0 0.5 0.5 0.2 0.2"),
            label("a.txt", "0 0.5 0.5 0.2 0.2\n0 2 2 0.1 0.1"),
            label(
                "c.json",
                r#"{"images": [{"id": 1, "file_name": "z.jpg", "width": 9, "height": 9},
                               {"id": 2, "file_name": "a.jpg", "width": 90, "height": 100}]}"#,
            ),
        ];
        let errors = read_upload(&images, &labels).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{text:?}");
        assert!(text[0].starts_with("b.txt: names an image that is not in the upload"));
        assert!(text[1].starts_with("a.txt, line 2:"));
        assert!(
            text[2].contains("a.jpg as 90x100, but the photo is 100x100"),
            "{}",
            text[2]
        );
        assert!(
            text[3].contains("1 image that is not in the upload: z.jpg"),
            "{}",
            text[3]
        );
    }
}
