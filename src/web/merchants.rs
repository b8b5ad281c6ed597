//! The Merchants pages: merchants, a merchant's page with its import (upload,
//! then the mapping step), bulk acceptance and export, and the review of its
//! lines.

use std::collections::BTreeMap;

use axum::{
    Form,
    body::Bytes,
    extract::{Multipart, Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use buybuddy_templates::{
    format,
    merchants::{
        self as view, CandidateView, Counts, ImportRow, LineRow, MappingPage, MerchantPage,
        MerchantRow, MerchantsPage, PartView, ReviewLine, ReviewPage,
    },
    paths,
};
use maud::Markup;
use serde::Deserialize;

use super::{
    AppError, AppState, UserId, Viewer,
    htmx::{HxRequest, go_to},
};
use crate::{
    actions::{
        ActionError, FieldErrors,
        merchants::{self as act, BadLines, Choice, Imported, LineView, csv::Field},
    },
    db::{
        self,
        merchants::{LineFilter, Merchant, Progress},
    },
};

const PAGE: i64 = 100;

fn counts(p: &Progress) -> Counts {
    Counts {
        lines: p.lines,
        assigned: p.assigned,
        absent: p.absent,
        undecided: p.undecided,
        waiting: p.waiting,
        images_queued: p.images_queued,
        images_failed: p.images_failed,
        conflicts: p.conflicts,
    }
}

fn filters() -> Vec<(String, String)> {
    LineFilter::ALL
        .iter()
        .map(|f| {
            (
                f.as_str().to_owned(),
                match f {
                    LineFilter::Unassigned => "undecided",
                    LineFilter::LowConfidence => "low confidence",
                    LineFilter::Conflicts => "conflicts",
                    LineFilter::All => "every line",
                }
                .to_owned(),
            )
        })
        .collect()
}

fn with_notice(path: &str, notice: &str) -> String {
    format!("{path}?notice={}", format::encode(notice))
}

fn owned(errors: FieldErrors) -> BTreeMap<String, String> {
    errors.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[derive(Debug, Deserialize, Default)]
pub struct Notice {
    notice: Option<String>,
}

async fn list_view(
    state: &AppState,
    code: &str,
    name: &str,
    errors: FieldErrors,
    notice: Option<String>,
) -> Result<MerchantsPage, AppError> {
    Ok(MerchantsPage {
        rows: db::merchants::list(&state.pool)
            .await?
            .into_iter()
            .map(|(m, p)| MerchantRow {
                id: m.id,
                code: m.code,
                name: m.name,
                counts: counts(&p),
            })
            .collect(),
        code: code.to_owned(),
        name: name.to_owned(),
        errors: owned(errors),
        notice,
    })
}

/// `GET /merchants`
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<Notice>,
) -> Result<Markup, AppError> {
    let view = list_view(&state, "", "", FieldErrors::new(), q.notice).await?;
    Ok(view::list_page(&viewer.0, &view))
}

#[derive(Debug, Deserialize)]
pub struct NewMerchant {
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
}

/// `POST /merchants`
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Form(form): Form<NewMerchant>,
) -> Result<Response, AppError> {
    match act::create(state.actions(), &form.code, &form.name).await {
        Ok(m) => Ok(go_to(&paths::with_id(paths::MERCHANT, m.id), htmx)),
        Err(ActionError::Invalid(errors)) => {
            let view = list_view(&state, &form.code, &form.name, errors, None).await?;
            Ok(super::datasets::unprocessable(view::list_page(
                &viewer.0, &view,
            )))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct MerchantQuery {
    notice: Option<String>,
    filter: Option<String>,
    offset: Option<i64>,
    line: Option<i64>,
}

fn filter_of(text: Option<&str>) -> LineFilter {
    text.and_then(LineFilter::parse).unwrap_or_default()
}

async fn merchant_view(
    state: &AppState,
    merchant: &Merchant,
    query: &MerchantQuery,
    errors: FieldErrors,
) -> Result<MerchantPage, AppError> {
    let filter = query
        .filter
        .as_deref()
        .and_then(LineFilter::parse)
        .unwrap_or(LineFilter::All);
    let offset = query.offset.unwrap_or(0).max(0);
    let confident = act::score::CONFIDENT;
    let lines = db::merchants::lines(&state.pool, merchant.id, filter, confident, PAGE, offset)
        .await?
        .into_iter()
        .map(|l| LineRow {
            id: l.id,
            sku: l.sku,
            name: l.name.unwrap_or_default(),
            barcode: l.barcode.unwrap_or_default(),
            status: l.status.unwrap_or_else(|| "undecided".into()),
            product: l
                .product_barcode
                .zip(l.product_id)
                .map(|(b, id)| (b, paths::with_id(paths::PRODUCT, id))),
            image: match l.image_state.as_str() {
                "failed" => format!("failed: {}", l.image_error.unwrap_or_default()),
                other => other.to_owned(),
            },
        })
        .collect();
    let imports = db::merchants::imports(&state.pool, merchant.id, 5)
        .await?
        .into_iter()
        .map(|i| ImportRow {
            when: i.created_at.format("%Y-%m-%d %H:%M").to_string(),
            read: format!("{}, delimiter {}, {} rows", i.encoding, i.delimiter, i.rows),
            summary: format!(
                "{} added, {} changed, {} unchanged, {} removed, {} left out",
                i.added,
                i.changed,
                i.unchanged,
                i.removed,
                i.skipped.len()
            ),
            skipped: i
                .skipped
                .0
                .iter()
                .map(|b| (b.line, b.sku.clone().unwrap_or_default(), b.reason.clone()))
                .collect(),
            file: i.file_name,
        })
        .collect();
    Ok(MerchantPage {
        id: merchant.id,
        code: merchant.code.clone(),
        name: merchant.name.clone(),
        counts: counts(&db::merchants::progress(&state.pool, merchant.id).await?),
        exact_matches: db::merchants::exact_matches(&state.pool, merchant.id)
            .await?
            .len(),
        imports,
        lines,
        filter: filter.as_str().to_owned(),
        filters: filters(),
        offset,
        limit: PAGE,
        total: db::merchants::count_lines(&state.pool, merchant.id, filter, confident).await?,
        errors: owned(errors),
        notice: query.notice.clone(),
    })
}

/// `GET /merchants/{id}`
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<MerchantQuery>,
) -> Result<Markup, AppError> {
    let merchant = act::find(state.actions(), &id).await?;
    let view = merchant_view(&state, &merchant, &query, FieldErrors::new()).await?;
    Ok(view::merchant_page(&viewer.0, &view))
}

fn mapping_view(
    merchant: &Merchant,
    file_name: &str,
    key: &str,
    table: &act::csv::Table,
    mapping: &act::csv::Mapping,
    bad: Option<(Vec<act::csv::BadLine>, usize)>,
    errors: FieldErrors,
) -> MappingPage {
    MappingPage {
        merchant_id: merchant.id,
        merchant: merchant.name.clone(),
        file_name: file_name.to_owned(),
        key: key.to_owned(),
        read: format!(
            "{}, delimited by {}",
            table.encoding,
            match table.delimiter {
                '\t' => "tabs",
                ';' => "semicolons",
                _ => "commas",
            }
        ),
        headers: table.headers.clone(),
        rows: table.rows.iter().take(5).map(|r| r.cells.clone()).collect(),
        total_rows: table.rows.len(),
        fields: Field::ALL
            .iter()
            .map(|f| {
                (
                    f.as_str().to_owned(),
                    f.label().to_owned(),
                    mapping.get(f).cloned().unwrap_or_default(),
                )
            })
            .collect(),
        bad: bad.map(|(bad, good)| {
            (
                bad.into_iter()
                    .map(|b| (b.line, b.sku.unwrap_or_default(), b.reason))
                    .collect(),
                good,
            )
        }),
        errors: owned(errors),
    }
}

/// `POST /merchants/{id}/import`: the file; answers with the mapping step.
pub async fn upload(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    let merchant = act::find(state.actions(), &id).await?;
    let (file_name, bytes) = read_file(&mut multipart).await?;
    let table = match act::read_list(&bytes) {
        Ok(table) => table,
        Err(ActionError::Invalid(errors)) => {
            let view = merchant_view(&state, &merchant, &MerchantQuery::default(), errors).await?;
            return Ok(super::datasets::unprocessable(view::merchant_page(
                &viewer.0, &view,
            )));
        }
        Err(other) => return Err(other.into()),
    };
    let key = act::keep_upload(state.actions(), &merchant, bytes).await?;
    let mapping = act::offered_mapping(&merchant, &table);
    let view = mapping_view(
        &merchant,
        &file_name,
        &key,
        &table,
        &mapping,
        None,
        FieldErrors::new(),
    );
    Ok(view::mapping_page(&viewer.0, &view).into_response())
}

/// The `file` field of a multipart form: its name and bytes.
pub async fn read_file(multipart: &mut Multipart) -> Result<(String, Bytes), AppError> {
    let mut found = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))?
    {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or("list.csv").to_owned();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| AppError::BadRequest(format!("The upload broke off: {e}.")))?;
            found = Some((name, bytes));
        }
    }
    found.ok_or_else(|| ActionError::field("file", "Choose a CSV file.").into())
}

