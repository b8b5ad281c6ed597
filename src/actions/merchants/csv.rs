//! A merchant's product list as a file: CSV in UTF-8 (with or without a byte
//! order mark) or Latin-1, delimited by commas, semicolons or tabs, with a
//! header row. The encoding and the delimiter are found, not asked for; the
//! columns are mapped to our fields by the person importing (with a guess
//! from the header names); every row is checked, and the bad ones are named
//! by their line number and reason.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Data rows in one file at most.
pub const MAX_ROWS: usize = 500_000;

/// A file read into rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `UTF-8` or `Latin-1`.
    pub encoding: &'static str,
    pub delimiter: char,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

/// A data row and the file line it starts on (the header is line 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub cells: Vec<String>,
}

/// The text of a file: UTF-8 when it is valid UTF-8, else Latin-1 (where
/// every byte is a character).
fn decode(bytes: &[u8]) -> (String, &'static str) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), "UTF-8"),
        Err(_) => (bytes.iter().map(|&b| char::from(b)).collect(), "Latin-1"),
    }
}

/// The delimiter the header row uses most (outside quotes): `,`, `;` or tab.
fn delimiter(text: &str) -> char {
    let mut counts = [(',', 0usize), (';', 0), ('\t', 0)];
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '\n' | '\r' if !quoted => break,
            _ if !quoted => {
                if let Some(count) = counts.iter_mut().find(|(d, _)| *d == c) {
                    count.1 += 1;
                }
            }
            _ => {}
        }
    }
    counts
        .iter()
        .max_by_key(|(d, n)| (*n, *d == ','))
        .map_or(',', |(d, _)| *d)
}

/// Reads a file into its header and rows.
pub fn read(bytes: &[u8]) -> Result<Table, String> {
    let (text, encoding) = decode(bytes);
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    let delimiter = delimiter(&text);
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter as u8)
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("the header row cannot be read: {e}"))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if headers.iter().all(String::is_empty) {
        return Err("the first row (the header) is empty".into());
    }
    let mut seen = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !h.is_empty()
            && let Some(first) = seen.insert(h.as_str(), i)
        {
            return Err(format!(
                "the header names {h:?} twice (columns {} and {})",
                first + 1,
                i + 1
            ));
        }
    }
    // Line numbers from the byte where each record starts (the reader's own
    // count leaves out blank lines).
    let newlines: Vec<usize> = text
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let bytes = text.as_bytes();
    let line_at = |mut byte: usize| {
        // A record's position includes the blank lines before it.
        while matches!(bytes.get(byte), Some(b'\n' | b'\r')) {
            byte += 1;
        }
        1 + newlines.partition_point(|&n| n < byte)
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("the file cannot be read as CSV: {e}"))?;
        let line = record.position().map_or(0, |p| line_at(p.byte() as usize));
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(format!("the file has more than {MAX_ROWS} rows"));
        }
        rows.push(Row {
            line,
            cells: record.iter().map(|c| c.trim().to_owned()).collect(),
        });
    }
    Ok(Table {
        encoding,
        delimiter,
        headers,
        rows,
    })
}

/// The fields of a line that matching uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Sku,
    Name,
    Brand,
    Size,
    Barcode,
    ImageUrl,
    Price,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::Sku,
        Field::Name,
        Field::Brand,
        Field::Size,
        Field::Barcode,
        Field::ImageUrl,
        Field::Price,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Sku => "sku",
            Field::Name => "name",
            Field::Brand => "brand",
            Field::Size => "size",
            Field::Barcode => "barcode",
            Field::ImageUrl => "image_url",
            Field::Price => "price",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Field::Sku => "Merchant SKU (required)",
            Field::Name => "Name",
            Field::Brand => "Brand",
            Field::Size => "Size / quantity",
            Field::Barcode => "Barcode",
            Field::ImageUrl => "Image URL",
            Field::Price => "Price",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// Words in a header that say it is this field.
    fn hints(self) -> &'static [&'static str] {
        match self {
            Field::Sku => &[
                "sku",
                "item code",
                "article",
                "artikel",
                "code",
                "ref",
                "item",
                "id",
            ],
            Field::Name => &[
                "name",
                "description",
                "desc",
                "title",
                "product",
                "urun",
                "ad",
            ],
            Field::Brand => &["brand", "marka", "manufacturer", "maker"],
            Field::Size => &[
                "size", "quantity", "qty", "volume", "weight", "content", "gramaj", "net",
            ],
            Field::Barcode => &["barcode", "ean", "gtin", "upc", "barkod"],
            Field::ImageUrl => &["image", "photo", "picture", "img", "gorsel"],
            Field::Price => &["price", "fiyat", "cost", "amount"],
        }
    }
}

/// Which header feeds each field; headers no field takes are kept as extra
/// data.
pub type Mapping = BTreeMap<Field, String>;

