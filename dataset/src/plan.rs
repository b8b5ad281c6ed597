//! What a version holds, decided before anything is rendered: which frames go
//! in which split, how many augmented draws of each, and which frames each
//! shelf composite is made of. Pure and seeded, so generating a version from
//! the same selection and settings plans the same items.

use serde::{Deserialize, Serialize};

use crate::{
    augment::Rng,
    split::{self, Ratios, Rule, Split, SplitError},
};

/// What the dataset trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Detection with one class, `product`.
    Detect,
    /// Detection with one class per product.
    DetectClasses,
    /// Instance segmentation with one class, `product` (masks as polygons).
    Segment,
    /// Recognition: one class per product, one product per image.
    Recognition,
}

impl Task {
    pub const ALL: [Task; 4] = [
        Task::Detect,
        Task::DetectClasses,
        Task::Segment,
        Task::Recognition,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Detect => "detect",
            Task::DetectClasses => "detect_classes",
            Task::Segment => "segment",
            Task::Recognition => "recognition",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            Task::Detect => "detection, one class \"product\"",
            Task::DetectClasses => "detection, one class per product",
            Task::Segment => "segmentation, one class \"product\"",
            Task::Recognition => "recognition, one class per product",
        }
    }

    /// How this task splits: per-product classes need every product in train.
    pub fn rule(self) -> Rule {
        match self {
            Task::DetectClasses => Rule::FrameBlocks,
            _ => Rule::ByProduct,
        }
    }

    /// Whether every product is its own class (otherwise all are `product`).
    pub fn classes_are_products(self) -> bool {
        matches!(self, Task::DetectClasses | Task::Recognition)
    }

    /// Whether the images need the product's mask (labels come from it).
    pub fn needs_masks(self) -> bool {
        !matches!(self, Task::Recognition)
    }
}

/// How a version is drawn from its frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub ratios: Ratios,
    pub seed: u64,
    /// Augmented draws of every train frame (val and test stay as filmed, so
    /// their scores measure real frames).
    pub copies: u32,
    /// Shelf composites in all, shared among the splits by their ratios; each
    /// is made only of its own split's frames.
    pub composites: u32,
    /// Products per composite at most.
    pub per_composite: u32,
    /// Which splits take the products' confirmed real shelf crops
    /// (recognition only; each crop goes to its product's split).
    pub real: RealCrops,
}

/// The splits that take real shelf crops; none by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RealCrops {
    pub train: bool,
    pub val: bool,
    pub test: bool,
}

impl RealCrops {
    pub fn any(self) -> bool {
        self.train || self.val || self.test
    }

    pub fn takes(self, split: Split) -> bool {
        match split {
            Split::Train => self.train,
            Split::Val => self.val,
            Split::Test => self.test,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ratios: Ratios::default(),
            seed: 1,
            copies: 1,
            composites: 0,
            per_composite: 8,
            real: RealCrops::default(),
        }
    }
}

/// Settings that cannot make a version.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error("at most {max} augmented copies per frame; got {got}")]
    TooManyCopies { got: u32, max: u32 },
    #[error("at most {max} composites per version; got {got}")]
    TooManyComposites { got: u32, max: u32 },
    #[error("a composite needs 1 to 40 products; got {0}")]
    BadPerComposite(u32),
    #[error("shelf composites are detection images; a recognition dataset cannot have them")]
    CompositesInRecognition,
    #[error(
        "real shelf crops are images of one product each, without a mask; only a recognition \
         dataset can take them"
    )]
    RealOutsideRecognition,
}

pub const MAX_COPIES: u32 = 20;
pub const MAX_COMPOSITES: u32 = 100_000;

/// Where an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A frame as filmed.
    Frame,
    /// A seeded augmented draw of one frame.
    Augmented,
    /// A shelf composite of several frames.
    Composite,
    /// A confirmed crop of a real shelf photo.
    Real,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Frame => "frame",
            Kind::Augmented => "augmented",
            Kind::Composite => "composite",
            Kind::Real => "real",
        }
    }
}

/// One frame the plan uses: (product index, frame index within the product).
pub type FrameRef = (usize, usize);

/// One planned image.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub split: Split,
    pub kind: Kind,
    pub seed: u64,
    pub sources: Vec<FrameRef>,
}

/// A version's plan: its items in order, and the frames left out as guards.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rule: Rule,
    pub items: Vec<Planned>,
    /// Per product, the split it is in (by-product rule) or `None` (frame blocks).
    pub product_splits: Vec<Option<Split>>,
    pub guard_frames: usize,
}

