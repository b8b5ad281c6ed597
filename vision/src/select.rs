//! Which of a frame's candidate masks is the product.
//!
//! SAM 3 proposes a fixed number of instances per frame, each with a score
//! (query score times the frame's presence score). A video shows one product,
//! so one mask per frame is kept: the best-scoring one, nudged towards the mask
//! that overlaps the previous frame's choice, so that a second object (a shelf
//! edge, a hand, a neighbouring product) does not take over for a frame when its
//! score briefly wins. A frame where nothing reaches the minimum score has no
//! product.

/// How masks are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectParams {
    /// Candidates scoring below this are not the product (SAM 3's own
    /// post-processing keeps instances above 0.3).
    pub min_score: f32,
    /// Weight of the overlap (IoU) with the previous frame's mask, added to the score.
    pub continuity: f32,
    /// Candidates per frame that are compared (the best by score).
    pub top_k: usize,
}

impl Default for SelectParams {
    fn default() -> Self {
        Self {
            min_score: 0.3,
            continuity: 0.5,
            top_k: 4,
        }
    }
}

/// One proposed instance: its score and its mask (true = inside), all masks of
/// a video on the same grid.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub score: f32,
    pub mask: &'a [bool],
}

/// Intersection over union of two masks on the same grid (0 when both are empty).
pub fn iou(a: &[bool], b: &[bool]) -> f32 {
    assert_eq!(a.len(), b.len(), "masks on different grids");
    let (mut both, mut either) = (0u32, 0u32);
    for (&x, &y) in a.iter().zip(b) {
        both += u32::from(x & y);
        either += u32::from(x | y);
    }
    if either == 0 {
        0.0
    } else {
        both as f32 / either as f32
    }
}

/// Chooses one mask per frame, frame after frame, remembering the last choice.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    params: SelectParams,
    previous: Option<Vec<bool>>,
}

impl Tracker {
    pub fn new(params: SelectParams) -> Self {
        Self {
            params,
            previous: None,
        }
    }

    /// The index of the product's mask among this frame's candidates, or None
    /// when the product is not in the frame. A frame without the product does
    /// not reset the memory: the next frame is compared with the last one that
    /// had it.
    pub fn choose(&mut self, candidates: &[Candidate<'_>]) -> Option<usize> {
        let previous = self.previous.as_deref();
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.score >= self.params.min_score && c.mask.iter().any(|&v| v))
            .map(|(i, c)| {
                let overlap = previous.map_or(0.0, |p| iou(p, c.mask));
                (i, c.score + self.params.continuity * overlap)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i)?;
        self.previous = Some(candidates[best].mask.to_vec());
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(score: f32, mask: &[bool]) -> Candidate<'_> {
        Candidate { score, mask }
    }

    /// A 10x10 grid with a filled rectangle.
    fn rect(x0: usize, y0: usize, x1: usize, y1: usize) -> Vec<bool> {
        (0..100)
            .map(|i| {
                let (x, y) = (i % 10, i / 10);
                (x0..x1).contains(&x) && (y0..y1).contains(&y)
            })
            .collect()
    }

    #[test]
    fn overlap_of_masks() {
        let a = rect(0, 0, 4, 4);
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &rect(2, 0, 6, 4)), 8.0 / 24.0);
        assert_eq!(iou(&a, &rect(5, 5, 9, 9)), 0.0);
        assert_eq!(iou(&[false; 4], &[false; 4]), 0.0);
    }

    #[test]
    fn first_frame_takes_the_best_score() {
        let (a, b) = (rect(0, 0, 4, 4), rect(5, 5, 9, 9));
        let mut tracker = Tracker::default();
        let choice = tracker.choose(&[candidate(0.6, &a), candidate(0.9, &b)]);
        assert_eq!(choice, Some(1));
    }

    #[test]
    fn a_slightly_better_other_object_does_not_take_over() {
        let product = rect(2, 2, 7, 8);
        let moved = rect(3, 2, 8, 8);
        let shelf = rect(0, 8, 10, 10);
        let mut tracker = Tracker::default();
        assert_eq!(tracker.choose(&[candidate(0.9, &product)]), Some(0));
        // The shelf scores higher this frame, but the product barely moved.
        let choice = tracker.choose(&[candidate(0.8, &shelf), candidate(0.7, &moved)]);
        assert_eq!(choice, Some(1));
        // A clearly better candidate still wins over continuity.
        let far = rect(0, 0, 2, 2);
        let choice = tracker.choose(&[candidate(0.35, &moved), candidate(0.99, &far)]);
        assert_eq!(choice, Some(1));
    }

    #[test]
    fn absent_product_gives_no_mask_and_keeps_the_memory() {
        let product = rect(2, 2, 7, 8);
        let other = rect(6, 0, 10, 3);
        let mut tracker = Tracker::default();
        tracker.choose(&[candidate(0.9, &product)]);
        // Nothing reaches the minimum score: the product left the frame.
        assert_eq!(
            tracker.choose(&[candidate(0.29, &product), candidate(0.1, &other)]),
            None
        );
        // An empty mask is never the product, whatever its score.
        let empty = vec![false; 100];
        assert_eq!(tracker.choose(&[candidate(0.99, &empty)]), None);
        assert_eq!(tracker.choose(&[]), None);
        // Back again: compared with the last frame that had it.
        let choice = tracker.choose(&[candidate(0.75, &other), candidate(0.6, &product)]);
        assert_eq!(choice, Some(1));
    }
}
