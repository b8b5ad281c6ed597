//! The kinds of scene the segmenter is measured on: the ways people film a
//! product (on a table in front of a wall, in shadow, under changing light,
//! hand-held, low contrast, far away, portrait, of every shape), each alone
//! and all together. A kind makes a different scene for every seed (colours,
//! placement, size, edge height), so figures can be taken on seeds never
//! looked at while tuning.

use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::{BACKGROUND, Backdrop, Look, Product, Scene, Shape};

/// A kind of scene.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub name: &'static str,
    pub about: &'static str,
    make: fn(&mut Draw) -> Scene,
}

impl Kind {
    /// The scene of this kind for `seed`.
    pub fn scene(&self, seed: u64) -> Scene {
        let mut draw = Draw(StdRng::seed_from_u64(seed ^ hash(self.name)));
        Scene {
            seed,
            ..(self.make)(&mut draw)
        }
    }

    pub fn named(name: &str) -> Option<Kind> {
        KINDS.iter().copied().find(|k| k.name == name)
    }
}

fn hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Seeded choices within a kind.
struct Draw(StdRng);

impl Draw {
    fn within(&mut self, low: f32, high: f32) -> f32 {
        self.0.random_range(low..high)
    }

    fn jitter(&mut self, colour: [f32; 3], by: f32) -> [f32; 3] {
        let shift = self.within(-by, by);
        colour.map(|c| (c + shift + self.within(-by, by) * 0.3).clamp(0.0, 255.0))
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.0.random_range(0..from.len())]
    }
}

const WOODS: [[f32; 3]; 4] = [
    [150.0, 108.0, 72.0],
    [118.0, 82.0, 52.0],
    [176.0, 142.0, 104.0],
    [128.0, 124.0, 120.0],
];

/// A product on a table against a wall, the ordinary field video.
fn on_table(draw: &mut Draw, shape: Shape, look: Look) -> Scene {
    let wall = draw.jitter([212.0, 206.0, 196.0], 14.0);
    let wood = draw.pick(&WOODS);
    let table = draw.jitter(wood, 10.0);
    Scene {
        width: 960,
        height: 540,
        frames: 48,
        fps: 24,
        noise: draw.within(3.0, 6.0),
        shake: draw.within(0.002, 0.006),
        turns: draw.within(0.3, 0.8),
        lighting: draw.within(0.03, 0.08),
        lighting_cycles: 1.0,
        backdrop: Backdrop::Table {
            wall,
            table,
            edge: draw.within(0.42, 0.58),
            tilt: draw.within(-0.03, 0.03),
            grain: draw.within(0.0, 6.0),
        },
        shadow: 0.0,
        product: Product {
            shape,
            look,
            height: draw.within(0.5, 0.62),
            offset: draw.within(-0.06, 0.06),
        },
        seed: 0,
    }
}

fn any_shape(draw: &mut Draw) -> Shape {
    draw.pick(&[Shape::Carton, Shape::Can, Shape::Bottle, Shape::Pouch])
}

