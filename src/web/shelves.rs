//! The Shelves pages: photos and their upload, a photo with its boxes, the
//! review of crops, and the Coverage page.

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::{Multipart, Path, Query, State},
    response::{IntoResponse, Response},
};
use buybuddy_templates::{
    coverage::{self as coverage_view, CategoryRow, ConfusionRow, CoveragePage, CoverageRow},
    format, paths,
    shelves::{
        self as view, BoxRow, JobState, PhotoPage, PhotoRow, ReviewPage, ReviewView, ShelvesPage,
        SuggestionCard, UploadForm,
    },
};
use maud::Markup;
use serde::Deserialize;

use super::{
    AppError, AppState, UserId, Viewer,
    htmx::{HxRequest, go_to},
    upload::{Streamed, human_bytes, stream_to_file, text},
};
use crate::{
    actions::{
        ActionError, FieldErrors,
        shelves::{self as act, BoxInput, Decision, PlaceInput, ReviewItem, Sent},
    },
    db,
};

/// Photos per page of the list.
const PAGE: i64 = 50;

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    offset: Option<i64>,
    notice: Option<String>,
}

fn with_notice(path: &str, notice: &str) -> String {
    format!("{path}?notice={}", format::encode(notice))
}

fn place_text(image: &db::shelves::ShelfImage) -> String {
    let parts: Vec<String> = [
        image.store.clone(),
        image.aisle.clone().map(|a| format!("aisle {a}")),
        image.taken_on.map(|d| d.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    parts.join(" · ")
}

async fn list_view(
    state: &AppState,
    offset: i64,
    form: UploadForm,
    errors: FieldErrors,
    notice: Option<String>,
) -> Result<ShelvesPage, AppError> {
    let rows = db::shelves::list_images(&state.pool, PAGE, offset)
        .await?
        .into_iter()
        .map(|r| PhotoRow {
            id: r.image.id,
            place: place_text(&r.image),
            thumb_url: paths::media(&r.image.storage_key),
            file_name: r.image.file_name,
            boxes: r.boxes,
            matched: r.matched,
            confirmed: r.confirmed,
            absent: r.absent,
            created: r.image.created_at.format("%Y-%m-%d %H:%M").to_string(),
        })
        .collect();
    Ok(ShelvesPage {
        rows,
        total: db::shelves::count_images(&state.pool).await?,
        offset,
        limit: PAGE,
        form,
        errors: errors.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        notice,
        model: db::embeddings::serving(&state.pool)
            .await?
            .map(|m| m.label()),
        left_to_review: db::shelves::review_counts(&state.pool, None).await?.left,
    })
}

/// `GET /shelves`
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Result<Markup, AppError> {
    let offset = query.offset.unwrap_or(0).max(0);
    let view = list_view(
        &state,
        offset,
        UploadForm::default(),
        FieldErrors::new(),
        query.notice,
    )
    .await?;
    Ok(view::list_page(&viewer.0, &view))
}

/// An upload as the form sent it: files in temporary files (removed on drop).
pub struct UploadRequest {
    pub files: Vec<(String, tempfile::NamedTempFile)>,
    pub place: PlaceInput,
    pub errors: FieldErrors,
}

impl UploadRequest {
    pub async fn read(multipart: &mut Multipart, max_upload: u64) -> Result<Self, AppError> {
        let mut request = Self {
            files: Vec::new(),
            place: PlaceInput::default(),
            errors: FieldErrors::new(),
        };
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))?
        {
            match field.name().unwrap_or_default() {
                "files" | "file" => {
                    let name = field.file_name().unwrap_or_default().to_owned();
                    if name.is_empty() {
                        continue;
                    }
                    match stream_to_file(field, max_upload).await? {
                        Streamed::TooLarge => {
                            request.errors.insert(
                                "files",
                                format!(
                                    "{name} is larger than the limit of {}.",
                                    human_bytes(max_upload)
                                ),
                            );
                        }
                        Streamed::Empty => {
                            request.errors.insert("files", format!("{name} is empty."));
                        }
                        Streamed::Done(file) => request.files.push((name, file)),
                    }
                }
                "store" => request.place.store = text(field).await,
                "aisle" => request.place.aisle = text(field).await,
                "taken_on" => request.place.taken_on = text(field).await,
                "notes" => request.place.notes = text(field).await,
                _ => {}
            }
        }
        Ok(request)
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.files
            .iter()
            .map(|(name, file)| Sent {
                name: name.clone(),
                path: file.path().to_owned(),
            })
            .collect()
    }
}

