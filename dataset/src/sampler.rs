//! Training batches of P products x K frames: metric-learning losses need
//! several frames of each product in a batch (the positives) and several
//! products (the negatives). One epoch has as many batches as it takes to
//! show every training frame about once; which products and frames go into
//! each is drawn from the run's generator, so a run resumed from the
//! generator's state at the start of an epoch draws the same batches.

use crate::augment::Rng;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    #[error("training needs at least 2 products in the train split, it has {0}")]
    TooFewProducts(usize),
    #[error(
        "product {label} has {frames} training frames; a batch takes K = {k} of each (lower K, \
         or add frames)"
    )]
    TooFewFrames { label: u32, frames: usize, k: usize },
    #[error("P (products per batch) must be at least 2 and K (frames per product) at least 2")]
    BadShape,
}

#[derive(Debug, Clone)]
pub struct PkSampler {
    /// Item indices per class, classes in label order.
    classes: Vec<Vec<usize>>,
    p: usize,
    k: usize,
    items: usize,
}

impl PkSampler {
    /// `labels[i]` is item i's class (0..n). P is lowered to the number of
    /// classes when there are fewer.
    pub fn new(labels: &[u32], p: usize, k: usize) -> Result<Self, SamplerError> {
        if p < 2 || k < 2 {
            return Err(SamplerError::BadShape);
        }
        let count = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        let mut classes = vec![Vec::new(); count];
        for (i, &label) in labels.iter().enumerate() {
            classes[label as usize].push(i);
        }
        let present = classes.iter().filter(|c| !c.is_empty()).count();
        if present < 2 {
            return Err(SamplerError::TooFewProducts(present));
        }
        if let Some((label, members)) = classes
            .iter()
            .enumerate()
            .find(|(_, c)| !c.is_empty() && c.len() < k)
        {
            return Err(SamplerError::TooFewFrames {
                label: label as u32,
                frames: members.len(),
                k,
            });
        }
        classes.retain(|c| !c.is_empty());
        Ok(Self {
            p: p.min(classes.len()),
            classes,
            k,
            items: labels.len(),
        })
    }

    pub fn batch_size(&self) -> usize {
        self.p * self.k
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.items.div_ceil(self.batch_size()).max(1)
    }

    /// The item indices of every batch of one epoch. Products come in a
    /// shuffled order, P at a time (re-shuffled when the order runs out);
    /// each gets K distinct frames.
    pub fn epoch(&self, rng: &mut Rng) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.classes.len()).collect();
        let mut next = order.len();
        let mut batches = Vec::with_capacity(self.batches_per_epoch());
        for _ in 0..self.batches_per_epoch() {
            let mut batch = Vec::with_capacity(self.batch_size());
            let mut chosen: Vec<usize> = Vec::with_capacity(self.p);
            while chosen.len() < self.p {
                if next == order.len() {
                    rng.shuffle(&mut order);
                    next = 0;
                }
                let class = order[next];
                next += 1;
                if !chosen.contains(&class) {
                    chosen.push(class);
                }
            }
            for class in chosen {
                let mut members = self.classes[class].clone();
                // A partial shuffle: the first K are a uniform draw.
                for i in 0..self.k {
                    let j = i + rng.below(members.len() - i);
                    members.swap(i, j);
                }
                batch.extend_from_slice(&members[..self.k]);
            }
            batches.push(batch);
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_p_products_of_k_distinct_frames() {
        // 5 products of 6 frames.
        let labels: Vec<u32> = (0..30).map(|i| i / 6).collect();
        let sampler = PkSampler::new(&labels, 3, 4).unwrap();
        assert_eq!(sampler.batch_size(), 12);
        assert_eq!(sampler.batches_per_epoch(), 3);
        let mut rng = Rng::new(7);
        let epoch = sampler.epoch(&mut rng);
        assert_eq!(epoch.len(), 3);
        for batch in &epoch {
            assert_eq!(batch.len(), 12);
            let mut products: Vec<u32> = batch.iter().map(|&i| labels[i]).collect();
            products.dedup();
            assert_eq!(products.len(), 3, "{batch:?}");
            let mut items = batch.clone();
            items.sort();
            items.dedup();
            assert_eq!(items.len(), 12, "a frame twice in one batch: {batch:?}");
        }
        // The same generator state draws the same epoch.
        assert_eq!(sampler.epoch(&mut Rng::new(7)), epoch);
        assert_ne!(sampler.epoch(&mut rng), epoch);
    }

    #[test]
    fn refusals_name_the_problem() {
        let one: Vec<u32> = vec![0; 10];
        assert_eq!(
            PkSampler::new(&one, 2, 2).unwrap_err(),
            SamplerError::TooFewProducts(1)
        );
        let short = [0, 0, 0, 0, 1, 1];
        assert_eq!(
            PkSampler::new(&short, 2, 3).unwrap_err(),
            SamplerError::TooFewFrames {
                label: 1,
                frames: 2,
                k: 3
            }
        );
        assert_eq!(
            PkSampler::new(&short, 1, 2).unwrap_err(),
            SamplerError::BadShape
        );
        // More products asked per batch than there are: all of them.
        let two = [0, 0, 1, 1];
        assert_eq!(PkSampler::new(&two, 8, 2).unwrap().batch_size(), 4);
    }
}
