//! How well embeddings find a product among products the model never saw:
//! every validation frame is a query against all the other validation frames,
//! and what counts as a hit is a frame of the same product.
//!
//! The frames of one video are near-duplicates of their neighbours: a query
//! whose nearest frame is the one filmed 40 ms later says nothing about the
//! model. So the frames within `window` positions of the query in its own
//! video are left out of its gallery (the query itself always is). The same
//! product's other frames, further along the turn, still count.
//!
//! Figures (the metric-learning reality check's protocol):
//! - recall@k: the share of queries with a frame of their product among the
//!   k nearest;
//! - mAP@R: with R the number of the query's product frames in its gallery,
//!   the mean over the R nearest of the precision at each hit, divided by R.

use serde::{Deserialize, Serialize};

/// One embedded frame of the evaluation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The product (class) it shows.
    pub label: u32,
    /// The video it came from (frames of one video are near-duplicates).
    pub video: u32,
    /// Its position in that video.
    pub position: u32,
}

/// The figures of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub map_at_r: f64,
    /// Queries that had at least one frame of their product to find.
    pub queries: usize,
}

/// The protocol in a sentence, for pages and manifests.
pub fn describe(window: u32) -> String {
    format!(
        "Each validation frame is a query against every other validation frame, leaving out the \
         frames within {window} of it in its own video (near-duplicates); validation products are \
         never seen in training. Recall@k: a frame of the same product among the k nearest. \
         mAP@R: mean precision over the R nearest, R being the product's frames left to find."
    )
}

/// Scores unit vectors (`vectors[i]` belongs to `samples[i]`), by cosine
/// similarity. Queries with nothing of their product to find are skipped;
/// with none left every figure is 0.
pub fn evaluate(vectors: &[Vec<f32>], samples: &[Sample], window: u32) -> Scores {
    assert_eq!(vectors.len(), samples.len(), "one sample per vector");
    let n = vectors.len();
    let (mut r1, mut r5, mut map, mut queries) = (0.0, 0.0, 0.0, 0usize);
    let mut ranked: Vec<(f32, usize)> = Vec::with_capacity(n);
    for q in 0..n {
        let query = samples[q];
        ranked.clear();
        for (g, sample) in samples.iter().enumerate() {
            let near =
                sample.video == query.video && sample.position.abs_diff(query.position) <= window;
            if g == q || near {
                continue;
            }
            ranked.push((dot(&vectors[q], &vectors[g]), g));
        }
        let relevant = ranked
            .iter()
            .filter(|(_, g)| samples[*g].label == query.label)
            .count();
        if relevant == 0 {
            continue;
        }
        queries += 1;
        // Highest similarity first; ties by position in the set, so the
        // figures do not depend on the sort's stability.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let hit = |i: usize| samples[ranked[i].1].label == query.label;
        if hit(0) {
            r1 += 1.0;
        }
        if (0..ranked.len().min(5)).any(hit) {
            r5 += 1.0;
        }
        let mut found = 0usize;
        let mut precision = 0.0;
        for i in 0..relevant {
            if hit(i) {
                found += 1;
                precision += found as f64 / (i + 1) as f64;
            }
        }
        map += precision / relevant as f64;
    }
    let share = |x: f64| {
        if queries == 0 {
            0.0
        } else {
            x / queries as f64
        }
    };
    Scores {
        recall_at_1: share(r1),
        recall_at_5: share(r5),
        map_at_r: share(map),
        queries,
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(label: u32, position: u32) -> Sample {
        Sample {
            label,
            video: label,
            position,
        }
    }

    fn unit(angle: f32) -> Vec<f32> {
        vec![angle.cos(), angle.sin()]
    }

    #[test]
    fn separated_products_score_one() {
        // Two products, far apart on the circle, four frames each.
        let mut vectors = Vec::new();
        let mut samples = Vec::new();
        for (label, centre) in [(0, 0.0f32), (1, 3.0)] {
            for i in 0..4 {
                vectors.push(unit(centre + i as f32 * 0.01));
                samples.push(sample(label, i * 10));
            }
        }
        let scores = evaluate(&vectors, &samples, 2);
        assert_eq!(scores.queries, 8);
        assert_eq!(scores.recall_at_1, 1.0);
        assert_eq!(scores.recall_at_5, 1.0);
        assert_eq!(scores.map_at_r, 1.0);
    }

    #[test]
    fn near_duplicates_in_the_same_video_do_not_count() {
        // Each product's frames 0 and 1 are identical to each other; its
        // frame 5 lies nearer the other product. With the window, frame 0
        // cannot use frame 1.
        let vectors = vec![
            unit(0.0),
            unit(0.0),
            unit(2.9),
            unit(3.0),
            unit(3.0),
            unit(0.1),
        ];
        let samples = vec![
            sample(0, 0),
            sample(0, 1),
            sample(0, 5),
            sample(1, 0),
            sample(1, 1),
            sample(1, 5),
        ];
        let without = evaluate(&vectors, &samples, 0);
        let with = evaluate(&vectors, &samples, 1);
        // Without the window, frames 0 and 1 find each other: 4 of 6 hit.
        assert!(
            (without.recall_at_1 - 4.0 / 6.0).abs() < 1e-9,
            "{without:?}"
        );
        // With it, every query is left with only the far frame: none hit.
        assert_eq!(with.recall_at_1, 0.0, "{with:?}");
        assert_eq!(with.queries, 6);
    }

    #[test]
    fn map_at_r_counts_the_order_of_hits() {
        // Angles 0, 0.1 and 0.4 are product 0, 0.25 is product 1.
        let vectors = vec![unit(0.0), unit(0.1), unit(0.25), unit(0.4)];
        let samples = vec![sample(0, 0), sample(0, 10), sample(1, 0), sample(0, 20)];
        let scores = evaluate(&vectors, &samples, 0);
        // Each product-0 query has R = 2 frames to find.
        // 0.0 ranks hit, miss, hit: precision 1 at rank 1, AP@R = 1/2.
        // 0.1 ranks hit (0.0), miss (0.25), hit: 1/2.
        // 0.4 ranks miss (0.25), hit (0.1): precision 1/2 at rank 2, AP@R = 1/4.
        // The product-1 query has nothing to find and is skipped.
        assert_eq!(scores.queries, 3);
        assert!(
            (scores.map_at_r - (0.5 + 0.5 + 0.25) / 3.0).abs() < 1e-9,
            "{scores:?}"
        );
        assert!((scores.recall_at_1 - 2.0 / 3.0).abs() < 1e-9, "{scores:?}");
        assert_eq!(scores.recall_at_5, 1.0);
    }
}
