//! SAM 3 through libtorch (see the `buybuddy-vision` crate): the product found
//! by the grounding prompt, CUDA when the worker has it.

use std::path::Path;

use buybuddy_vision::{Sam3, Sam3Options};
use image::{GrayImage, RgbImage};

use super::Segmenter;

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
}
