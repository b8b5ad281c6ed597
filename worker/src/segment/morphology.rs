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
        let (w, h) = (self.width as f64, self.height as f64);
        let components = self.components();
        let best = components
            .parts
            .iter()
            .enumerate()
            .filter(|(_, part)| part.area >= min_area)
            .map(|(i, part)| {
                let (cx, cy) = part.centre();
                let off_centre = ((cx / w - 0.5).powi(2) + (cy / h - 0.5).powi(2)).sqrt();
                (part.area as f64 * (1.0 - off_centre).max(0.1), i)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match best {
            Some((_, keep)) => components.only(|i| i == keep),
            None => Self::new(self.width, self.height),
        }
    }

    /// Sets the pixels of narrow gaps within a row: an upright product is
    /// solid across each row, and this closes a seam where shading makes the
    /// product match the wall for a few columns.
    /// Gaps wider than `widest` stay open (a notch between two parts).
    pub fn fill_rows(&self, widest: usize) -> Self {
        let mut out = self.clone();
        for row in out.data.chunks_mut(self.width) {
            let mut last_set: Option<usize> = None;
            for x in 0..row.len() {
                if !row[x] {
                    continue;
                }
                if let Some(previous) = last_set
                    && x - previous - 1 <= widest
                {
                    row[previous + 1..x].iter_mut().for_each(|v| *v = true);
                }
                last_set = Some(x);
            }
        }
        out
    }

    /// Carries every column that starts in the object's upper half down to
    /// the object's base: an upright product stands on one base line, so a
    /// column that stops short has lost its lower part to a surface of the
    /// same colour (the shaded side of a white box against a pale table).
    pub fn extend_to_base(&self) -> Self {
        let w = self.width;
        let runs: Vec<(usize, usize, usize)> = (0..w)
            .filter_map(|x| {
                let set = |y: &usize| self.data[y * w + x];
                let top = (0..self.height).find(set)?;
                let bottom = (0..self.height).rev().find(set)?;
                Some((x, top, bottom))
            })
            .collect();
        if runs.len() < 3 {
            return self.clone();
        }
        let top = runs.iter().map(|r| r.1).min().unwrap_or(0);
        let mut bottoms: Vec<usize> = runs.iter().map(|r| r.2).collect();
        bottoms.sort_unstable();
        let base = bottoms[bottoms.len() * 3 / 4];
        let middle = top + (base.saturating_sub(top)) / 2;
        let mut out = self.clone();
        // A ragged edge of a pixel or two is not a lost part.
        let slack = (base.saturating_sub(top) / 25).max(2);
        for &(x, column_top, column_bottom) in &runs {
            if column_top <= middle && column_bottom + slack < base {
                for y in column_bottom..=base {
                    out.data[y * w + x] = true;
                }
            }
        }
        out
    }

    /// Pixels set in both.
    pub fn and(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a && b)
    }

    /// Pixels set here and not in `other`.
    pub fn minus(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a && !b)
    }

    fn zip(&self, other: &Self, f: impl Fn(bool, bool) -> bool) -> Self {
        Self {
            width: self.width,
            height: self.height,
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        }
    }

    /// The 4-connected components of the set pixels.
    pub fn components(&self) -> Components {
        let (w, h) = (self.width, self.height);
        let mut label = vec![u32::MAX; w * h];
        let mut parts = Vec::new();
        let mut stack = Vec::new();
        for start in 0..w * h {
            if !self.data[start] || label[start] != u32::MAX {
                continue;
            }
            let id = parts.len() as u32;
            let mut part = Part::EMPTY;
            stack.push(start);
            label[start] = id;
            while let Some(i) = stack.pop() {
                let (x, y) = (i % w, i / w);
                part.add(x, y);
                let mut visit = |j: usize| {
                    if self.data[j] && label[j] == u32::MAX {
                        label[j] = id;
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
            parts.push(part);
        }
        Components {
            width: w,
            height: h,
            label,
            parts,
        }
    }

    /// The box around the set pixels, as (x0, y0, x1, y1) inclusive.
    pub fn extent(&self) -> Option<(usize, usize, usize, usize)> {
        let mut part: Option<Part> = None;
        for (i, _) in self.data.iter().enumerate().filter(|(_, set)| **set) {
            part.get_or_insert(Part::EMPTY)
                .add(i % self.width, i / self.width);
        }
        part.map(|p| (p.x0, p.y0, p.x1, p.y1))
    }
}

/// A binary image's connected components.
pub struct Components {
    width: usize,
    height: usize,
    /// Each pixel's component (`u32::MAX` where unset).
    label: Vec<u32>,
    pub parts: Vec<Part>,
}

impl Components {
    /// The pixels of the components `keep` accepts (by index into `parts`).
    pub fn only(&self, keep: impl Fn(usize) -> bool) -> Binary {
        let kept: Vec<bool> = (0..self.parts.len()).map(keep).collect();
        Binary {
            width: self.width,
            height: self.height,
            data: self
                .label
                .iter()
                .map(|&l| l != u32::MAX && kept[l as usize])
                .collect(),
        }
    }
}

/// One component's size and place.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub area: usize,
    sum_x: f64,
    sum_y: f64,
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl Part {
    const EMPTY: Part = Part {
        area: 0,
        sum_x: 0.0,
        sum_y: 0.0,
        x0: usize::MAX,
        y0: usize::MAX,
        x1: 0,
        y1: 0,
    };

    fn add(&mut self, x: usize, y: usize) {
        self.area += 1;
        self.sum_x += x as f64;
        self.sum_y += y as f64;
        self.x0 = self.x0.min(x);
        self.y0 = self.y0.min(y);
        self.x1 = self.x1.max(x);
        self.y1 = self.y1.max(y);
    }

    pub fn centre(&self) -> (f64, f64) {
        (self.sum_x / self.area as f64, self.sum_y / self.area as f64)
    }

    pub fn height(&self) -> usize {
        self.y1 + 1 - self.y0
    }

    pub fn width(&self) -> usize {
        self.x1 + 1 - self.x0
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
