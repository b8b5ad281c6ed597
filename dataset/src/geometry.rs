//! Labels from a mask: its box, its area and the outlines of its parts.
//!
//! A pixel belongs to the product when its mask value is at least 128. Outlines
//! run along pixel edges (vertices at pixel corners), so a polygon's box is
//! exactly the mask's box and, for a part without holes, the polygon's area is
//! exactly its pixel count. Parts are 8-connected; holes are not traced (COCO
//! polygons cannot carry them; the area still counts only mask pixels).

use image::GrayImage;
use serde::{Deserialize, Serialize};

/// A box in pixels: left, top, width, height (COCO's `bbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxPx {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl BoxPx {
    /// Centre x, centre y, width, height as fractions of the image (YOLO).
    pub fn normalised(&self, width: u32, height: u32) -> [f64; 4] {
        let (iw, ih) = (f64::from(width), f64::from(height));
        [
            (f64::from(self.x) + f64::from(self.w) / 2.0) / iw,
            (f64::from(self.y) + f64::from(self.h) / 2.0) / ih,
            f64::from(self.w) / iw,
            f64::from(self.h) / ih,
        ]
    }
}

/// A closed outline: vertices at pixel corners, in order, not repeated at the end.
pub type Polygon = Vec<[u32; 2]>;

fn inside(mask: &GrayImage, x: i64, y: i64) -> bool {
    x >= 0
        && y >= 0
        && x < i64::from(mask.width())
        && y < i64::from(mask.height())
        && mask.get_pixel(x as u32, y as u32).0[0] >= 128
}

