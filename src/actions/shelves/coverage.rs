//! Coverage: how well the filmed frames of each product represent it on real
//! shelves, from its confirmed crops (the figures of
//! `sql/shelf_coverage.sql`), worst first, with the crops that were taken for
//! another product and a summary per category.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    actions::{ActionError, Ctx},
    db::{
        self,
        embeddings::Model,
        shelves::{Confusion, Coverage},
    },
};

/// A category's products with confirmed crops, pooled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryLine {
    pub category: String,
    pub products: usize,
    pub crops_scored: i64,
    /// Of all the category's scored crops.
    pub recall_at_1: Option<f64>,
    pub mean_similarity: Option<f64>,
    /// Products with half or more of their crops taken for another product.
    pub poorly_covered: usize,
}

/// A product's figures with what to do about them.
#[derive(Debug, Clone, Serialize)]
pub struct ProductCoverage {
    #[serde(flatten)]
    pub figures: Coverage,
    pub verdict: &'static str,
}

/// Everything the Coverage page shows.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageReport {
    /// The serving model the figures are of.
    #[serde(serialize_with = "label")]
    pub model: Option<Model>,
    pub products: Vec<ProductCoverage>,
    pub categories: Vec<CategoryLine>,
    pub confusions: Vec<Confusion>,
    /// Confirmed crops without vectors of the serving model (match them).
    pub unscored: i64,
}

/// At or below this recall@1, half or more of a product's real crops are
/// taken for another product: its frames do not represent it in the field.
pub const POOR_RECALL: f64 = 0.5;

/// Fewer confirmed crops than this say too little: collect more.
pub const FEW_CROPS: i64 = 3;

/// What to do about a product, from its figures:
/// - `re-film`: half or more of its real crops are not found by its own
///   frames (recall@1 at most 0.5);
/// - `confusable`: its frames find its crops, but the crops look more like
///   another product's prototype than like its own on average (a look-alike:
///   film both from the sides where they differ, or train on real crops);
/// - `collect more`: fewer than 3 crops say too little;
/// - `covered`.
pub fn verdict(c: &Coverage) -> &'static str {
    match (c.recall_at_1, c.mean_margin) {
        (None, _) => "not scored",
        (Some(r), _) if r <= POOR_RECALL => "re-film",
        (_, Some(m)) if m < 0.0 => "confusable",
        _ if c.crops_scored < FEW_CROPS => "collect more",
        _ => "covered",
    }
}

/// The coverage figures; `confusions` at most per page.
pub async fn coverage(ctx: Ctx<'_>, confusions: i64) -> Result<CoverageReport, ActionError> {
    let model = db::embeddings::serving(ctx.pool).await?;
    let products = db::shelves::coverage(ctx.pool).await?;
    let confused = db::shelves::confusions(ctx.pool, None, confusions).await?;
    let unscored = db::shelves::unscored_confirmed(ctx.pool).await?;
    Ok(CoverageReport {
        model,
        categories: by_category(&products),
        products: products
            .into_iter()
            .map(|figures| ProductCoverage {
                verdict: verdict(&figures),
                figures,
            })
            .collect(),
        confusions: confused,
        unscored,
    })
}

/// A model as its label ("classic (classic, 256-d, #1)").
fn label<S: serde::Serializer>(model: &Option<Model>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_some(&model.as_ref().map(Model::label))
}

/// The per-product figures pooled by category (crop-weighted), worst first.
pub fn by_category(products: &[Coverage]) -> Vec<CategoryLine> {
    #[derive(Default)]
    struct Sums {
        products: usize,
        crops: i64,
        found: f64,
        similarity: f64,
        poor: usize,
    }
    let mut sums: BTreeMap<String, Sums> = BTreeMap::new();
    for p in products {
        let s = sums
            .entry(p.category.clone().unwrap_or_else(|| "(no category)".into()))
            .or_default();
        s.products += 1;
        if p.crops_scored > 0 {
            let n = p.crops_scored as f64;
            s.crops += p.crops_scored;
            s.found += p.recall_at_1.unwrap_or(0.0) * n;
            s.similarity += p.mean_similarity.unwrap_or(0.0) * n;
            if p.recall_at_1.unwrap_or(0.0) <= POOR_RECALL {
                s.poor += 1;
            }
        }
    }
    let mut lines: Vec<CategoryLine> = sums
        .into_iter()
        .map(|(category, s)| {
            let per_crop = |v: f64| (s.crops > 0).then(|| v / s.crops as f64);
            CategoryLine {
                category,
                products: s.products,
                crops_scored: s.crops,
                recall_at_1: per_crop(s.found),
                mean_similarity: per_crop(s.similarity),
                poorly_covered: s.poor,
            }
        })
        .collect();
    lines.sort_by(|a, b| {
        let key = |l: &CategoryLine| l.recall_at_1.unwrap_or(f64::INFINITY);
        key(a)
            .total_cmp(&key(b))
            .then_with(|| a.category.cmp(&b.category))
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(category: Option<&str>, scored: i64, recall: f64, similarity: f64) -> Coverage {
        Coverage {
            product_id: uuid::Uuid::new_v4(),
            barcode: String::new(),
            product_name: None,
            brand_name: None,
            category: category.map(Into::into),
            real_crops: scored,
            crops_scored: scored,
            mean_similarity: (scored > 0).then_some(similarity),
            mean_margin: None,
            worst_margin: None,
            recall_at_1: (scored > 0).then_some(recall),
            confused: 0,
        }
    }

    #[test]
    fn verdicts_say_what_to_do() {
        let with_margin = |scored, recall, margin| Coverage {
            mean_margin: Some(margin),
            ..line(Some("drinks"), scored, recall, 0.8)
        };
        assert_eq!(verdict(&with_margin(4, 0.5, 0.2)), "re-film");
        assert_eq!(verdict(&with_margin(4, 1.0, -0.01)), "confusable");
        assert_eq!(verdict(&with_margin(2, 1.0, 0.2)), "collect more");
        assert_eq!(verdict(&with_margin(3, 0.75, 0.0)), "covered");
        assert_eq!(verdict(&line(None, 0, 0.0, 0.0)), "not scored");
    }

    #[test]
    fn categories_pool_their_crops_and_come_worst_first() {
        let lines = by_category(&[
            line(Some("drinks"), 3, 1.0, 0.9),
            line(Some("drinks"), 1, 0.0, 0.5),
            line(Some("snacks"), 2, 0.5, 0.7),
            line(None, 0, 0.0, 0.0),
        ]);
        let names: Vec<&str> = lines.iter().map(|l| l.category.as_str()).collect();
        assert_eq!(names, ["snacks", "drinks", "(no category)"]);
        let drinks = &lines[1];
        assert_eq!((drinks.products, drinks.crops_scored), (2, 4));
        assert_eq!(drinks.recall_at_1, Some(0.75));
        assert!((drinks.mean_similarity.unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(drinks.poorly_covered, 1);
        assert_eq!(lines[2].recall_at_1, None);
    }
}
