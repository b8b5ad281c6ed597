//! Boxes drawn on a shelf photo (in the browser, or given through the API and
//! the CLI), moved, and deleted. Each box's crop is cut from the stored photo
//! when the box is made or moved.

use anyhow::anyhow;
use buybuddy_worker::media::photo;
use serde::Deserialize;

use super::{MAX_BOXES, MIN_BOX_SIDE, PHOTO_LIMITS, crop_jpeg, join_blocking};
use crate::{
    actions::{ActionError, Ctx},
    db::{
        self,
        shelves::{NewBox, ShelfBox, ShelfImage},
    },
    keys,
};

/// A box as given: pixels of the upright photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct BoxInput {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
}

/// Why a box cannot be on a photo, if it cannot.
fn check(b: &BoxInput, image: &ShelfImage) -> Result<(), String> {
    let (w, h) = (i64::from(image.width), i64::from(image.height));
    if b.width <= 0 || b.height <= 0 {
        return Err(format!(
            "The box has no size ({}x{}); draw it larger.",
            b.width, b.height
        ));
    }
    if b.width < i64::from(MIN_BOX_SIDE) || b.height < i64::from(MIN_BOX_SIDE) {
        return Err(format!(
            "The box is {}x{} pixels; a box is at least {MIN_BOX_SIDE} pixels a side.",
            b.width, b.height
        ));
    }
    if b.x < 0 || b.y < 0 || b.x + b.width > w || b.y + b.height > h {
        return Err(format!(
            "The box ({}, {}) to ({}, {}) runs outside the photo, which is {w}x{h}.",
            b.x,
            b.y,
            b.x + b.width,
            b.y + b.height
        ));
    }
    Ok(())
}

async fn photo_of(ctx: Ctx<'_>, image_id: i32) -> Result<ShelfImage, ActionError> {
    db::shelves::image(ctx.pool, image_id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no shelf photo #{image_id}.")))
}

/// Cuts and stores the crops of boxes of a photo; returns the boxes to insert.
async fn cut(
    ctx: Ctx<'_>,
    image: &ShelfImage,
    boxes: &[BoxInput],
    source: &'static str,
    label: Option<&str>,
) -> Result<Vec<NewBox>, ActionError> {
    let bytes = ctx
        .storage
        .get(&image.storage_key)
        .await
        .map_err(|e| ActionError::Internal(anyhow!(e).context("reading the shelf photo")))?;
    let folder = keys::shelf_folder_of(&image.storage_key).to_owned();
    let new_boxes: Vec<NewBox> = boxes
        .iter()
        .map(|b| NewBox {
            x: b.x as i32,
            y: b.y as i32,
            width: b.width as i32,
            height: b.height as i32,
            source,
            label: label.map(str::to_owned),
            crop_key: keys::shelf_crop(
                &folder,
                b.x as i32,
                b.y as i32,
                b.width as i32,
                b.height as i32,
            ),
        })
        .collect();
    let to_cut = new_boxes.clone();
    let crops = tokio::task::spawn_blocking(move || {
        let photo = photo::decode(&bytes, &PHOTO_LIMITS)?;
        Ok::<_, photo::PhotoError>(
            to_cut
                .iter()
                .map(|b| crop_jpeg(&photo, b))
                .collect::<Vec<_>>(),
        )
    })
    .await
    .map_err(join_blocking)?
    .map_err(|e| ActionError::Internal(anyhow!("the stored shelf photo: {e}")))?;
    for (b, crop) in new_boxes.iter().zip(crops) {
        ctx.storage
            .put(&b.crop_key, crop, "image/jpeg")
            .await
            .map_err(|e| ActionError::Internal(anyhow!(e).context("storing a crop")))?;
    }
    Ok(new_boxes)
}

/// Adds boxes to a photo, all or none; `source` is `drawn` or `proposed`.
pub async fn add_boxes(
    ctx: Ctx<'_>,
    image_id: i32,
    boxes: &[BoxInput],
    source: &'static str,
    label: Option<&str>,
) -> Result<Vec<ShelfBox>, ActionError> {
    let image = photo_of(ctx, image_id).await?;
    if boxes.is_empty() {
        return Err(ActionError::field("box", "Give at least one box."));
    }
    let problems: Vec<String> = boxes
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            check(b, &image).err().map(|e| {
                if boxes.len() == 1 {
                    e
                } else {
                    format!("Box {}: {e}", i + 1)
                }
            })
        })
        .collect();
    if !problems.is_empty() {
        return Err(ActionError::field("box", problems.join(" ")));
    }
    let existing = db::shelves::boxes_of(ctx.pool, image_id).await?.len();
    if existing + boxes.len() > MAX_BOXES {
        return Err(ActionError::field(
            "box",
            format!("A photo holds at most {MAX_BOXES} boxes; this one has {existing}."),
        ));
    }
    let new_boxes = cut(ctx, &image, boxes, source, label).await?;
    let mut tx = ctx.pool.begin().await?;
    let ids = db::shelves::insert_boxes(&mut tx, image_id, &new_boxes).await?;
    tx.commit().await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(b) = db::shelves::get_box(ctx.pool, id).await? {
            out.push(b);
        }
    }
    Ok(out)
}

async fn box_of(ctx: Ctx<'_>, id: i64) -> Result<ShelfBox, ActionError> {
    db::shelves::get_box(ctx.pool, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no box #{id}.")))
}

/// Moves or resizes a box; its crop is cut again and it is matched again.
pub async fn move_box(ctx: Ctx<'_>, id: i64, to: &BoxInput) -> Result<ShelfBox, ActionError> {
    let current = box_of(ctx, id).await?;
    let image = photo_of(ctx, current.image_id).await?;
    check(to, &image).map_err(|e| ActionError::field("box", e))?;
    let cut_boxes = cut(
        ctx,
        &image,
        std::slice::from_ref(to),
        "drawn",
        current.label.as_deref(),
    )
    .await?;
    if !db::shelves::move_box(ctx.pool, id, &cut_boxes[0]).await? {
        return Err(ActionError::NotFound(format!("There is no box #{id}.")));
    }
    box_of(ctx, id).await
}

/// Deletes a box (its crop stays for dataset versions made with it).
pub async fn delete_box(ctx: Ctx<'_>, id: i64) -> Result<ShelfBox, ActionError> {
    let current = box_of(ctx, id).await?;
    db::shelves::delete_box(ctx.pool, id).await?;
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(width: i32, height: i32) -> ShelfImage {
        ShelfImage {
            id: 1,
            file_name: "shelf.jpg".into(),
            original_key: String::new(),
            storage_key: String::new(),
            sha256: String::new(),
            width,
            height,
            store: None,
            aisle: None,
            taken_on: None,
            notes: None,
            created_at: chrono::Utc::now(),
        }
    }

    fn b(x: i64, y: i64, width: i64, height: i64) -> BoxInput {
        BoxInput {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn a_box_must_have_a_size_and_lie_inside_its_photo() {
        let image = photo(400, 300);
        assert!(check(&b(0, 0, 400, 300), &image).is_ok());
        assert!(
            check(&b(10, 10, 0, 20), &image)
                .unwrap_err()
                .contains("no size")
        );
        assert!(
            check(&b(10, 10, 3, 20), &image)
                .unwrap_err()
                .contains("at least 4")
        );
        let outside = check(&b(380, 10, 40, 20), &image).unwrap_err();
        assert!(
            outside.contains("runs outside the photo, which is 400x300"),
            "{outside}"
        );
        assert!(check(&b(-1, 10, 40, 20), &image).is_err());
        assert!(check(&b(10, 290, 40, 20), &image).is_err());
    }
}
