//! Painting one frame of a scene: where the product is, its outline row by
//! row, its colours, and the backdrop around it (wall, table, shadow).

use std::f32::consts::{PI, TAU};

use super::{Backdrop, Look, Scene, Shape};

/// A scene's product placed in one frame.
pub(super) struct Placed<'a> {
    scene: &'a Scene,
    /// Turn of the product, in radians.
    angle: f32,
    /// Camera shake of this frame, in pixels.
    dx: f32,
    dy: f32,
    centre: f32,
    top: f32,
    height: f32,
    /// Widest extent of the outline.
    width: f32,
    /// The carton's visible faces: front and side widths, and which shows left.
    front: f32,
    side: f32,
    side_first: bool,
}

impl<'a> Placed<'a> {
    pub fn new(scene: &'a Scene, angle: f32, dx: f32, dy: f32) -> Self {
        let (w, h) = (scene.width as f32, scene.height as f32);
        let short = w.min(h);
        let product = &scene.product;
        let height = short * product.height;
        let (cos, sin) = (angle.cos(), angle.sin());
        let (front, side) = (
            height * 0.36 / 0.62 * cos.abs(),
            height * 0.16 / 0.62 * sin.abs(),
        );
        let width = match product.shape {
            Shape::Carton => front + side,
            Shape::Can => height * 0.56,
            Shape::Bottle => height * 0.36,
            Shape::Pouch => height * 0.74,
        };
        let top = match scene.backdrop {
            Backdrop::Wall(_) => h / 2.0 - height / 2.0 + dy + short * 0.03,
            // Standing on the table: the base well below the edge.
            Backdrop::Table { edge, .. } => {
                let base = edge * h + (h - edge * h) * 0.55;
                base - height + dy
            }
        };
        Self {
            scene,
            angle,
            dx,
            dy,
            centre: w / 2.0 + product.offset * w + dx,
            top,
            height,
            width,
            front,
            side,
            side_first: (cos >= 0.0) == (sin < 0.0),
        }
    }

    /// Half the outline's width at `v` (0 at the top, 1 at the base), as a
    /// fraction of the widest extent.
    fn profile(&self, v: f32) -> f32 {
        match self.scene.product.shape {
            Shape::Carton => 0.5,
            Shape::Can => {
                // Rims rounded over the top and bottom 4 %.
                let rim = 0.04;
                let edge = v.min(1.0 - v);
                if edge >= rim {
                    0.5
                } else {
                    let k = 1.0 - edge / rim;
                    0.5 * (1.0 - 0.12 * k * k)
                }
            }
            Shape::Bottle => {
                if v < 0.07 {
                    0.17 // cap
                } else if v < 0.22 {
                    0.14 // neck
                } else if v < 0.38 {
                    let k = (v - 0.22) / 0.16;
                    0.14 + (0.5 - 0.14) * (k * PI / 2.0).sin()
                } else if v > 0.97 {
                    0.47
                } else {
                    0.5
                }
            }
            Shape::Pouch => {
                // Sealed top at 80 % width, widening and bulging to the base.
                let bulge = 0.035 * (v * PI).sin();
                0.4 + 0.1 * v.sqrt() + bulge - 0.035
            }
        }
    }

    /// The product's horizontal extent on row `fy`, if it reaches that row.
    pub fn span(&self, fy: f32) -> Option<(f32, f32)> {
        let v = (fy - self.top) / self.height;
        if !(0.0..1.0).contains(&v) {
            return None;
        }
        if self.scene.product.shape == Shape::Carton {
            let left = self.centre - self.width / 2.0;
            return Some((left, left + self.width));
        }
        let half = self.profile(v) * self.width;
        Some((self.centre - half, self.centre + half))
    }

