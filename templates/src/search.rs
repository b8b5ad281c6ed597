//! The Search page (a photo or a product in, the nearest products out, with
//! the frame that matched), the embedding models with their coverage, the
//! possible duplicates, and the "similar products" panel of a product page.

use maud::{Markup, html};

use crate::{
    format,
    layout::{self, Viewer, csrf_field},
    paths, products,
};

/// A product found.
#[derive(Debug, Clone)]
pub struct HitView {
    pub product_id: String,
    pub title: String,
    pub barcode: String,
    pub status: String,
    pub similarity: f32,
    /// The matched frame's image and its index.
    pub frame: Option<(String, i32, f32)>,
}

/// A registered model and how far its vectors reach.
#[derive(Debug, Clone)]
pub struct ModelView {
    pub id: i32,
    pub label: String,
    pub active: bool,
    pub serving: bool,
    pub products_embedded: i64,
    pub products_with_frames: i64,
    pub frame_vectors: i64,
}

#[derive(Debug, Clone)]
pub struct DuplicateView {
    pub a: (String, String),
    pub b: (String, String),
    pub similarity: f32,
}

/// What the search form was given, shown again with the results.
#[derive(Debug, Clone, Default)]
pub struct SearchForm {
    pub product: String,
    pub status: String,
    pub category: String,
    pub k: i64,
}

/// The results part of the page.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// What was searched for, in words ("a photo", "product 0123…").
    pub query: Option<String>,
    pub model: Option<String>,
    pub hits: Vec<HitView>,
    /// Why there are no results (bad input, no model), shown instead.
    pub error: Option<String>,
}

pub struct SearchPage {
    pub form: SearchForm,
    pub results: Results,
    pub models: Vec<ModelView>,
    pub notice: Option<String>,
}

pub fn page(viewer: &Viewer, view: &SearchPage) -> Markup {
    layout::page_for(
        viewer,
        "Search",
        html! {
            h1 { "Search" }
            @if let Some(notice) = &view.notice {
                p.notice role="status" { (notice) }
            }
            section.card {
                h2 { "Find products like a photo or a product" }
                form.search method="post" action=(layout::multipart_action(paths::SEARCH, viewer)) enctype="multipart/form-data"
                    hx-post=(paths::SEARCH) hx-encoding="multipart/form-data"
                    hx-target="#results" hx-select="#results" hx-swap="outerHTML" {
                    (csrf_field(viewer))
                    label.dropzone for="image" {
                        span { "Drop a photo here, or choose one" }
                        input #image type="file" name="image" accept="image/*";
                    }
                    div.row {
                        label { "or a product (id or barcode) "
                            input type="text" name="product" value=(view.form.product) placeholder="barcode or id"; }
                        label { "Status "
                            select name="status" {
                                option value="" selected[view.form.status.is_empty()] { "any" }
                                @for status in products::statuses() {
                                    option value=(status) selected[view.form.status == status] { (format::label(status)) }
                                }
                            }
                        }
                        label { "Category "
                            input type="text" name="category" value=(view.form.category) placeholder="any"; }
                        label { "Results "
                            input type="number" name="k" min="1" max="100" value=(view.form.k); }
                        button type="submit" { "Search" }
                    }
                }
            }
            (render_results(&view.results))
            section.card {
                h2 { "Possible duplicates" }
                p.muted { "Products whose frames look alike: one product under two barcodes, or a product filmed twice." }
                div hx-get=(paths::SEARCH_DUPLICATES) hx-trigger="load" hx-swap="innerHTML" {
                    p.muted { "Looking…" }
                }
            }
            (render_models(viewer, &view.models))
        },
    )
}

pub fn render_results(results: &Results) -> Markup {
    html! {
        section.card #results {
            @if let Some(error) = &results.error {
                p.error role="alert" { (error) }
            } @else if let Some(query) = &results.query {
                h2 { "Nearest to " (query) }
                @if let Some(model) = &results.model {
                    p.muted { "Answered by " (model) ". The score is the cosine similarity of the query and the product's frames taken together; the frame shown is the one closest to the query." }
                }
                (render_hits(&results.hits))
            } @else {
                p.muted { "Choose a photo or name a product to see the products nearest it." }
            }
        }
    }
}