/// A first mapping from the header names, for the person to correct: each
/// field takes the first header that names it (a whole-word match first).
pub fn guess(headers: &[String]) -> Mapping {
    let mut mapping = Mapping::new();
    let words = |h: &str| -> Vec<String> {
        h.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    // Barcodes first: "EAN code" is a barcode, not a SKU.
    let order = [
        Field::Barcode,
        Field::ImageUrl,
        Field::Price,
        Field::Brand,
        Field::Size,
        Field::Sku,
        Field::Name,
    ];
    for field in order {
        let taken: Vec<&String> = mapping.values().collect();
        let found = headers
            .iter()
            .filter(|h| !h.is_empty() && !taken.contains(h))
            .find(|h| {
                let lower = h.to_lowercase();
                let w = words(h);
                field.hints().iter().any(|hint| {
                    if hint.contains(' ') {
                        lower.contains(hint)
                    } else {
                        w.iter().any(|x| x == hint)
                    }
                })
            });
        if let Some(h) = found {
            mapping.insert(field, h.clone());
        }
    }
    mapping
}

/// A line of the list, read and checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineInput {
    pub line: usize,
    pub sku: String,
    pub name: Option<String>,
    pub brand: Option<String>,
    pub size: Option<String>,
    pub barcode: Option<String>,
    pub image_url: Option<String>,
    /// As a decimal number with a point.
    pub price: Option<String>,
    pub extra: BTreeMap<String, String>,
}

/// A row left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadLine {
    pub line: usize,
    pub sku: Option<String>,
    pub reason: String,
}

/// Whether a barcode as given is a GTIN's shape: 8, 12, 13 or 14 digits
/// (spaces and dashes aside). Its check digit is a separate question.
pub fn barcode_shape_ok(barcode: &str) -> bool {
    let digits: String = barcode
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    digits.chars().all(|c| c.is_ascii_digit()) && matches!(digits.len(), 8 | 12 | 13 | 14)
}

/// A price as a decimal number with a point (`1.234,50` and `1,234.50` are
/// both 1234.50), or `None` when it is not one.
pub fn price(text: &str) -> Option<String> {
    let t: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, ',' | '.' | '-'))
        .collect();
    if t.is_empty() || !text.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let normal = match (t.rfind(','), t.rfind('.')) {
        (Some(c), Some(d)) if c > d => t.replace('.', "").replace(',', "."),
        (Some(_), Some(_)) => t.replace(',', ""),
        (Some(c), None)
            if t.len() - c - 1 == 3 && t.matches(',').count() >= 1 && !t.starts_with('0') =>
        {
            t.replace(',', "")
        }
        (Some(_), None) => t.replace(',', "."),
        _ => t,
    };
    normal
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|_| normal)
}