    /// The product's colour at a pixel inside its span.
    pub fn colour(&self, fx: f32, fy: f32, left: f32, right: f32) -> [f32; 3] {
        let v = (fy - self.top) / self.height;
        let look = self.scene.product.look;
        if self.scene.product.shape == Shape::Carton {
            return self.carton(fx - left, v, look);
        }
        // A body of revolution: the surface position from the outline.
        let x = ((fx - left) / (right - left).max(1e-3) * 2.0 - 1.0).clamp(-1.0, 1.0);
        let around = (x.asin() / PI + 0.5) * 0.5 + self.angle / TAU;
        let u = around.rem_euclid(1.0);
        // Light from the upper left: bright across the middle, dark at the sides.
        let shade = 0.6 + 0.4 * (1.0 - x * x).sqrt() - 0.08 * x;
        let base = match self.scene.product.shape {
            Shape::Bottle if v < 0.07 => cap(look),
            Shape::Pouch if v < 0.06 => seal(look),
            _ => print(look, u, v, self.scene.seed),
        };
        let mut colour = base.map(|c| c * shade);
        if look == Look::PaleBlue {
            // A highlight down the body, as on clear plastic.
            let glint = (-((x + 0.35) * 9.0).powi(2)).exp() * 30.0;
            colour = colour.map(|c| c + glint);
        }
        colour
    }

    /// The carton: a front and a side face, the label sliding across the
    /// front as it turns.
    fn carton(&self, u: f32, v: f32, look: Look) -> [f32; 3] {
        let (front, side) = (self.front, self.side);
        let (on_side, local) = if self.side_first {
            (
                u < side,
                if u < side {
                    u / side.max(1e-3)
                } else {
                    (u - side) / front.max(1e-3)
                },
            )
        } else {
            (
                u >= front,
                if u < front {
                    u / front.max(1e-3)
                } else {
                    (u - front) / side.max(1e-3)
                },
            )
        };
        let shift = self.angle / TAU;
        match look {
            Look::Printed if on_side => side_texture(local, v),
            Look::Printed => front_texture((local + shift).rem_euclid(1.0), v),
            // Other looks: the side face turned from the light.
            _ if on_side => print(look, local, v, self.scene.seed).map(|c| c * 0.84),
            _ => print(look, (local + shift).rem_euclid(1.0), v, self.scene.seed),
        }
    }

    /// The backdrop at a pixel the product does not cover.
    pub fn background(&self, fx: f32, fy: f32) -> [f32; 3] {
        let (w, h) = (self.scene.width as f32, self.scene.height as f32);
        match self.scene.backdrop {
            Backdrop::Wall(colour) => {
                // A plain wall with a soft vertical falloff and a darker corner.
                let falloff = 1.0 - 0.10 * (fy / h) - 0.05 * ((fx - w) / w).powi(2);
                colour.map(|c| c * falloff)
            }
            Backdrop::Table {
                wall,
                table,
                edge,
                tilt,
                grain,
            } => {
                // The room moves with the camera.
                let (x, y) = (fx - self.dx, fy - self.dy);
                let edge_y = edge * h + tilt * (x - w / 2.0);
                if y < edge_y {
                    let falloff = 1.0 - 0.08 * (y / h) - 0.06 * ((x - w * 0.3) / w).powi(2);
                    return wall.map(|c| c * falloff);
                }
                // Nearer the camera, the table catches more light.
                let depth = (y - edge_y) / (h - edge_y).max(1.0);
                let light = 0.9 + 0.12 * depth;
                let wood =
                    grain * (x * 0.045 + 2.5 * (y * 0.011).sin() + 1.3 * (x * 0.0071).sin()).sin();
                let shadow = 1.0 - self.scene.shadow * self.shadow_at(fx, fy);
                table.map(|c| (c * light + wood) * shadow)
            }
        }
    }

    /// How much of the light the product's shadow takes at a pixel, 0 to 1:
    /// a soft ellipse on the table to one side of the base, and a contact
    /// shadow just under it.
    fn shadow_at(&self, fx: f32, fy: f32) -> f32 {
        let base = self.top + self.height;
        let side = if self.scene.seed.is_multiple_of(2) {
            1.0
        } else {
            -1.0
        };
        let cx = self.centre + side * self.width * 0.85;
        let (rx, ry) = (self.width * 0.9, self.height * 0.06);
        let d = ((fx - cx) / rx).powi(2) + ((fy - (base - ry * 0.4)) / ry).powi(2);
        let cast = (-d * 1.6).exp();
        let contact_x = ((fx - self.centre) / (self.width * 0.6)).powi(2);
        let contact_y = ((fy - base) / (self.height * 0.02)).powi(2);
        let contact = (-(contact_x + contact_y)).exp();
        cast.max(contact * 0.8)
    }
}