/// The smallest box holding every mask pixel; `None` for an empty mask.
pub fn bbox(mask: &GrayImage) -> Option<BoxPx> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (y, row) in mask.rows().enumerate() {
        for (x, p) in row.enumerate() {
            if p.0[0] >= 128 {
                let (x, y) = (x as u32, y as u32);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    (x0 != u32::MAX).then(|| BoxPx {
        x: x0,
        y: y0,
        w: x1 - x0 + 1,
        h: y1 - y0 + 1,
    })
}

/// How many pixels the mask holds.
pub fn area(mask: &GrayImage) -> u64 {
    mask.pixels().filter(|p| p.0[0] >= 128).count() as u64
}

/// The outline of every part of at least `min_pixels` pixels, largest first.
pub fn polygons(mask: &GrayImage, min_pixels: u64) -> Vec<Polygon> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let mut seen = vec![false; w * h];
    let mut parts: Vec<(u64, Polygon)> = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        let (sx, sy) = (start % w, start / w);
        if seen[start] || !inside(mask, sx as i64, sy as i64) {
            continue;
        }
        // Flood the part (8-connected) to count it; its first pixel in raster
        // order is where its outline starts.
        let mut size = 0u64;
        seen[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            for (dx, dy) in [
                (-1, -1),
                (0, -1),
                (1, -1),
                (-1, 0),
                (1, 0),
                (-1, 1),
                (0, 1),
                (1, 1),
            ] {
                let (nx, ny) = (x + dx, y + dy);
                if inside(mask, nx, ny) {
                    let j = ny as usize * w + nx as usize;
                    if !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if size >= min_pixels.max(1) {
            parts.push((size, trace(mask, sx as i64, sy as i64)));
        }
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.0));
    parts.into_iter().map(|(_, p)| p).collect()
}

/// Follows a part's outer boundary along pixel edges with the part on the
/// right, from the top-left corner of its first pixel; keeps only the corners.
fn trace(mask: &GrayImage, x0: i64, y0: i64) -> Polygon {
    let (mut x, mut y) = (x0, y0);
    let (mut dx, mut dy) = (1i64, 0i64);
    let mut corners = vec![[x0 as u32, y0 as u32]];
    loop {
        x += dx;
        y += dy;
        if (x, y) == (x0, y0) {
            break;
        }
        // The two pixels ahead of vertex (x, y), on the left and on the right.
        let (left, right) = match (dx, dy) {
            (1, 0) => ((x, y - 1), (x, y)),
            (0, 1) => ((x, y), (x - 1, y)),
            (-1, 0) => ((x - 1, y), (x - 1, y - 1)),
            _ => ((x - 1, y - 1), (x, y - 1)),
        };
        let (turn_dx, turn_dy) = if inside(mask, left.0, left.1) {
            (dy, -dx)
        } else if inside(mask, right.0, right.1) {
            (dx, dy)
        } else {
            (-dy, dx)
        };
        if (turn_dx, turn_dy) != (dx, dy) {
            corners.push([x as u32, y as u32]);
            (dx, dy) = (turn_dx, turn_dy);
        }
    }
    corners
}

/// The area a polygon encloses (shoelace), in square pixels.
pub fn polygon_area(polygon: &Polygon) -> f64 {
    let n = polygon.len();
    let twice: i64 = (0..n)
        .map(|i| {
            let [x0, y0] = polygon[i];
            let [x1, y1] = polygon[(i + 1) % n];
            i64::from(x0) * i64::from(y1) - i64::from(x1) * i64::from(y0)
        })
        .sum();
    twice.unsigned_abs() as f64 / 2.0
}

/// Drops vertices that lie within `tolerance` pixels of the simplified outline
/// (Douglas-Peucker, run on each half of the closed polygon). Fewer vertices in
/// the label files; `0` keeps every corner.
pub fn simplify(polygon: &Polygon, tolerance: f64) -> Polygon {
    let n = polygon.len();
    if n <= 4 || tolerance <= 0.0 {
        return polygon.clone();
    }
    // Split at the vertex farthest from the first, so each half is an open chain.
    let far = (1..n)
        .max_by_key(|i| {
            let [x, y] = polygon[*i];
            let [x0, y0] = polygon[0];
            (i64::from(x) - i64::from(x0)).pow(2) + (i64::from(y) - i64::from(y0)).pow(2)
        })
        .unwrap_or(n / 2);
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[far] = true;
    let ring: Vec<[u32; 2]> = polygon
        .iter()
        .chain(std::iter::once(&polygon[0]))
        .copied()
        .collect();
    douglas_peucker(&ring, 0, far, tolerance, &mut keep);
    douglas_peucker(&ring, far, n, tolerance, &mut keep);
    let out: Polygon = (0..n).filter(|i| keep[*i]).map(|i| polygon[i]).collect();
    if out.len() < 3 { polygon.clone() } else { out }
}

fn douglas_peucker(points: &[[u32; 2]], a: usize, b: usize, tolerance: f64, keep: &mut [bool]) {
    if b <= a + 1 {
        return;
    }
    let [ax, ay] = points[a].map(f64::from);
    let [bx, by] = points[b].map(f64::from);
    let (vx, vy) = (bx - ax, by - ay);
    let length = (vx * vx + vy * vy).sqrt();
    let (mut worst, mut at) = (0.0, a);
    for (i, point) in points.iter().enumerate().take(b).skip(a + 1) {
        let [px, py] = point.map(f64::from);
        let d = if length == 0.0 {
            ((px - ax).powi(2) + (py - ay).powi(2)).sqrt()
        } else {
            ((px - ax) * vy - (py - ay) * vx).abs() / length
        };
        if d > worst {
            (worst, at) = (d, i);
        }
    }
    if worst > tolerance {
        keep[at % keep.len()] = true;
        douglas_peucker(points, a, at, tolerance, keep);
        douglas_peucker(points, at, b, tolerance, keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_of(w: u32, h: u32, on: impl Fn(u32, u32) -> bool) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| image::Luma([if on(x, y) { 255 } else { 0 }]))
    }

    fn polygon_box(p: &Polygon) -> BoxPx {
        let xs = p.iter().map(|v| v[0]);
        let ys = p.iter().map(|v| v[1]);
        let (x0, x1) = (xs.clone().min().unwrap(), xs.max().unwrap());
        let (y0, y1) = (ys.clone().min().unwrap(), ys.max().unwrap());
        BoxPx {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    #[test]
    fn a_rectangle_is_four_corners_its_box_and_its_area() {
        let mask = mask_of(20, 10, |x, y| (3..8).contains(&x) && (2..6).contains(&y));
        let b = bbox(&mask).unwrap();
        assert_eq!(
            b,
            BoxPx {
                x: 3,
                y: 2,
                w: 5,
                h: 4
            }
        );
        assert_eq!(area(&mask), 20);
        let polys = polygons(&mask, 1);
        assert_eq!(polys, vec![vec![[3, 2], [8, 2], [8, 6], [3, 6]]]);
        assert_eq!(polygon_area(&polys[0]), 20.0);
        let [cx, cy, w, h] = b.normalised(20, 10);
        assert_eq!([cx, cy, w, h], [0.275, 0.4, 0.25, 0.4]);
    }

    #[test]
    fn outlines_match_the_pixels_of_irregular_parts() {
        // A disc with a notch and a diagonal tail, plus a separate speck.
        let mask = mask_of(64, 64, |x, y| {
            let (dx, dy) = (x as i32 - 30, y as i32 - 28);
            let disc = dx * dx + dy * dy <= 15 * 15 && !(x > 30 && (26..30).contains(&y));
            let tail = (38..52).contains(&x) && x == y;
            let speck = (58..60).contains(&x) && (2..4).contains(&y);
            disc || tail || speck
        });
        let polys = polygons(&mask, 1);
        assert_eq!(
            polys.len(),
            2,
            "disc with its tail (8-connected), and the speck"
        );
        // The disc's outline encloses exactly its pixels (it has no holes).
        let speckless = mask_of(64, 64, |x, y| mask.get_pixel(x, y).0[0] > 0 && x < 56);
        assert_eq!(polygon_area(&polys[0]), area(&speckless) as f64);
        assert_eq!(polygon_box(&polys[0]), bbox(&speckless).unwrap());
        assert_eq!(polygon_area(&polys[1]), 4.0);
        assert_eq!(
            polygons(&mask, 5).len(),
            1,
            "the speck is under the minimum"
        );
        assert!(polygons(&mask_of(8, 8, |_, _| false), 1).is_empty());
        assert_eq!(bbox(&mask_of(8, 8, |_, _| false)), None);
    }

    #[test]
    fn a_part_touching_the_image_edges_is_closed_on_them() {
        let mask = mask_of(6, 6, |_, _| true);
        assert_eq!(
            polygons(&mask, 1),
            vec![vec![[0, 0], [6, 0], [6, 6], [0, 6]]]
        );
    }

    #[test]
    fn simplifying_keeps_the_shape_within_the_tolerance() {
        let mask = mask_of(200, 200, |x, y| {
            let (dx, dy) = (x as f64 - 100.0, y as f64 - 100.0);
            dx * dx + dy * dy <= 80.0 * 80.0
        });
        let outline = polygons(&mask, 1).remove(0);
        let simple = simplify(&outline, 1.5);
        assert!(
            simple.len() * 3 < outline.len(),
            "{} of {}",
            simple.len(),
            outline.len()
        );
        let (a, b) = (polygon_area(&outline), polygon_area(&simple));
        assert!((a - b).abs() / a < 0.02, "area {a} became {b}");
        assert_eq!(simplify(&outline, 0.0), outline);
    }
}