/// The lines of a table under a mapping, and the rows left out with their
/// reasons. A mapping that names a header the file lacks, or maps no SKU,
/// is an error of the mapping, not of the lines.
pub fn lines(table: &Table, mapping: &Mapping) -> Result<(Vec<LineInput>, Vec<BadLine>), String> {
    if !mapping.contains_key(&Field::Sku) {
        return Err("map a column to the merchant SKU: lines are told apart by it".into());
    }
    let mut column = BTreeMap::new();
    for (field, header) in mapping {
        let at = table
            .headers
            .iter()
            .position(|h| h == header)
            .ok_or_else(|| format!("the file has no column {header:?} (for {})", field.as_str()))?;
        column.insert(*field, at);
    }
    let mapped: Vec<usize> = column.values().copied().collect();
    let mut good = Vec::with_capacity(table.rows.len());
    let mut bad = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for row in &table.rows {
        let cell = |field: Field| {
            column
                .get(&field)
                .and_then(|&i| row.cells.get(i))
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
        };
        let sku = cell(Field::Sku);
        let refuse = |reason: String| BadLine {
            line: row.line,
            sku: sku.clone(),
            reason,
        };
        let Some(sku_text) = sku.clone() else {
            bad.push(refuse("no SKU".into()));
            continue;
        };
        if let Some(first) = first_line.get(&sku_text) {
            bad.push(refuse(format!("the SKU is also on line {first}")));
            continue;
        }
        first_line.insert(sku_text.clone(), row.line);
        let barcode = cell(Field::Barcode);
        if let Some(b) = &barcode
            && !barcode_shape_ok(b)
        {
            bad.push(refuse(format!(
                "the barcode {b:?} is not a GTIN (8, 12, 13 or 14 digits)"
            )));
            continue;
        }
        let image_url = cell(Field::ImageUrl);
        if let Some(url) = &image_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bad.push(refuse(format!("the image URL {url:?} is not http(s)")));
            continue;
        }
        let price = match cell(Field::Price) {
            Some(text) => match price(&text) {
                Some(p) => Some(p),
                None => {
                    bad.push(refuse(format!("the price {text:?} is not a number")));
                    continue;
                }
            },
            None => None,
        };
        let extra = table
            .headers
            .iter()
            .enumerate()
            .filter(|(i, h)| !mapped.contains(i) && !h.is_empty())
            .filter_map(|(i, h)| {
                let value = row.cells.get(i)?.trim();
                (!value.is_empty()).then(|| (h.clone(), value.to_owned()))
            })
            .collect();
        good.push(LineInput {
            line: row.line,
            sku: sku_text,
            name: cell(Field::Name),
            brand: cell(Field::Brand),
            size: cell(Field::Size),
            barcode,
            image_url,
            price,
            extra,
        });
    }
    Ok((good, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(pairs: &[(Field, &str)]) -> Mapping {
        pairs.iter().map(|(f, h)| (*f, (*h).to_owned())).collect()
    }

    #[test]
    fn encodings_and_delimiters_are_found() {
        let utf8 = "\u{feff}SKU;Ürün adı;EAN\n1;Süt 1 L;8690000000001\n".as_bytes();
        let t = read(utf8).unwrap();
        assert_eq!((t.encoding, t.delimiter), ("UTF-8", ';'));
        assert_eq!(t.headers, ["SKU", "Ürün adı", "EAN"]);
        assert_eq!(t.rows[0].cells[1], "Süt 1 L");
        assert_eq!(t.rows[0].line, 2);

        let latin1: Vec<u8> = b"sku\tname\n7\tCaf\xe9 cr\xe8me\n".to_vec();
        let t = read(&latin1).unwrap();
        assert_eq!((t.encoding, t.delimiter), ("Latin-1", '\t'));
        assert_eq!(t.rows[0].cells[1], "Café crème");

        let quoted = b"sku,name,size\n1,\"Cola, zero\",\"1,5 L\"\n\n2,Water,500ml\n";
        let t = read(quoted).unwrap();
        assert_eq!(t.delimiter, ',');
        assert_eq!(t.rows.len(), 2, "blank rows are skipped");
        assert_eq!(t.rows[0].cells, ["1", "Cola, zero", "1,5 L"]);
        assert_eq!(t.rows[1].line, 4);

        assert!(read(b"  \n").unwrap_err().contains("empty"));
        assert!(
            read(b"sku,name,sku\n1,a,2\n")
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn headers_are_guessed_for_the_person_to_correct() {
        let headers: Vec<String> = [
            "Item code",
            "Description",
            "Brand",
            "EAN code",
            "Net content",
            "Image",
            "Price TL",
            "Shelf",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let m = guess(&headers);
        assert_eq!(m[&Field::Sku], "Item code");
        assert_eq!(m[&Field::Name], "Description");
        assert_eq!(m[&Field::Brand], "Brand");
        assert_eq!(m[&Field::Barcode], "EAN code");
        assert_eq!(m[&Field::Size], "Net content");
        assert_eq!(m[&Field::ImageUrl], "Image");
        assert_eq!(m[&Field::Price], "Price TL");
        assert_eq!(m.len(), 7);
    }

    #[test]
    fn bad_rows_are_named_by_line_and_reason_and_the_rest_kept() {
        let file = "sku,name,ean,price,image,aisle\n\
                    A1,Cola 330 ml,5449000000996,\"1,25\",https://x/a.jpg,3\n\
                    ,No sku,,,,\n\
                    A1,Again,,,,\n\
                    A2,Bad ean,12AB,,,\n\
                    A3,Short ean,12345,,,\n\
                    A4,Bad price,,cheap,,\n\
                    A5,Bad url,,,ftp://x,\n\
                    A6,Fine,4006381333931,\"1.234,50\",,7\n";
        let t = read(file.as_bytes()).unwrap();
        let m = mapping(&[
            (Field::Sku, "sku"),
            (Field::Name, "name"),
            (Field::Barcode, "ean"),
            (Field::Price, "price"),
            (Field::ImageUrl, "image"),
        ]);
        let (good, bad) = lines(&t, &m).unwrap();
        let skus: Vec<&str> = good.iter().map(|l| l.sku.as_str()).collect();
        assert_eq!(skus, ["A1", "A6"]);
        assert_eq!(good[0].price.as_deref(), Some("1.25"));
        assert_eq!(good[1].price.as_deref(), Some("1234.50"));
        assert_eq!(good[0].extra["aisle"], "3");
        let reasons: Vec<(usize, &str)> = bad.iter().map(|b| (b.line, b.reason.as_str())).collect();
        assert_eq!(reasons[0], (3, "no SKU"));
        assert_eq!(reasons[1], (4, "the SKU is also on line 2"));
        assert!(reasons[2].1.contains("not a GTIN") && reasons[2].0 == 5);
        assert!(reasons[3].1.contains("not a GTIN"));
        assert!(reasons[4].1.contains("price"));
        assert!(reasons[5].1.contains("not http"));
        assert!(
            lines(&t, &mapping(&[(Field::Name, "name")]))
                .unwrap_err()
                .contains("SKU")
        );
        assert!(
            lines(&t, &mapping(&[(Field::Sku, "code")]))
                .unwrap_err()
                .contains("no column")
        );
    }

    #[test]
    fn prices_read_both_decimal_spellings() {
        assert_eq!(price("12,50").as_deref(), Some("12.50"));
        assert_eq!(price("12.50 TL").as_deref(), Some("12.50"));
        assert_eq!(price("1,234.50").as_deref(), Some("1234.50"));
        assert_eq!(price("1.234,50").as_deref(), Some("1234.50"));
        assert_eq!(price("1,234").as_deref(), Some("1234"));
        assert_eq!(price("free"), None);
    }
}