/// Printed packaging for a look, at surface position (u, v).
fn print(look: Look, u: f32, v: f32, seed: u64) -> [f32; 3] {
    let palette = PALETTES[(seed % PALETTES.len() as u64) as usize];
    let logo = ((u - 0.5) * 1.6).hypot(v - 0.3) < 0.13;
    let label = (0.5..0.7).contains(&v) && (0.12..0.88).contains(&u);
    let text = label && ((v - 0.5) * 60.0) as i32 % 3 == 1 && ((u * 23.0) as i32 % 5) != 0;
    let band = v > 0.8 && ((v * 14.0) as i32) % 2 == 0;
    match look {
        Look::Printed => {
            if logo {
                palette[1]
            } else if text {
                [40.0, 40.0, 48.0]
            } else if label {
                [246.0, 246.0, 242.0]
            } else if band {
                palette[2]
            } else {
                palette[0]
            }
        }
        Look::White => {
            if logo {
                [214.0, 218.0, 226.0]
            } else if text {
                [176.0, 176.0, 182.0]
            } else {
                [247.0, 247.0, 245.0]
            }
        }
        Look::Black => {
            if logo {
                [170.0, 140.0, 60.0]
            } else if text {
                [96.0, 96.0, 100.0]
            } else {
                [24.0, 24.0, 27.0]
            }
        }
        Look::PaleBlue => {
            if label {
                [226.0, 234.0, 240.0]
            } else {
                [192.0, 210.0, 226.0]
            }
        }
    }
}

fn cap(look: Look) -> [f32; 3] {
    match look {
        Look::White => [236.0, 236.0, 236.0],
        Look::Black => [30.0, 30.0, 30.0],
        Look::PaleBlue => [70.0, 120.0, 190.0],
        Look::Printed => [240.0, 240.0, 240.0],
    }
}

fn seal(look: Look) -> [f32; 3] {
    match look {
        Look::White => [232.0, 232.0, 228.0],
        Look::Black => [44.0, 44.0, 46.0],
        _ => [200.0, 196.0, 186.0],
    }
}

/// Base, logo and band colours of printed packaging.
const PALETTES: [[[f32; 3]; 3]; 4] = [
    [
        [190.0, 32.0, 45.0],
        [250.0, 204.0, 40.0],
        [30.0, 90.0, 170.0],
    ],
    [
        [28.0, 96.0, 60.0],
        [236.0, 236.0, 230.0],
        [200.0, 160.0, 40.0],
    ],
    [
        [36.0, 70.0, 160.0],
        [240.0, 240.0, 244.0],
        [200.0, 40.0, 40.0],
    ],
    [
        [236.0, 128.0, 24.0],
        [90.0, 30.0, 110.0],
        [250.0, 240.0, 210.0],
    ],
];

/// The original carton's front: a coloured panel with a logo, stripes, text
/// and a white label.
fn front_texture(u: f32, v: f32) -> [f32; 3] {
    let logo = ((u - 0.5) * 1.6).hypot(v - 0.28) < 0.16;
    if logo {
        return [250.0, 204.0, 40.0];
    }
    if (0.52..0.70).contains(&v) && (0.12..0.88).contains(&u) {
        // A white label with lines of dark "text".
        let line = ((v - 0.52) * 60.0) as i32 % 3 == 1 && ((u * 23.0) as i32 % 5) != 0;
        return if line {
            [40.0, 40.0, 48.0]
        } else {
            [246.0, 246.0, 242.0]
        };
    }
    if ((v * 14.0) as i32) % 2 == 0 && v > 0.76 {
        return [30.0, 90.0, 170.0];
    }
    [190.0, 32.0, 45.0]
}

/// The original carton's side: darker, with a nutrition-table block.
fn side_texture(u: f32, v: f32) -> [f32; 3] {
    if (0.45..0.85).contains(&v) && (0.15..0.85).contains(&u) {
        return if ((v * 40.0) as i32) % 2 == 0 {
            [236.0, 236.0, 230.0]
        } else {
            [70.0, 70.0, 74.0]
        };
    }
    [150.0, 24.0, 36.0]
}
