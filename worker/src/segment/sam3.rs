//! SAM 3 through libtorch (see the `buybuddy-vision` crate): the product found
//! by the grounding prompt, CUDA when the worker has it.

use std::path::Path;

use buybuddy_vision::{Sam3, Sam3Options};
use image::{GrayImage, RgbImage};

use super::{BoundingBox, Instance, Segmenter};

pub struct Sam3Segmenter {
    model: Sam3,
}

impl Sam3Segmenter {
    /// Loads the exported model; a broken or mismatched export fails here.
    pub fn load(path: &Path, options: Sam3Options) -> anyhow::Result<Self> {
        Ok(Self {
            model: Sam3::load(path, options)?,
        })
    }

    pub fn describe(&self) -> String {
        self.model.describe()
    }
}

impl Segmenter for Sam3Segmenter {
    fn name(&self) -> &'static str {
        "sam3"
    }

    fn segment(&self, frames: &[RgbImage], prompt: &str) -> anyhow::Result<Vec<GrayImage>> {
        self.model.segment(frames, prompt)
    }

    fn instances(
        &self,
        photo: &RgbImage,
        prompt: &str,
        min_score: f32,
    ) -> anyhow::Result<Option<Vec<Instance>>> {
        let found = self.model.instances(photo, prompt, min_score)?;
        Ok(Some(
            found
                .into_iter()
                .map(|(score, [x, y, width, height])| Instance {
                    score,
                    bbox: BoundingBox {
                        x,
                        y,
                        width,
                        height,
                    },
                })
                .collect(),
        ))
    }
}