/// `POST /merchants/{id}/import/map`: the mapping, and what to do with bad lines.
pub async fn map(
    State(state): State<AppState>,
    viewer: Viewer,
    UserId(user): UserId,
    htmx: HxRequest,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let merchant = act::find(state.actions(), &id).await?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let key = get("key");
    let file_name = get("file_name");
    let bytes = act::kept_upload(state.actions(), &merchant, &key).await?;
    let table = act::read_list(&bytes)?;
    let fields: BTreeMap<String, String> = pairs
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("map.").map(|f| (f.to_owned(), v.clone())))
        .collect();
    let mapping = act::mapping_from(&fields)?;
    let bad_lines = if get("bad_lines") == "import_good" {
        BadLines::ImportGood
    } else {
        BadLines::Refuse
    };
    let outcome = act::import(
        state.actions(),
        &merchant,
        &file_name,
        &table,
        &mapping,
        bad_lines,
        Some(user),
    )
    .await;
    let (bad, errors) = match outcome {
        Ok(Imported::Imported { import, .. }) => {
            let _ = state.storage.delete(&[key]).await;
            let notice = format!(
                "Imported {}: {} added, {} changed, {} unchanged, {} removed, {} left out. Suggestions are being made.",
                import.file_name,
                import.added,
                import.changed,
                import.unchanged,
                import.removed,
                import.skipped.len()
            );
            return Ok(go_to(
                &with_notice(&paths::with_id(paths::MERCHANT, merchant.id), &notice),
                htmx,
            ));
        }
        Ok(Imported::BadLines { bad, good }) => (Some((bad, good)), FieldErrors::new()),
        Err(ActionError::Invalid(errors)) => (None, errors),
        Err(other) => return Err(other.into()),
    };
    let view = mapping_view(&merchant, &file_name, &key, &table, &mapping, bad, errors);
    Ok(super::datasets::unprocessable(view::mapping_page(
        &viewer.0, &view,
    )))
}

