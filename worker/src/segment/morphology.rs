//! Binary-mask clean-up: dilation and erosion with a square, hole filling, and
//! picking the product's connected component.

/// A binary image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Binary {
    pub width: usize,
    pub height: usize,
    pub data: Vec<bool>,
}

impl Binary {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![false; width * height],
        }
    }

    #[cfg(test)]
    pub fn get(&self, x: usize, y: usize) -> bool {
        self.data[y * self.width + x]
    }

    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.data.iter().filter(|&&v| v).count()
    }

    /// Grows set regions by `r` pixels (a (2r+1)-square), in two separable passes.
    pub fn dilate(&self, r: usize) -> Self {
        self.filter(r, true)
    }

    /// Shrinks set regions by `r` pixels.
    pub fn erode(&self, r: usize) -> Self {
        self.filter(r, false)
    }

    /// Dilation then erosion: closes gaps and notches narrower than 2r.
    pub fn close(&self, r: usize) -> Self {
        self.dilate(r).erode(r)
    }

    /// Erosion then dilation: removes specks and spurs thinner than 2r.
    pub fn open(&self, r: usize) -> Self {
        self.erode(r).dilate(r)
    }

    /// `grow`: a pixel is set when any pixel within `r` is (dilation); otherwise
    /// when all those inside the image are (erosion). Two separable sweeps with
    /// running counts: linear in the image, whatever `r`.
    fn filter(&self, r: usize, grow: bool) -> Self {
        if r == 0 {
            return self.clone();
        }
        let rows = sweep(&self.data, self.width, self.height, r, grow, true);
        Self {
            width: self.width,
            height: self.height,
            data: sweep(&rows, self.width, self.height, r, grow, false),
        }
    }

    /// Sets every unset region that does not reach the border: holes inside the
    /// product (a white label on a white wall, a specular highlight).
    pub fn fill_holes(&self) -> Self {
        let (w, h) = (self.width, self.height);
        let mut outside = vec![false; w * h];
        let mut stack: Vec<usize> = Vec::new();
        for x in 0..w {
            stack.push(x);
            stack.push((h - 1) * w + x);
        }
        for y in 0..h {
            stack.push(y * w);
            stack.push(y * w + w - 1);
        }
        while let Some(i) = stack.pop() {
            if outside[i] || self.data[i] {
                continue;
            }
            outside[i] = true;
            let (x, y) = (i % w, i / w);
            if x > 0 {
                stack.push(i - 1);
            }
            if x + 1 < w {
                stack.push(i + 1);
            }
            if y > 0 {
                stack.push(i - w);
            }
            if y + 1 < h {
                stack.push(i + w);
            }
        }
        Self {
            width: w,
            height: h,
            data: outside.iter().map(|&o| !o).collect(),
        }
    }

    /// Keeps the component most likely to be the product: the largest, with
    /// components near the picture's centre counting more than those at its edge.
    /// Components smaller than `min_area` pixels never count.
    pub fn keep_product(&self, min_area: usize) -> Self {
        let (w, h) = (self.width, self.height);
        let mut label = vec![0u32; w * h];
        let mut best: Option<(f64, u32)> = None;
        let mut next = 0u32;
        let mut stack = Vec::new();
        for start in 0..w * h {
            if !self.data[start] || label[start] != 0 {
                continue;
            }
            next += 1;
            let (mut count, mut sx, mut sy) = (0usize, 0f64, 0f64);
            stack.push(start);
            label[start] = next;
            while let Some(i) = stack.pop() {
                count += 1;
                let (x, y) = (i % w, i / w);
                sx += x as f64;
                sy += y as f64;
                let mut visit = |j: usize| {
                    if self.data[j] && label[j] == 0 {
                        label[j] = next;
                        stack.push(j);
                    }
                };
                if x > 0 {
                    visit(i - 1);
                }
                if x + 1 < w {
                    visit(i + 1);
                }
                if y > 0 {
                    visit(i - w);
                }
                if y + 1 < h {
                    visit(i + w);
                }
            }
            if count < min_area {
                continue;
            }
            let (cx, cy) = (sx / count as f64, sy / count as f64);
            let off_centre = ((cx / w as f64 - 0.5).powi(2) + (cy / h as f64 - 0.5).powi(2)).sqrt();
            let score = count as f64 * (1.0 - off_centre).max(0.1);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, next));
            }
        }
        let keep = best.map_or(0, |(_, l)| l);
        Self {
            width: w,
            height: h,
            data: label.iter().map(|&l| keep != 0 && l == keep).collect(),
        }
    }
}

/// One direction of a square filter.
fn sweep(src: &[bool], w: usize, h: usize, r: usize, grow: bool, horizontal: bool) -> Vec<bool> {
    let (lines, len) = if horizontal { (h, w) } else { (w, h) };
    let at = |line: usize, i: usize| {
        if horizontal {
            line * w + i
        } else {
            i * w + line
        }
    };
    let mut out = vec![false; w * h];
    let mut prefix = vec![0usize; len + 1];
    for line in 0..lines {
        for i in 0..len {
            prefix[i + 1] = prefix[i] + usize::from(src[at(line, i)]);
        }
        for i in 0..len {
            let (from, to) = (i.saturating_sub(r), (i + r).min(len - 1));
            let set = prefix[to + 1] - prefix[from];
            out[at(line, i)] = if grow { set > 0 } else { set == to - from + 1 };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_rows(rows: &[&str]) -> Binary {
        let width = rows[0].len();
        Binary {
            width,
            height: rows.len(),
            data: rows
                .iter()
                .flat_map(|r| r.chars().map(|c| c == '#'))
                .collect(),
        }
    }

    #[test]
    fn holes_are_filled_but_bays_open_to_the_border_are_not() {
        let mask = from_rows(&[
            "......", //
            ".####.", //
            ".#..#.", //
            ".####.", //
            "...#..", //
            "...#..",
        ]);
        let filled = mask.fill_holes();
        assert!(filled.get(2, 2) && filled.get(3, 2));
        assert!(!filled.get(0, 0) && !filled.get(2, 5));
    }

    #[test]
    fn closing_bridges_gaps_and_opening_removes_specks() {
        let mask = from_rows(&[
            "#.......", //
            "........", //
            "..##.##.", //
            "..##.##.", //
            "........",
        ]);
        let opened = mask.open(1);
        assert!(!opened.get(0, 0), "a lone pixel is a speck");
        let closed = mask.close(1);
        assert!(closed.get(4, 2), "a one-pixel gap closes");
    }

    #[test]
    fn the_central_component_wins_over_an_edge_one_of_similar_size() {
        let mask = from_rows(&[
            "##.......", //
            "##.......", //
            "...###...", //
            "...###...", //
            ".........",
        ]);
        let kept = mask.keep_product(1);
        assert!(kept.get(4, 2) && !kept.get(0, 0));
        assert_eq!(kept.count(), 6);
        assert_eq!(Binary::new(3, 3).keep_product(1).count(), 0);
    }
}