/// `POST /shelves`: uploads photos with their labels.
pub async fn upload(
    State(state): State<AppState>,
    viewer: Viewer,
    UserId(user): UserId,
    htmx: HxRequest,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    let request = UploadRequest::read(&mut multipart, state.max_upload).await?;
    let result = if request.errors.is_empty() {
        act::upload(state.actions(), request.sent(), &request.place, Some(user)).await
    } else {
        Err(ActionError::Invalid(request.errors.clone()))
    };
    let errors = match result {
        Ok(report) => {
            let notice = format!(
                "Uploaded {} photo{} with {} boxes{}.",
                report.images.len(),
                if report.images.len() == 1 { "" } else { "s" },
                report.boxes,
                if report.ignored.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} other files left aside: {})",
                        report.ignored.len(),
                        report.ignored.join(", ")
                    )
                }
            );
            let to = match report.images.as_slice() {
                [(id, ..)] => paths::with_id(paths::SHELF, id),
                _ => paths::SHELVES.to_owned(),
            };
            return Ok(go_to(&with_notice(&to, &notice), htmx));
        }
        Err(ActionError::Invalid(errors)) => errors,
        Err(other) => return Err(other.into()),
    };
    let form = UploadForm {
        store: request.place.store.clone(),
        aisle: request.place.aisle.clone(),
        taken_on: request.place.taken_on.clone(),
        notes: request.place.notes.clone(),
    };
    let view = list_view(&state, 0, form, errors, None).await?;
    Ok(super::datasets::unprocessable(view::list_page(
        &viewer.0, &view,
    )))
}

async fn photo_view(
    state: &AppState,
    id: i32,
    errors: FieldErrors,
    notice: Option<String>,
) -> Result<PhotoPage, AppError> {
    let found = act::image(state.actions(), id).await?;
    let image = &found.image;
    let mut facts = Vec::new();
    for (label, value) in [
        ("Store", image.store.clone()),
        ("Aisle", image.aisle.clone()),
        ("Taken on", image.taken_on.map(|d| d.to_string())),
        ("Notes", image.notes.clone()),
    ] {
        if let Some(value) = value {
            facts.push((label.to_owned(), value));
        }
    }
    facts.push((
        "Uploaded".into(),
        image.created_at.format("%Y-%m-%d %H:%M").to_string(),
    ));
    let boxes = found
        .boxes
        .iter()
        .map(|b| BoxRow {
            id: b.id,
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
            source: b.source.clone(),
            label: b.label.clone(),
            status: b.status.clone(),
            product: b.product_id.map(|p| {
                (
                    b.barcode.clone().unwrap_or_default(),
                    b.product_name.clone().unwrap_or_default(),
                    paths::with_id(paths::PRODUCT, p),
                )
            }),
            crop_url: paths::media(&b.crop_key),
            reviewed: b.reviewed_at.map(|at| {
                format!(
                    "{} {}{}",
                    b.reviewed_by.clone().unwrap_or_default(),
                    at.format("%Y-%m-%d %H:%M"),
                    if b.took_top == Some(true) {
                        " · the top suggestion"
                    } else {
                        ""
                    }
                )
            }),
            note: b.note.clone(),
        })
        .collect();
    Ok(PhotoPage {
        id,
        file_name: image.file_name.clone(),
        photo_url: paths::media(&image.storage_key),
        width: image.width,
        height: image.height,
        facts,
        boxes,
        job: found.job.map(|(job, kind, status, progress)| JobState {
            kind: if kind == "propose_boxes" {
                "proposing boxes".into()
            } else {
                "matching".into()
            },
            url: paths::with_id(paths::JOB, job),
            status,
            progress,
            topic: format!("job:{job}"),
        }),
        errors: errors.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        notice,
        model: db::embeddings::serving(&state.pool)
            .await?
            .map(|m| m.label()),
    })
}