#[derive(Debug, Deserialize, Default)]
pub struct BulkForm {
    confirm: Option<String>,
}

/// `POST /merchants/{id}/bulk`: accepts every exact barcode match whose name agrees.
pub async fn bulk(
    State(state): State<AppState>,
    UserId(user): UserId,
    htmx: HxRequest,
    Path(id): Path<String>,
    Form(form): Form<BulkForm>,
) -> Result<Response, AppError> {
    let merchant = act::find(state.actions(), &id).await?;
    let confirm = form.confirm.as_deref() == Some("true");
    let n = act::bulk_accept(state.actions(), merchant.id, confirm, Some(user)).await?;
    let notice = format!("{}.", act::bulk_outcome(n, confirm));
    Ok(go_to(
        &with_notice(&paths::with_id(paths::MERCHANT, merchant.id), &notice),
        htmx,
    ))
}

/// `POST /merchants/{id}/suggest`: suggestions again for every line.
pub async fn suggest(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let merchant = act::find(state.actions(), &id).await?;
    act::suggest_again(state.actions(), &merchant).await?;
    Ok(go_to(
        &with_notice(
            &paths::with_id(paths::MERCHANT, merchant.id),
            "Suggestions are being made again for every line.",
        ),
        htmx,
    ))
}

/// `GET /merchants/{id}/export/{format}`
pub async fn export(
    State(state): State<AppState>,
    Path((id, format)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let merchant = act::find(state.actions(), &id).await?;
    let (content_type, bytes) = act::export(state.actions(), &merchant, &format).await?;
    let name = format!("{}-assignments.{format}", merchant.code);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

fn line_view(view: LineView) -> ReviewLine {
    let line = &view.line;
    let mut fields = Vec::new();
    for (label, value) in [
        ("Name", line.name.clone()),
        ("Brand", line.brand.clone()),
        ("Size", line.size.clone()),
        (
            "Barcode",
            line.barcode.clone().map(|b| match line.barcode_valid {
                Some(false) => format!("{b} (check digit fails)"),
                _ => b,
            }),
        ),
        ("Price", line.price.clone()),
    ] {
        if let Some(v) = value {
            fields.push((label.to_owned(), v));
        }
    }
    if let serde_json::Value::Object(extra) = &line.extra {
        for (k, v) in extra {
            fields.push((k.clone(), v.as_str().unwrap_or_default().to_owned()));
        }
    }
    ReviewLine {
        id: line.id,
        sku: line.sku.clone(),
        fields,
        image: line.image_key.as_deref().map(paths::media),
        state: match (&line.status, &line.product_barcode) {
            (Some(s), Some(b)) if s == "assigned" => format!("assigned to {b}"),
            (Some(s), _) => s.replace('_', " "),
            (None, _) => "undecided".into(),
        },
        conflicts: view.conflicts.iter().map(|(_, sku)| sku.clone()).collect(),
        candidates: view
            .suggestions
            .iter()
            .map(|s| CandidateView {
                rank: s.rank,
                product_id: s.product.id.to_string(),
                product_url: paths::with_id(paths::PRODUCT, s.product.id),
                barcode: s.product.barcode.clone(),
                name: s.product.product_name.clone().unwrap_or_default(),
                brand: s.product.brand_name.clone().unwrap_or_default(),
                thumb: s.frame_key.as_deref().map(paths::media),
                score: format!("{:.2}", s.score),
                parts: s
                    .parts
                    .iter()
                    .map(|p| PartView {
                        signal: p.signal.clone(),
                        points: p.points,
                        says: p.says.clone(),
                    })
                    .collect(),
                exact: s.exact,
                assigned_to: s.assigned_to.iter().map(|(_, sku)| sku.clone()).collect(),
            })
            .collect(),
        history: view
            .history
            .iter()
            .map(|d| {
                (
                    d.decided_at.format("%Y-%m-%d %H:%M").to_string(),
                    match (d.status.as_str(), &d.barcode) {
                        ("assigned", Some(b)) => format!(
                            "assigned to {b}{}",
                            if d.suggested {
                                " (the top suggestion)"
                            } else {
                                ""
                            }
                        ),
                        (s, _) => s.to_owned(),
                    } + &format!(" via {}", d.via),
                    d.decided_by.clone().unwrap_or_default(),
                )
            })
            .collect(),
        waiting: line.suggested_at.is_none(),
    }
}

async fn review_view(
    state: &AppState,
    merchant: &Merchant,
    filter: LineFilter,
    line: Option<i64>,
) -> Result<ReviewPage, AppError> {
    let (found, left) = match line {
        Some(id) => {
            let view = act::line_view(state.actions(), id).await?;
            if view.line.merchant_id != merchant.id {
                return Err(AppError::NotFound(format!(
                    "Line #{id} is not {}'s.",
                    merchant.name
                )));
            }
            let left =
                db::merchants::count_lines(&state.pool, merchant.id, filter, act::score::CONFIDENT)
                    .await?;
            (Some(view), left)
        }
        None => act::next_line(state.actions(), merchant.id, filter).await?,
    };
    Ok(ReviewPage {
        merchant_id: merchant.id,
        merchant: merchant.name.clone(),
        filter: filter.as_str().to_owned(),
        filters: filters(),
        left,
        line: found.map(line_view),
        error: None,
    })
}

/// `GET /merchants/{id}/review?filter=&line=`
pub async fn review(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<MerchantQuery>,
) -> Result<Markup, AppError> {
    let merchant = act::find(state.actions(), &id).await?;
    let view = review_view(
        &state,
        &merchant,
        filter_of(query.filter.as_deref()),
        query.line,
    )
    .await?;
    Ok(view::review_page(&viewer.0, &view))
}

/// `POST /merchants/lines/{id}/decide`: assign, absent, skip, clear. HTMX
/// gets the next line's panel; a plain form goes to the next line.
pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    UserId(user): UserId,
    htmx: HxRequest,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let get = |name: &str| super::picker::field(&pairs, name);
    let filter = filter_of(get("filter").as_deref());
    let line = db::merchants::line(&state.pool, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("There is no merchant line #{id}.")))?;
    let merchant = act::find(state.actions(), &line.merchant_id.to_string()).await?;
    let decided = match Choice::parse(
        &get("action").unwrap_or_default(),
        get("product").as_deref(),
    ) {
        Ok(choice) => act::decide(state.actions(), id, &choice, "review", Some(user)).await,
        Err(e) => Err(e),
    };
    let error = match decided {
        Ok(_) => None,
        Err(ActionError::Invalid(fields)) => {
            Some(fields.into_values().collect::<Vec<_>>().join(" "))
        }
        Err(ActionError::Conflict(message)) => Some(message),
        Err(other) => return Err(other.into()),
    };
    let review_url = format!(
        "{}?filter={}",
        paths::with_id(paths::MERCHANT_REVIEW, merchant.id),
        filter.as_str()
    );
    if !htmx.0 && error.is_none() {
        return Ok(go_to(&review_url, htmx));
    }
    let mut view = review_view(&state, &merchant, filter, error.as_ref().map(|_| id)).await?;
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
