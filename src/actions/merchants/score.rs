//! How sure a suggestion is, and why: the signals that compare a merchant's
//! line with a product of the directory (from `sql/merchant_candidates.sql`
//! and the vector index) become one score, kept as its parts so the review
//! screen can say which signals agreed and which disagreed.
//!
//! The weights are set so that a valid barcode match with a name that also
//! agrees clears [`CONFIDENT`] alone, names and images together can, and a
//! disagreeing size or barcode pulls a candidate down: two sizes of one
//! product are two SKUs.

use serde::{Deserialize, Serialize};

/// What the database compares of a (line, product) pair; `None` where one
/// side lacks what is compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Signals {
    /// The barcodes are the same (GTIN-normalised); `None` when either side
    /// has none.
    pub barcode_match: Option<bool>,
    /// The line's barcode's GS1 check digit holds.
    pub barcode_valid: Option<bool>,
    /// pg_trgm similarity of the normalised names, 0 to 1.
    pub name_similarity: Option<f32>,
    /// Shared words over all words of the two normalised names.
    pub word_overlap: Option<f32>,
    pub brand_agrees: Option<bool>,
    pub quantity_agrees: Option<bool>,
    /// Cosine similarity of the line's image and the product's prototype.
    pub image_similarity: Option<f32>,
}

/// One signal's share of the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// `barcode`, `name`, `words`, `brand`, `quantity`, `image`.
    pub signal: String,
    /// Points added (negative: taken away).
    pub points: f32,
    /// What it was, in words.
    pub says: String,
}

/// A suggestion at or above this is confident; below it, review looks harder.
pub const CONFIDENT: f32 = 0.6;

/// Image similarity at which the image starts to count, and where it counts fully.
const IMAGE_FLOOR: f32 = 0.5;
const IMAGE_FULL: f32 = 0.9;

/// The score and its parts.
pub fn score(s: &Signals) -> (f32, Vec<Part>) {
    let mut parts = Vec::new();
    let mut add = |signal: &str, points: f32, says: String| {
        parts.push(Part {
            signal: signal.to_owned(),
            points,
            says,
        });
    };
    match (s.barcode_match, s.barcode_valid) {
        (Some(true), Some(true)) => add("barcode", 0.55, "same barcode (check digit valid)".into()),
        (Some(true), _) => add(
            "barcode",
            0.35,
            "same barcode, but its check digit fails".into(),
        ),
        (Some(false), Some(true)) => add("barcode", -0.2, "different barcode".into()),
        (Some(false), _) => add(
            "barcode",
            -0.05,
            "different barcode (the line's check digit fails: a typo?)".into(),
        ),
        (None, _) => {}
    }
    if let Some(sim) = s.name_similarity {
        add(
            "name",
            0.35 * sim,
            format!("names {:.0}% alike (trigrams)", sim * 100.0),
        );
    }
    if let Some(overlap) = s.word_overlap {
        add(
            "words",
            0.2 * overlap,
            format!("{:.0}% of the words shared", overlap * 100.0),
        );
    }
    match s.brand_agrees {
        Some(true) => add("brand", 0.08, "same brand".into()),
        Some(false) => add("brand", -0.1, "another brand".into()),
        None => {}
    }
    match s.quantity_agrees {
        Some(true) => add("quantity", 0.08, "same size".into()),
        Some(false) => add("quantity", -0.15, "another size".into()),
        None => {}
    }
    if let Some(sim) = s.image_similarity {
        let weight = ((sim - IMAGE_FLOOR) / (IMAGE_FULL - IMAGE_FLOOR)).clamp(0.0, 1.0);
        add("image", 0.35 * weight, format!("images {:.2} similar", sim));
    }
    let total = parts.iter().map(|p| p.points).sum();
    (total, parts)
}

/// Whether a suggestion is an exact barcode match whose name also agrees:
/// what "accept every exact barcode match" takes.
pub fn barcode_and_name_agree(s: &Signals) -> bool {
    s.barcode_match == Some(true)
        && (s.name_similarity.unwrap_or(0.0) >= 0.3 || s.word_overlap.unwrap_or(0.0) >= 0.34)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(similarity: f32, overlap: f32) -> Signals {
        Signals {
            name_similarity: Some(similarity),
            word_overlap: Some(overlap),
            ..Signals::default()
        }
    }

    #[test]
    fn a_valid_barcode_with_an_agreeing_name_is_confident_alone() {
        let s = Signals {
            barcode_match: Some(true),
            barcode_valid: Some(true),
            ..named(0.4, 0.3)
        };
        let (total, parts) = score(&s);
        assert!(total >= CONFIDENT, "{total}");
        assert!(barcode_and_name_agree(&s));
        assert_eq!(parts[0].signal, "barcode");
        assert!(parts[0].says.contains("check digit valid"));
        // The same names without the barcode are not.
        assert!(score(&named(0.4, 0.3)).0 < CONFIDENT);
        // A barcode match whose name disagrees is not taken in bulk.
        assert!(!barcode_and_name_agree(&Signals {
            barcode_match: Some(true),
            ..named(0.1, 0.0)
        }));
    }

    #[test]
    fn a_different_size_or_barcode_pulls_a_candidate_down() {
        let base = named(0.8, 0.8);
        let other_size = Signals {
            quantity_agrees: Some(false),
            ..base
        };
        let same_size = Signals {
            quantity_agrees: Some(true),
            ..base
        };
        assert!(score(&other_size).0 < score(&base).0);
        assert!(score(&same_size).0 > score(&base).0);
        let other_barcode = Signals {
            barcode_match: Some(false),
            barcode_valid: Some(true),
            ..base
        };
        assert!(score(&other_barcode).0 < score(&base).0);
        let (_, parts) = score(&other_size);
        let size = parts.iter().find(|p| p.signal == "quantity").unwrap();
        assert!(size.points < 0.0 && size.says == "another size");
    }

    #[test]
    fn an_image_counts_from_half_similar_and_fully_at_nine_tenths() {
        let image = |sim| {
            score(&Signals {
                image_similarity: Some(sim),
                ..Signals::default()
            })
            .0
        };
        assert_eq!(image(0.4), 0.0);
        assert!((image(0.9) - 0.35).abs() < 1e-6);
        assert!((image(1.0) - 0.35).abs() < 1e-6);
        assert!(image(0.7) > 0.1 && image(0.7) < 0.25);
        // Names and an image together can be confident without a barcode.
        let both = Signals {
            image_similarity: Some(0.95),
            brand_agrees: Some(true),
            quantity_agrees: Some(true),
            ..named(0.6, 0.5)
        };
        assert!(score(&both).0 >= CONFIDENT);
    }
}
