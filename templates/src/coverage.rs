//! The Coverage page: per product, how well the filmed frames represent it
//! on real shelves, worst first, with the crops taken for another product and
//! a summary per category.

use maud::{Markup, html};

use crate::{
    layout::{self, Viewer, csrf_field},
    paths,
};

#[derive(Debug, Clone)]
pub struct CoverageRow {
    pub barcode: String,
    pub name: String,
    pub category: String,
    pub product_url: String,
    pub real_crops: i64,
    pub scored: i64,
    pub recall_at_1: String,
    pub mean_similarity: String,
    pub mean_margin: String,
    pub worst_margin: String,
    pub confused: i64,
    /// What to do about it: re-film, confusable, collect more, covered.
    pub verdict: &'static str,
}

#[derive(Debug, Clone)]
pub struct CategoryRow {
    pub category: String,
    pub products: usize,
    pub crops: i64,
    pub recall_at_1: String,
    pub mean_similarity: String,
    pub poorly_covered: usize,
}

#[derive(Debug, Clone)]
pub struct ConfusionRow {
    pub crop_url: String,
    pub photo_url: String,
    pub barcode: String,
    pub confused_barcode: String,
    pub confused_name: String,
    pub similarity: String,
}

pub struct CoveragePage {
    pub model: Option<String>,
    /// One page of the products, worst first.
    pub rows: Vec<CoverageRow>,
    /// Products with confirmed crops in all, and the position of the page's first.
    pub total: usize,
    pub first: usize,
    pub previous_url: Option<String>,
    pub next_url: Option<String>,
    pub categories: Vec<CategoryRow>,
    pub confusions: Vec<ConfusionRow>,
    pub unscored: i64,
}

pub fn page(viewer: &Viewer, view: &CoveragePage) -> Markup {
    layout::page_for(
        viewer,
        "Coverage",
        html! {
            h1 { "Coverage" }
            p.muted {
                "How well the filmed frames of each product represent it on real shelves, from its confirmed crops"
                @if let Some(m) = &view.model { ", by " (m) }
                ". Recall@1: the share of its crops whose nearest filmed frame (of every product) is its own. Similarity: to the product's prototype. Margin: that similarity minus the nearest other product's (below 0, the crop looks more like another product). Worst first. Verdicts: re-film (its frames miss half or more of its crops), confusable (its crops look more like another product on average), collect more (fewer than 3 crops), covered."
            }
            @if view.unscored > 0 {
                div.warning {
                    (view.unscored) " confirmed crops have no vectors of the serving model yet, so they are not counted. "
                    form method="post" action=(paths::SHELVES_MATCH) style="display:inline" {
                        (csrf_field(viewer))
                        button.secondary type="submit" { "Match them" }
                    }
                }
            }
            section.card {
                h2 { "Products (" (view.total) ")" }
                @if view.rows.is_empty() {
                    p.muted { "No product has confirmed real crops yet: upload shelf photos, match them and " a href=(paths::SHELF_REVIEW) { "review the crops" } "." }
                } @else {
                    table.list #coverage {
                        thead { tr { th { "Product" } th { "Category" } th { "Real crops" } th { "Recall@1" } th { "Similarity" } th { "Margin (mean / worst)" } th { "Confused" } th { "Verdict" } } }
                        tbody {
                            @for r in &view.rows {
                                tr data-verdict=(r.verdict) {
                                    td { a href=(r.product_url) { (r.barcode) } " " (r.name) }
                                    td { (r.category) }
                                    td { (r.real_crops) @if r.scored < r.real_crops { span.muted { " (" (r.scored) " scored)" } } }
                                    td { (r.recall_at_1) }
                                    td { (r.mean_similarity) }
                                    td { (r.mean_margin) " / " (r.worst_margin) }
                                    td { (r.confused) }
                                    td { span.badge data-state=(r.verdict) { (r.verdict) } }
                                }
                            }
                        }
                    }
                    @if view.previous_url.is_some() || view.next_url.is_some() {
                        p.pager {
                            (view.first + 1) "–" (view.first + view.rows.len()) " of " (view.total) ". "
                            @if let Some(url) = &view.previous_url { a href=(url) rel="prev" { "Worse" } " " }
                            @if let Some(url) = &view.next_url { a href=(url) rel="next" { "Better" } }
                        }
                    }
                }
            }
            section.card {
                h2 { "By category" }
                @if view.categories.is_empty() {
                    p.muted { "Nothing yet." }
                } @else {
                    table.list #categories {
                        thead { tr { th { "Category" } th { "Products" } th { "Scored crops" } th { "Recall@1" } th { "Similarity" } th { "Poorly covered" } } }
                        tbody {
                            @for c in &view.categories {
                                tr { td { (c.category) } td { (c.products) } td { (c.crops) } td { (c.recall_at_1) } td { (c.mean_similarity) } td { (c.poorly_covered) } }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "Crops taken for another product" }
                @if view.confusions.is_empty() {
                    p.muted { "None." }
                } @else {
                    table.list #confusions {
                        thead { tr { th { "Crop" } th { "Is" } th { "Nearest frame is of" } th { "Similarity" } } }
                        tbody {
                            @for c in &view.confusions {
                                tr {
                                    td.thumb { a href=(c.photo_url) { img src=(c.crop_url) width="56" height="56" alt="" loading="lazy"; } }
                                    td { (c.barcode) }
                                    td { (c.confused_barcode) " " (c.confused_name) }
                                    td { (c.similarity) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
