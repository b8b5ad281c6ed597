//! Train/val/test splits that do not leak.
//!
//! Two rules, chosen by the task:
//! - [`Rule::ByProduct`] (recognition, one-class detection): each product goes
//!   whole into one split, so the model is scored on products it never saw.
//! - [`Rule::FrameBlocks`] (detection with one class per product): every class
//!   must be trained on, so each product's frames are cut into contiguous
//!   blocks in video order (train, then val, then test) with one guard frame
//!   dropped at each boundary: adjacent frames are near duplicates and would
//!   otherwise sit on both sides of a boundary.
//!
//! Both are deterministic: the same keys, ratios and seed give the same splits.

use serde::{Deserialize, Serialize};

/// One of the three splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// How frames are assigned to splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    ByProduct,
    FrameBlocks,
}

impl Rule {
    /// The rule in a sentence, for the dataset page and the export manifest.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::ByProduct => {
                "split by product: every product's frames are in exactly one split, \
                 so val and test hold only products the model never trained on"
            }
            Rule::FrameBlocks => {
                "split by contiguous frame blocks: every product is in train; each video is cut \
                 into a train block, then a val block, then a test block, and the frame at each \
                 boundary is left out so that no two adjacent frames are in different splits"
            }
        }
    }
}

/// The share of each split. They must add up to 1 and train must have some.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    pub train: f64,
    pub val: f64,
    pub test: f64,
}

impl Default for Ratios {
    fn default() -> Self {
        Self {
            train: 0.8,
            val: 0.1,
            test: 0.1,
        }
    }
}

/// Why a split cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    #[error("split ratios must be between 0 and 1; got train {train}, val {val}, test {test}")]
    OutOfRange { train: f64, val: f64, test: f64 },
    #[error("split ratios must add up to 1; train {train} + val {val} + test {test} = {sum}")]
    BadSum {
        train: f64,
        val: f64,
        test: f64,
        sum: f64,
    },
    #[error("the train ratio is 0: there would be nothing to train on")]
    NoTrain,
    #[error("nothing to split: the selection is empty")]
    Empty,
    #[error(
        "{what} cannot fill {splits}: the {split} split would be empty \
         (lower the ratios of the splits you do not need to 0, or add more)"
    )]
    SplitLeftEmpty {
        what: String,
        splits: String,
        split: &'static str,
    },
}

impl Ratios {
    pub fn new(train: f64, val: f64, test: f64) -> Result<Self, SplitError> {
        let ratios = Self { train, val, test };
        ratios.validate()?;
        Ok(ratios)
    }

    pub fn validate(&self) -> Result<(), SplitError> {
        let Self { train, val, test } = *self;
        if [train, val, test]
            .iter()
            .any(|r| !r.is_finite() || !(0.0..=1.0).contains(r))
        {
            return Err(SplitError::OutOfRange { train, val, test });
        }
        let sum = train + val + test;
        if (sum - 1.0).abs() > 1e-6 {
            return Err(SplitError::BadSum {
                train,
                val,
                test,
                sum,
            });
        }
        if train == 0.0 {
            return Err(SplitError::NoTrain);
        }
        Ok(())
    }

    fn of(&self, split: Split) -> f64 {
        match split {
            Split::Train => self.train,
            Split::Val => self.val,
            Split::Test => self.test,
        }
    }

    /// The splits with a share, in order.
    pub fn wanted(&self) -> Vec<Split> {
        Split::ALL
            .into_iter()
            .filter(|s| self.of(*s) > 0.0)
            .collect()
    }

    /// How many of `n` go to each wanted split: largest remainders, at least
    /// one each.
    fn counts(&self, n: usize, what: &str) -> Result<Vec<(Split, usize)>, SplitError> {
        let wanted = self.wanted();
        if n < wanted.len() {
            let split = wanted[n.min(wanted.len() - 1)].as_str();
            return Err(SplitError::SplitLeftEmpty {
                what: what.to_owned(),
                splits: wanted
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                split,
            });
        }
        let exact: Vec<f64> = wanted.iter().map(|s| self.of(*s) * n as f64).collect();
        let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
        let mut left = n - counts.iter().sum::<usize>();
        let mut by_remainder: Vec<usize> = (0..wanted.len()).collect();
        by_remainder.sort_by(|a, b| {
            let (ra, rb) = (exact[*a] - exact[*a].floor(), exact[*b] - exact[*b].floor());
            rb.total_cmp(&ra).then(a.cmp(b))
        });
        for i in by_remainder {
            if left == 0 {
                break;
            }
            counts[i] += 1;
            left -= 1;
        }
        // Every wanted split gets one, taken from the largest.
        for i in 0..counts.len() {
            if counts[i] == 0 {
                let largest = (0..counts.len()).max_by_key(|j| counts[*j]).unwrap_or(0);
                counts[largest] -= 1;
                counts[i] = 1;
            }
        }
        Ok(wanted.into_iter().zip(counts).collect())
    }
}

/// Splits whole groups (products), keyed by stable bytes (a product id):
/// returns each key's split, in the order given.
pub fn by_product<K: AsRef<[u8]>>(
    keys: &[K],
    ratios: &Ratios,
    seed: u64,
) -> Result<Vec<Split>, SplitError> {
    ratios.validate()?;
    if keys.is_empty() {
        return Err(SplitError::Empty);
    }
    let counts = ratios.counts(keys.len(), &format!("{} products", keys.len()))?;
    let mut order: Vec<(u64, usize)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (mix(seed ^ fnv1a(k.as_ref())), i))
        .collect();
    order.sort_unstable();
    let mut splits = vec![Split::Train; keys.len()];
    let mut ranked = order.into_iter().map(|(_, i)| i);
    for (split, count) in counts {
        for i in ranked.by_ref().take(count) {
            splits[i] = split;
        }
    }
    Ok(splits)
}