/// `GET /shelves/{id}`
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i32>,
    Query(query): Query<ListQuery>,
) -> Result<Markup, AppError> {
    let view = photo_view(&state, id, FieldErrors::new(), query.notice).await?;
    Ok(view::photo_page(&viewer.0, &view))
}

/// `POST /shelves/{id}/delete`
pub async fn delete(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path(id): Path<i32>,
) -> Result<Response, AppError> {
    act::delete_image(state.actions(), id).await?;
    Ok(go_to(
        &with_notice(paths::SHELVES, &format!("Shelf photo #{id} was deleted.")),
        htmx,
    ))
}

/// A box from a form's numbers.
fn box_of(form: &BTreeMap<String, String>) -> Result<BoxInput, ActionError> {
    let number = |name: &str| -> Result<i64, ActionError> {
        let value = form.get(name).map(|v| v.trim()).unwrap_or_default();
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| v.round() as i64)
            .ok_or_else(|| {
                ActionError::field(
                    "box",
                    format!("The box's {name} {value:?} is not a number."),
                )
            })
    };
    Ok(BoxInput {
        x: number("x")?,
        y: number("y")?,
        width: number("width")?,
        height: number("height")?,
    })
}

async fn photo_with_errors(
    state: &AppState,
    viewer: &Viewer,
    image_id: i32,
    errors: FieldErrors,
) -> Result<Response, AppError> {
    let view = photo_view(state, image_id, errors, None).await?;
    Ok(super::datasets::unprocessable(view::photo_page(
        &viewer.0, &view,
    )))
}

/// `POST /shelves/{id}/boxes`: a box drawn or typed.
pub async fn add_box(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Path(id): Path<i32>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    let result = match box_of(&form) {
        Ok(b) => act::add_boxes(state.actions(), id, &[b], "drawn", None).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(added) => Ok(go_to(
            &with_notice(
                &paths::with_id(paths::SHELF, id),
                &format!("Box #{} added.", added[0].id),
            ),
            htmx,
        )),
        Err(ActionError::Invalid(errors)) => photo_with_errors(&state, &viewer, id, errors).await,
        Err(other) => Err(other.into()),
    }
}

/// `POST /shelves/boxes/{id}`: a box moved or resized.
pub async fn move_box(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Path(id): Path<i64>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    let result = match box_of(&form) {
        Ok(b) => act::move_box(state.actions(), id, &b).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(moved) => Ok(go_to(
            &with_notice(
                &paths::with_id(paths::SHELF, moved.image_id),
                &format!("Box #{id} moved."),
            ),
            htmx,
        )),
        Err(ActionError::Invalid(errors)) => {
            let image = db::shelves::get_box(&state.pool, id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("There is no box #{id}.")))?
                .image_id;
            photo_with_errors(&state, &viewer, image, errors).await
        }
        Err(other) => Err(other.into()),
    }
}