/// Plans a version. `products` are the products' stable keys (their ids) with
/// how many frames each has, in video order.
pub fn plan<K: AsRef<[u8]>>(
    products: &[(K, usize)],
    task: Task,
    settings: &Settings,
) -> Result<Plan, PlanError> {
    if settings.copies > MAX_COPIES {
        return Err(PlanError::TooManyCopies {
            got: settings.copies,
            max: MAX_COPIES,
        });
    }
    if settings.composites > MAX_COMPOSITES {
        return Err(PlanError::TooManyComposites {
            got: settings.composites,
            max: MAX_COMPOSITES,
        });
    }
    if settings.real.any() && task != Task::Recognition {
        return Err(PlanError::RealOutsideRecognition);
    }
    if settings.composites > 0 {
        if task == Task::Recognition {
            return Err(PlanError::CompositesInRecognition);
        }
        if !(1..=40).contains(&settings.per_composite) {
            return Err(PlanError::BadPerComposite(settings.per_composite));
        }
    }
    let products: Vec<&(K, usize)> = products.iter().filter(|(_, n)| *n > 0).collect();
    let rule = task.rule();
    // Every usable frame's split.
    let mut frame_splits: Vec<Vec<Option<Split>>> = Vec::with_capacity(products.len());
    let mut product_splits = Vec::with_capacity(products.len());
    match rule {
        Rule::ByProduct => {
            let keys: Vec<&[u8]> = products.iter().map(|(k, _)| k.as_ref()).collect();
            let splits = split::by_product(&keys, &settings.ratios, settings.seed)?;
            for ((_, n), split) in products.iter().zip(splits) {
                frame_splits.push(vec![Some(split); *n]);
                product_splits.push(Some(split));
            }
        }
        Rule::FrameBlocks => {
            if products.is_empty() {
                return Err(SplitError::Empty.into());
            }
            for (_, n) in &products {
                frame_splits.push(split::frame_blocks(*n, &settings.ratios)?);
                product_splits.push(None);
            }
        }
    }
    let mut items = Vec::new();
    let mut pools: [Vec<FrameRef>; 3] = Default::default();
    let mut guard_frames = 0;
    let mut next_seed = Rng::new(settings.seed ^ 0x5eed_da7a);
    for (p, splits) in frame_splits.iter().enumerate() {
        for (f, split) in splits.iter().enumerate() {
            let Some(split) = *split else {
                guard_frames += 1;
                continue;
            };
            pools[split_index(split)].push((p, f));
            items.push(Planned {
                split,
                kind: Kind::Frame,
                seed: 0,
                sources: vec![(p, f)],
            });
            if split == Split::Train {
                for _ in 0..settings.copies {
                    items.push(Planned {
                        split,
                        kind: Kind::Augmented,
                        seed: next_seed.next_u64(),
                        sources: vec![(p, f)],
                    });
                }
            }
        }
    }
    // Composites by the splits' ratios (largest share to train), each from its
    // own split's frames only.
    let total = u64::from(settings.composites);
    let mut left = total;
    for split in [Split::Val, Split::Test, Split::Train] {
        let share = match split {
            Split::Train => left,
            Split::Val => (total as f64 * settings.ratios.val).round() as u64,
            Split::Test => (total as f64 * settings.ratios.test).round() as u64,
        }
        .min(left);
        let pool = &pools[split_index(split)];
        if pool.is_empty() {
            continue;
        }
        left -= share;
        for _ in 0..share {
            let seed = next_seed.next_u64();
            let mut rng = Rng::new(seed);
            let count = (settings.per_composite as usize).min(pool.len());
            let sources = (0..count)
                .map(|_| pool[(rng.next_u64() % pool.len() as u64) as usize])
                .collect();
            items.push(Planned {
                split,
                kind: Kind::Composite,
                seed,
                sources,
            });
        }
    }
    Ok(Plan {
        rule,
        items,
        product_splits,
        guard_frames,
    })
}

/// Adds the products' confirmed real crops to a plan: `crops[p]` of product
/// `p` (the index `plan` was given it by), each into its product's split when
/// the settings take real crops there. Sources are `(product, crop)`. Returns
/// how many were added.
pub fn add_real(plan: &mut Plan, crops: &[usize], settings: &Settings) -> usize {
    let mut added = 0;
    for (p, (&count, split)) in crops.iter().zip(&plan.product_splits).enumerate() {
        let Some(split) = *split else { continue };
        if !settings.real.takes(split) {
            continue;
        }
        for c in 0..count {
            plan.items.push(Planned {
                split,
                kind: Kind::Real,
                seed: 0,
                sources: vec![(p, c)],
            });
            added += 1;
        }
    }
    added
}