/// Splits one product's `n` frames (in video order) into contiguous blocks:
/// `Some(split)` per frame, `None` for the guard frames left out.
pub fn frame_blocks(n: usize, ratios: &Ratios) -> Result<Vec<Option<Split>>, SplitError> {
    ratios.validate()?;
    if n == 0 {
        return Err(SplitError::Empty);
    }
    let guards = ratios.wanted().len() - 1;
    let usable = n.saturating_sub(guards);
    let counts = ratios.counts(usable, &format!("a product with {n} frames"))?;
    let mut out = Vec::with_capacity(n);
    for (i, (split, count)) in counts.into_iter().enumerate() {
        if i > 0 {
            out.push(None);
        }
        out.extend(std::iter::repeat_n(Some(split), count));
    }
    debug_assert_eq!(out.len(), n);
    Ok(out)
}

/// The fewest frames a product needs under [`frame_blocks`].
pub fn frames_needed(ratios: &Ratios) -> usize {
    let wanted = ratios.wanted().len();
    wanted + wanted.saturating_sub(1)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's finaliser: spreads the seeded key hash over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("product-{i}")).collect()
    }

    #[test]
    fn ratios_must_add_up_and_leave_something_to_train() {
        assert!(Ratios::new(0.8, 0.1, 0.1).is_ok());
        assert!(Ratios::new(1.0, 0.0, 0.0).is_ok());
        let sum = Ratios::new(0.8, 0.2, 0.2).unwrap_err();
        assert!(sum.to_string().contains("add up to 1"), "{sum}");
        assert_eq!(Ratios::new(0.0, 0.5, 0.5), Err(SplitError::NoTrain));
        assert!(matches!(
            Ratios::new(1.2, -0.1, -0.1),
            Err(SplitError::OutOfRange { .. })
        ));
        assert!(matches!(
            Ratios::new(f64::NAN, 0.5, 0.5),
            Err(SplitError::OutOfRange { .. })
        ));
    }

    #[test]
    fn products_split_whole_deterministically_and_in_proportion() {
        let ratios = Ratios::new(0.7, 0.2, 0.1).unwrap();
        let keys = keys(100);
        let a = by_product(&keys, &ratios, 7).unwrap();
        assert_eq!(a, by_product(&keys, &ratios, 7).unwrap(), "same seed");
        assert_ne!(a, by_product(&keys, &ratios, 8).unwrap(), "other seed");
        let count = |s| a.iter().filter(|x| **x == s).count();
        assert_eq!(
            (count(Split::Train), count(Split::Val), count(Split::Test)),
            (70, 20, 10)
        );
        // A product's split does not depend on which others are selected.
        let fewer = by_product(&keys[..99], &ratios, 7).unwrap();
        let moved = fewer.iter().zip(&a).filter(|(x, y)| x != y).count();
        assert!(moved <= 2, "{moved} products moved when one left");
    }

    #[test]
    fn every_wanted_split_gets_a_product_or_the_split_is_refused() {
        let ratios = Ratios::new(0.9, 0.05, 0.05).unwrap();
        let three = by_product(&keys(3), &ratios, 1).unwrap();
        let mut sorted = three.clone();
        sorted.sort();
        assert_eq!(sorted, vec![Split::Train, Split::Val, Split::Test]);
        let two = by_product(&keys(2), &ratios, 1).unwrap_err();
        assert!(
            two.to_string().contains("test split would be empty"),
            "{two}"
        );
        assert_eq!(
            by_product::<String>(&[], &ratios, 1),
            Err(SplitError::Empty)
        );
        let train_only = Ratios::new(1.0, 0.0, 0.0).unwrap();
        assert_eq!(
            by_product(&keys(1), &train_only, 1).unwrap(),
            [Split::Train]
        );
    }

    #[test]
    fn frame_blocks_are_contiguous_and_never_adjacent_across_splits() {
        let ratios = Ratios::new(0.7, 0.15, 0.15).unwrap();
        for n in frames_needed(&ratios)..60 {
            let blocks = frame_blocks(n, &ratios).unwrap();
            assert_eq!(blocks.len(), n);
            for pair in blocks.windows(2) {
                if let [Some(a), Some(b)] = pair {
                    assert_eq!(a, b, "adjacent frames in two splits with {n} frames");
                }
            }
            // Each split is one run, in train, val, test order.
            let runs: Vec<Split> = blocks.iter().flatten().fold(Vec::new(), |mut runs, s| {
                if runs.last() != Some(s) {
                    runs.push(*s);
                }
                runs
            });
            assert_eq!(runs, Split::ALL, "{n} frames: {blocks:?}");
        }
        let blocks = frame_blocks(20, &ratios).unwrap();
        let count = |s| blocks.iter().filter(|x| **x == Some(s)).count();
        assert_eq!(
            (count(Split::Train), count(Split::Val), count(Split::Test)),
            (12, 3, 3)
        );
        let short = frame_blocks(4, &ratios).unwrap_err();
        assert!(short.to_string().contains("4 frames"), "{short}");
        let train_only = Ratios::new(1.0, 0.0, 0.0).unwrap();
        assert_eq!(
            frame_blocks(3, &train_only).unwrap(),
            [Some(Split::Train); 3]
        );
    }
}