pub const KINDS: &[Kind] = &[
    Kind {
        name: "plain",
        about: "the original sample: a carton turning before a plain wall",
        make: |draw| Scene {
            backdrop: Backdrop::Wall(draw.jitter(BACKGROUND, 10.0)),
            ..Scene::default()
        },
    },
    Kind {
        name: "table",
        about: "a carton on a table, the wall behind meeting it in a sharp edge",
        make: |draw| on_table(draw, Shape::Carton, Look::Printed),
    },
    Kind {
        name: "shadow",
        about: "a soft shadow cast on the table beside the product",
        make: |draw| {
            let shape = any_shape(draw);
            Scene {
                shadow: draw.within(0.35, 0.55),
                ..on_table(draw, shape, Look::Printed)
            }
        },
    },
    Kind {
        name: "lighting",
        about: "light brightening and dimming by a quarter over the clip",
        make: |draw| {
            let shape = any_shape(draw);
            Scene {
                lighting: draw.within(0.2, 0.3),
                lighting_cycles: draw.within(2.0, 4.0),
                ..on_table(draw, shape, Look::Printed)
            }
        },
    },
    Kind {
        name: "noise",
        about: "heavy sensor noise, as in a dim room",
        make: |draw| {
            let shape = any_shape(draw);
            Scene {
                noise: draw.within(9.0, 13.0),
                ..on_table(draw, shape, Look::Printed)
            }
        },
    },
    Kind {
        name: "shake",
        about: "hand-held: the camera wanders a few pixels",
        make: |draw| {
            let shape = any_shape(draw);
            Scene {
                shake: draw.within(0.008, 0.015),
                ..on_table(draw, shape, Look::Printed)
            }
        },
    },
    Kind {
        name: "strong-shake",
        about: "hand-held with a strong shake, several percent of the picture",
        make: |draw| {
            let shape = any_shape(draw);
            Scene {
                shake: draw.within(0.035, 0.05),
                ..on_table(draw, shape, Look::Printed)
            }
        },
    },
    Kind {
        name: "white-on-white",
        about: "white packaging before a white wall on a pale table",
        make: |draw| {
            let shape = draw.pick(&[Shape::Carton, Shape::Can, Shape::Pouch]);
            let mut scene = on_table(draw, shape, Look::White);
            scene.backdrop = Backdrop::Table {
                wall: draw.jitter([236.0, 236.0, 232.0], 4.0),
                table: draw.jitter([214.0, 210.0, 204.0], 6.0),
                edge: draw.within(0.42, 0.58),
                tilt: draw.within(-0.03, 0.03),
                grain: draw.within(0.0, 3.0),
            };
            scene
        },
    },
    Kind {
        name: "black-on-dark",
        about: "black packaging before a dark wall on a dark table",
        make: |draw| {
            let shape = draw.pick(&[Shape::Carton, Shape::Can, Shape::Pouch]);
            let mut scene = on_table(draw, shape, Look::Black);
            scene.backdrop = Backdrop::Table {
                wall: draw.jitter([66.0, 64.0, 62.0], 6.0),
                table: draw.jitter([84.0, 62.0, 46.0], 6.0),
                edge: draw.within(0.42, 0.58),
                tilt: draw.within(-0.03, 0.03),
                grain: draw.within(0.0, 3.0),
            };
            scene
        },
    },
    Kind {
        name: "pale-bottle",
        about: "a pale bluish bottle before a pale wall",
        make: |draw| {
            let mut scene = on_table(draw, Shape::Bottle, Look::PaleBlue);
            scene.backdrop = Backdrop::Table {
                wall: draw.jitter([224.0, 226.0, 222.0], 5.0),
                table: draw.jitter([176.0, 142.0, 104.0], 8.0),
                edge: draw.within(0.42, 0.58),
                tilt: draw.within(-0.03, 0.03),
                grain: draw.within(0.0, 4.0),
            };
            scene
        },
    },
    Kind {
        name: "small-far",
        about: "a small product far away: a fifth of the height of a 1080p frame",
        make: |draw| {
            let shape = any_shape(draw);
            let mut scene = on_table(draw, shape, Look::Printed);
            scene.width = 1920;
            scene.height = 1080;
            scene.product.height = draw.within(0.18, 0.22);
            scene.product.offset = draw.within(-0.1, 0.1);
            scene
        },
    },
    Kind {
        name: "portrait",
        about: "a portrait video, as phones film upright",
        make: |draw| {
            let shape = any_shape(draw);
            let mut scene = on_table(draw, shape, Look::Printed);
            scene.width = 540;
            scene.height = 960;
            scene.product.height = draw.within(0.7, 0.9);
            scene
        },
    },
    Kind {
        name: "can",
        about: "a can: a cylinder with rounded rims",
        make: |draw| on_table(draw, Shape::Can, Look::Printed),
    },
    Kind {
        name: "bottle",
        about: "a bottle with a narrow neck and a cap",
        make: |draw| on_table(draw, Shape::Bottle, Look::Printed),
    },
    Kind {
        name: "pouch",
        about: "a stand-up pouch, narrower at its sealed top",
        make: |draw| on_table(draw, Shape::Pouch, Look::Printed),
    },
    Kind {
        name: "everything",
        about: "table, shadow, changing light, noise and shake together",
        make: |draw| {
            let shape = any_shape(draw);
            Scene {
                shadow: draw.within(0.3, 0.5),
                lighting: draw.within(0.15, 0.25),
                lighting_cycles: draw.within(1.5, 3.0),
                noise: draw.within(7.0, 10.0),
                shake: draw.within(0.01, 0.03),
                ..on_table(draw, shape, Look::Printed)
            }
        },
    },
];