fn split_index(split: Split) -> usize {
    match split {
        Split::Train => 0,
        Split::Val => 1,
        Split::Test => 2,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn products(n: usize, frames: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("product-{i}"), frames)).collect()
    }

    #[test]
    fn by_product_no_product_is_in_two_splits_even_through_composites() {
        let settings = Settings {
            copies: 2,
            composites: 50,
            per_composite: 6,
            ..Settings::default()
        };
        let plan = plan(&products(20, 10), Task::Detect, &settings).unwrap();
        assert_eq!(plan.rule, Rule::ByProduct);
        let mut seen: HashMap<usize, Split> = HashMap::new();
        for item in &plan.items {
            for (p, _) in &item.sources {
                let split = *seen.entry(*p).or_insert(item.split);
                assert_eq!(split, item.split, "product {p} in two splits");
            }
        }
        let count = |kind: Kind| plan.items.iter().filter(|i| i.kind == kind).count();
        assert_eq!(count(Kind::Frame), 200);
        let train_frames = plan
            .items
            .iter()
            .filter(|i| i.kind == Kind::Frame && i.split == Split::Train)
            .count();
        assert_eq!(
            count(Kind::Augmented),
            2 * train_frames,
            "copies are train only"
        );
        assert_eq!(count(Kind::Composite), 50);
        let val = plan
            .items
            .iter()
            .filter(|i| i.kind == Kind::Composite && i.split == Split::Val)
            .count();
        assert_eq!(val, 5, "composites follow the ratios");
        // Seeds are distinct, and the same settings plan the same items.
        let seeds: HashSet<u64> = plan
            .items
            .iter()
            .filter(|i| i.kind != Kind::Frame)
            .map(|i| i.seed)
            .collect();
        assert_eq!(seeds.len(), count(Kind::Augmented) + 50);
        assert_eq!(
            super::plan(&products(20, 10), Task::Detect, &settings).unwrap(),
            plan
        );
    }

    #[test]
    fn per_product_classes_keep_every_product_in_train_and_leave_guards_out() {
        let plan = plan(&products(3, 20), Task::DetectClasses, &Settings::default()).unwrap();
        assert_eq!(plan.rule, Rule::FrameBlocks);
        assert_eq!(plan.guard_frames, 3 * 2);
        for p in 0..3 {
            let splits: Vec<Split> = plan
                .items
                .iter()
                .filter(|i| i.kind == Kind::Frame && i.sources[0].0 == p)
                .map(|i| i.split)
                .collect();
            assert!(splits.contains(&Split::Train), "product {p} is in train");
        }
    }

    #[test]
    fn real_crops_follow_their_products_split_into_the_splits_that_take_them() {
        let settings = Settings {
            real: RealCrops {
                train: true,
                val: false,
                test: true,
            },
            ..Settings::default()
        };
        let mut plan = plan(&products(10, 4), Task::Recognition, &settings).unwrap();
        let crops: Vec<usize> = (0..10).map(|p| p % 3).collect();
        let added = add_real(&mut plan, &crops, &settings);
        let real: Vec<&Planned> = plan.items.iter().filter(|i| i.kind == Kind::Real).collect();
        assert_eq!(real.len(), added);
        let expected: usize = (0..10)
            .filter(|&p| plan.product_splits[p] != Some(Split::Val))
            .map(|p| crops[p])
            .sum();
        assert_eq!(added, expected);
        for item in real {
            let (p, c) = item.sources[0];
            assert!(c < crops[p]);
            assert_eq!(Some(item.split), plan.product_splits[p]);
        }
        assert_eq!(
            super::plan(&products(5, 5), Task::Detect, &settings).unwrap_err(),
            PlanError::RealOutsideRecognition
        );
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let too_many = Settings {
            copies: 50,
            ..Settings::default()
        };
        assert!(
            plan(&products(5, 5), Task::Detect, &too_many)
                .unwrap_err()
                .to_string()
                .contains("at most 20")
        );
        let composites = Settings {
            composites: 3,
            ..Settings::default()
        };
        assert_eq!(
            plan(&products(5, 5), Task::Recognition, &composites).unwrap_err(),
            PlanError::CompositesInRecognition
        );
        assert!(matches!(
            plan(&products(1, 5), Task::Detect, &Settings::default()).unwrap_err(),
            PlanError::Split(SplitError::SplitLeftEmpty { .. })
        ));
        assert!(matches!(
            plan(&products(0, 5), Task::DetectClasses, &Settings::default()).unwrap_err(),
            PlanError::Split(SplitError::Empty)
        ));
    }
}