/// `POST /shelves/boxes/{id}/delete`
pub async fn delete_box(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let gone = act::delete_box(state.actions(), id).await?;
    Ok(go_to(
        &with_notice(
            &paths::with_id(paths::SHELF, gone.image_id),
            &format!("Box #{id} deleted."),
        ),
        htmx,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ProposeForm {
    #[serde(default)]
    prompts: String,
    #[serde(default)]
    min_score: String,
}

/// `POST /shelves/{id}/propose`: SAM 3 proposals.
pub async fn propose(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Path(id): Path<i32>,
    Form(form): Form<ProposeForm>,
) -> Result<Response, AppError> {
    let min_score = match form.min_score.trim() {
        "" => Ok(None),
        text => text
            .parse::<f32>()
            .map(Some)
            .map_err(|_| ActionError::field("min_score", format!("{text:?} is not a number."))),
    };
    let result = match min_score {
        Ok(min_score) => act::propose(state.actions(), id, &form.prompts, min_score).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(go_to(
            &with_notice(
                &paths::with_id(paths::SHELF, id),
                "A worker with SAM 3 is looking for products on this photo.",
            ),
            htmx,
        )),
        Err(ActionError::Invalid(errors)) => photo_with_errors(&state, &viewer, id, errors).await,
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct MatchForm {
    image_id: Option<i32>,
}

/// `POST /shelves/match`: one photo's crops, or every unmatched crop.
pub async fn match_crops(
    State(state): State<AppState>,
    htmx: HxRequest,
    Form(form): Form<MatchForm>,
) -> Result<Response, AppError> {
    let (model, _job, count) =
        act::match_crops(state.actions(), form.image_id.map(|i| vec![i])).await?;
    let notice = format!(
        "Matching the crops of {count} photo{} with {}.",
        if count == 1 { "" } else { "s" },
        model.label()
    );
    let to = match form.image_id {
        Some(id) => paths::with_id(paths::SHELF, id),
        None => paths::SHELVES.to_owned(),
    };
    Ok(go_to(&with_notice(&to, &notice), htmx))
}

#[derive(Debug, Deserialize, Default)]
pub struct ReviewQuery {
    image: Option<i32>,
    #[serde(rename = "box")]
    crop: Option<i64>,
}

fn review_view(
    item: Option<ReviewItem>,
    counts: db::shelves::ReviewCounts,
    image: Option<i32>,
) -> ReviewPage {
    ReviewPage {
        item: item.map(|item| {
            let unmatched = if !item.suggestions.is_empty() {
                None
            } else {
                Some(match &item.model {
                    None => "No model serves searches yet, so there are no suggestions: pick the product below.".to_owned(),
                    Some(m) => format!(
                        "This crop has no matches of {} yet: match its photo, or pick the product below.",
                        m.label()
                    ),
                })
            };
            ReviewView {
                box_id: item.crop.id,
                crop_url: paths::media(&item.crop.crop_key),
                photo_url: paths::media(&item.image.storage_key),
                photo_link: format!("{}#box-{}", paths::with_id(paths::SHELF, item.image.id), item.crop.id),
                photo_name: format!("#{} {}", item.image.id, item.image.file_name),
                label: item.crop.label.clone(),
                note: item.crop.note.clone(),
                suggestions: item
                    .suggestions
                    .iter()
                    .map(|s| SuggestionCard {
                        rank: s.rank,
                        product_id: s.product.id.to_string(),
                        barcode: s.product.barcode.clone(),
                        name: s.product.product_name.clone().unwrap_or_default(),
                        similarity: format!("{:.3}", s.similarity),
                        frame_url: s.frame.as_ref().map(|f| paths::media(&f.storage_key)),
                        product_url: paths::with_id(paths::PRODUCT, s.product.id),
                    })
                    .collect(),
                unmatched,
            }
        }),
        left: counts.left,
        confirmed: counts.confirmed,
        absent: counts.absent,
        image,
        error: None,
    }
}

async fn review_of(state: &AppState, query: &ReviewQuery) -> Result<ReviewPage, AppError> {
    if let Some(id) = query.crop {
        let item = act::review_item(state.actions(), id).await?;
        let counts = db::shelves::review_counts(&state.pool, query.image).await?;
        return Ok(review_view(Some(item), counts, query.image));
    }
    let (item, counts) = act::next_to_review(state.actions(), query.image).await?;
    Ok(review_view(item, counts, query.image))
}

/// `GET /shelves/review`
pub async fn review(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ReviewQuery>,
) -> Result<Markup, AppError> {
    let view = review_of(&state, &query).await?;
    Ok(view::review_page(&viewer.0, &view))
}

/// `POST /shelves/review/{id}`: confirm, absent, skip, reopen. HTMX gets the
/// next crop's panel; a plain form goes to the next crop (or back).
pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    UserId(user): UserId,
    htmx: HxRequest,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let get = |name: &str| super::picker::field(&pairs, name);
    let image = get("image").and_then(|i| i.parse().ok());
    let decided = match Decision::parse(
        &get("action").unwrap_or_default(),
        get("product").as_deref(),
    ) {
        Ok(decision) => act::decide(state.actions(), id, &decision, Some(user)).await,
        Err(e) => Err(e),
    };
    let error = match decided {
        Ok(_) => None,
        Err(ActionError::Invalid(fields)) => {
            Some(fields.into_values().collect::<Vec<_>>().join(" "))
        }
        Err(other) => return Err(other.into()),
    };
    if !htmx.0 && error.is_none() {
        let back = get("back").filter(|b| b.starts_with('/') && !b.starts_with("//"));
        let to = back.unwrap_or_else(|| match image {
            Some(i) => format!("{}?image={i}", paths::SHELF_REVIEW),
            None => paths::SHELF_REVIEW.to_owned(),
        });
        return Ok(go_to(&to, htmx));
    }
    let query = ReviewQuery {
        image,
        // A refused decision stays on its crop.
        crop: error.as_ref().map(|_| id),
    };
    let mut view = review_of(&state, &query).await?;
    view.error = error.clone();
    let markup = if htmx.0 {
        view::render_review(&viewer.0, &view)
    } else {
        view::review_page(&viewer.0, &view)
    };
    Ok(if error.is_some() {
        super::datasets::unprocessable(markup)
    } else {
        markup.into_response()
    })
}

fn figure(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

#[derive(Debug, Deserialize, Default)]
pub struct CoverageQuery {
    /// The page of products, from 0 (the worst).
    #[serde(default)]
    page: usize,
}

/// Products on one page of the Coverage table.
const COVERAGE_PAGE: usize = 100;

/// `GET /coverage?page=`: the products worst first, a page at a time (the
/// categories and confusions are over every product).
pub async fn coverage(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<CoverageQuery>,
) -> Result<Markup, AppError> {
    let report = act::coverage(state.actions(), 200).await?;
    let total = report.products.len();
    let pages = total.div_ceil(COVERAGE_PAGE).max(1);
    let page = query.page.min(pages - 1);
    let first = page * COVERAGE_PAGE;
    let page_url = |p: usize| format!("{}?page={p}", paths::COVERAGE);
    let view = CoveragePage {
        model: report.model.as_ref().map(|m| m.label()),
        total,
        first,
        previous_url: (page > 0).then(|| page_url(page - 1)),
        next_url: (page + 1 < pages).then(|| page_url(page + 1)),
        rows: report
            .products
            .iter()
            .skip(first)
            .take(COVERAGE_PAGE)
            .map(|p| (&p.figures, p.verdict))
            .map(|(c, verdict)| CoverageRow {
                barcode: c.barcode.clone(),
                name: c.product_name.clone().unwrap_or_default(),
                category: c.category.clone().unwrap_or_default(),
                product_url: paths::with_id(paths::PRODUCT, c.product_id),
                real_crops: c.real_crops,
                scored: c.crops_scored,
                recall_at_1: figure(c.recall_at_1),
                mean_similarity: figure(c.mean_similarity),
                mean_margin: figure(c.mean_margin),
                worst_margin: figure(c.worst_margin),
                confused: c.confused,
                verdict,
            })
            .collect(),
        categories: report
            .categories
            .iter()
            .map(|c| CategoryRow {
                category: c.category.clone(),
                products: c.products,
                crops: c.crops_scored,
                recall_at_1: figure(c.recall_at_1),
                mean_similarity: figure(c.mean_similarity),
                poorly_covered: c.poorly_covered,
            })
            .collect(),
        confusions: report
            .confusions
            .iter()
            .map(|c| ConfusionRow {
                crop_url: paths::media(&c.crop_key),
                photo_url: format!(
                    "{}#box-{}",
                    paths::with_id(paths::SHELF, c.image_id),
                    c.box_id
                ),
                barcode: c.barcode.clone(),
                confused_barcode: c.confused_barcode.clone(),
                confused_name: c.confused_name.clone().unwrap_or_default(),
                similarity: c
                    .similarity
                    .map_or_else(|| "–".into(), |s| format!("{s:.3}")),
            })
            .collect(),
        unscored: report.unscored,
    };
    Ok(coverage_view::page(&viewer.0, &view))
}