fn render_hits(hits: &[HitView]) -> Markup {
    html! {
        @if hits.is_empty() {
            p.muted { "No product has vectors yet that match these filters." }
        } @else {
            ol.hits {
                @for hit in hits {
                    li.hit {
                        a href=(paths::with_id(paths::PRODUCT, &hit.product_id)) {
                            @if let Some((url, index, _)) = &hit.frame {
                                img src=(url) alt=(format!("Frame {index} of {}", hit.title)) loading="lazy" width="150" height="150";
                            }
                            span.title { (hit.title) }
                        }
                        span.muted { code { (hit.barcode) } " · " (format::label(&hit.status)) }
                        span.score title="Cosine similarity to the product" { (format!("{:.3}", hit.similarity)) }
                        @if let Some((_, index, similarity)) = &hit.frame {
                            span.muted { "frame " (index) ": " (format!("{similarity:.3}")) }
                        }
                    }
                }
            }
        }
    }
}

pub fn render_duplicates(model: &str, threshold: f32, pairs: &[DuplicateView]) -> Markup {
    html! {
        @if pairs.is_empty() {
            p.muted { "No two products are closer than " (format!("{threshold:.2}")) " with " (model) "." }
        } @else {
            p.muted { "Closer than " (format!("{threshold:.2}")) " with " (model) ", closest first." }
            table {
                thead { tr { th { "Product" } th { "Looks like" } th { "Similarity" } } }
                tbody {
                    @for pair in pairs {
                        tr {
                            td { a href=(paths::with_id(paths::PRODUCT, &pair.a.0)) { (pair.a.1) } }
                            td { a href=(paths::with_id(paths::PRODUCT, &pair.b.0)) { (pair.b.1) } }
                            td { (format!("{:.3}", pair.similarity)) }
                        }
                    }
                }
            }
        }
    }
}

fn render_models(viewer: &Viewer, models: &[ModelView]) -> Markup {
    html! {
        section.card #models {
            h2 { "Embedding models" }
            @if models.is_empty() {
                p.muted { "No model is registered yet: a worker registers the classic descriptor (and the model of EMBED_MODEL_PATH) when it starts." }
            } @else {
                table {
                    thead { tr { th { "Model" } th { "State" } th { "Products embedded" } th { "Frame vectors" } th {} } }
                    tbody {
                        @for model in models {
                            tr {
                                td { (model.label) }
                                td {
                                    @if model.serving { span.badge.approved { "serving" } " " }
                                    @if model.active { span.badge { "active" } }
                                }
                                td { (model.products_embedded) " of " (model.products_with_frames) }
                                td { (model.frame_vectors) }
                                td {
                                    @if !model.active {
                                        form method="post" action=(paths::with_id(paths::MODEL_ACTIVATE, model.id)) {
                                            (csrf_field(viewer))
                                            button type="submit" { "Make active" }
                                        }
                                    } @else if model.products_embedded < model.products_with_frames {
                                        form method="post" action=(paths::SEARCH_BACKFILL) {
                                            (csrf_field(viewer))
                                            button type="submit" { "Embed the rest" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                p.muted { "New vectors are made with the active model; searches answer from the serving one. A newly active model serves once every product has its vectors; until then the one before it keeps answering." }
            }
        }
    }
}

/// The "similar products" panel of a product page.
pub fn render_similar(model: Option<&str>, hits: &[HitView], error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.muted { (error) }
        } @else {
            @if let Some(model) = model {
                p.muted { "By " (model) "." }
            }
            (render_hits(hits))
        }
    }
}

/// The panel's placeholder on the product page, loaded after the page.
pub fn similar_panel(product_id: &str) -> Markup {
    html! {
        section.card #similar {
            h2 { "Similar products" }
            div hx-get=(paths::with_id(paths::PRODUCT_SIMILAR, product_id)) hx-trigger="load" hx-swap="innerHTML" {
                p.muted { "Looking…" }
            }
        }
    }
}
