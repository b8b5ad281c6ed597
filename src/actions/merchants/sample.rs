//! Merchant lists made from a directory the way real lists differ from it,
//! with the truth kept beside each line: names abbreviated, reordered, in
//! other cases and with typos; sizes spelled otherwise (`500 ml`, `0.5L`,
//! `50cl`, `500ML`); barcodes missing or wrong (and right ones written as
//! UPC or GTIN-14); brands in the name or in a column of their own; and
//! lines of products the directory does not have. `bench merchants`
//! measures suggestions on such lists; `merchant sample` writes one for the
//! pages to be tried with. Seeded: the same seed makes the same list.

use buybuddy_dataset::augment::Rng;
use serde::Serialize;
use uuid::Uuid;

/// A product of the directory, as a list is made from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Known {
    /// `None` for a product the directory does not have.
    pub id: Option<Uuid>,
    pub barcode: String,
    pub brand: String,
    pub name: String,
    /// As the directory spells it (`500 ml`, `1 L`, `400 g`).
    pub size: String,
}

/// How a list differs from the directory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Differences {
    pub missing_barcode: f64,
    pub wrong_barcode: f64,
    pub typo: f64,
    pub abbreviate: f64,
    pub reorder: f64,
    pub brand_column: f64,
    /// Lines that have an image.
    pub image: f64,
}

impl Default for Differences {
    fn default() -> Self {
        Self {
            missing_barcode: 0.4,
            wrong_barcode: 0.05,
            typo: 0.3,
            abbreviate: 0.5,
            reorder: 0.3,
            brand_column: 0.5,
            image: 0.6,
        }
    }
}

/// A line of a made list, with the product it truly is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleLine {
    pub sku: String,
    pub name: String,
    pub brand: Option<String>,
    pub size: Option<String>,
    pub barcode: Option<String>,
    /// Whether the line has an image (of the product it truly is).
    pub has_image: bool,
    /// The index of the product in the list it was made from.
    pub truth: usize,
}

fn chance(rng: &mut Rng, p: f64) -> bool {
    (rng.next_u64() % 1_000_000) as f64 / 1_000_000.0 < p
}

fn pick<'a, T>(rng: &mut Rng, from: &'a [T]) -> &'a T {
    &from[(rng.next_u64() % from.len() as u64) as usize]
}

/// The EAN-13 check digit of 12 digits.
pub fn check_digit(body: &str) -> u32 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10
}

/// A valid EAN-13 from 12 digits of seed.
pub fn ean13(rng: &mut Rng, prefix: &str) -> String {
    let mut body = prefix.to_owned();
    while body.len() < 12 {
        body.push(char::from(b'0' + (rng.next_u64() % 10) as u8));
    }
    let check = check_digit(&body);
    format!("{body}{check}")
}

const ABBREVIATIONS: &[(&str, &str)] = &[
    ("chocolate", "choc"),
    ("original", "orig"),
    ("strawberry", "strwb"),
    ("vanilla", "van"),
    ("classic", "clsc"),
    ("orange", "orng"),
    ("sparkling", "sprk"),
    ("natural", "nat"),
    ("shampoo", "shmp"),
    ("biscuits", "bisc"),
    ("yoghurt", "yog"),
    ("coffee", "cof"),
    ("mineral", "min"),
    ("light", "lt"),
    ("extra", "xtra"),
    ("family", "fam"),
];

/// Another way to write a size: `500 ml` as `0.5L`, `50cl`, `500ML`, ...
fn respell_size(rng: &mut Rng, size: &str) -> String {
    let mut parts = size.split_whitespace();
    let (Some(amount), Some(unit)) = (parts.next(), parts.next()) else {
        return size.to_owned();
    };
    let Ok(amount) = amount.replace(',', ".").parse::<f64>() else {
        return size.to_owned();
    };
    let (base, kind) = match unit.to_lowercase().as_str() {
        "ml" => (amount, "ml"),
        "l" => (amount * 1000.0, "ml"),
        "g" => (amount, "g"),
        "kg" => (amount * 1000.0, "g"),
        _ => return size.to_owned(),
    };
    let number = |v: f64| {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    let choices: Vec<String> = if kind == "ml" {
        vec![
            format!("{}ML", number(base)),
            format!("{} ml", number(base)),
            format!("{}L", number(base / 1000.0)),
            format!("{} lt", number(base / 1000.0).replace('.', ",")),
            format!("{}cl", number(base / 10.0)),
        ]
    } else {
        vec![
            format!("{}G", number(base)),
            format!("{} gr", number(base)),
            format!("{}kg", number(base / 1000.0)),
            format!("{} KG", number(base / 1000.0).replace('.', ",")),
        ]
    };
    pick(rng, &choices).clone()
}

/// One typo in a word of at least four letters: two letters swapped, one
/// dropped or one doubled.
fn typo(rng: &mut Rng, words: &mut [String]) {
    let long: Vec<usize> = (0..words.len())
        .filter(|&i| words[i].chars().count() >= 4 && words[i].chars().all(char::is_alphabetic))
        .collect();
    if long.is_empty() {
        return;
    }
    let w = *pick(rng, &long);
    let mut chars: Vec<char> = words[w].chars().collect();
    let at = 1 + (rng.next_u64() % (chars.len() as u64 - 2)) as usize;
    match rng.next_u64() % 3 {
        0 => chars.swap(at, at + 1),
        1 => {
            chars.remove(at);
        }
        _ => chars.insert(at, chars[at]),
    }
    words[w] = chars.into_iter().collect();
}

/// A wrong barcode: another product's, or this one's with a digit changed.
fn wrong_barcode(rng: &mut Rng, right: &str, others: &[Known]) -> String {
    if chance(rng, 0.5) && others.len() > 1 {
        return pick(rng, others).barcode.clone();
    }
    let mut digits: Vec<u8> = right.bytes().collect();
    let at = (rng.next_u64() % digits.len() as u64) as usize;
    digits[at] = b'0' + ((digits[at] - b'0' + 1 + (rng.next_u64() % 8) as u8) % 10);
    String::from_utf8(digits).unwrap_or_else(|_| right.to_owned())
}

/// One line for a product, differing from it as `d` says.
fn line_for(
    rng: &mut Rng,
    sku: String,
    known: &Known,
    truth: usize,
    all: &[Known],
    d: &Differences,
) -> SampleLine {
    let mut words: Vec<String> = known
        .name
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    if chance(rng, d.abbreviate) {
        for w in words.iter_mut() {
            if let Some((_, short)) = ABBREVIATIONS.iter().find(|(long, _)| long == w) {
                *w = (*short).to_owned();
            } else if w.len() > 7 && chance(rng, 0.5) {
                *w = w.chars().take(5).collect();
            }
        }
    }
    if chance(rng, d.typo) {
        typo(rng, &mut words);
    }
    if chance(rng, d.reorder) && words.len() > 1 {
        words.rotate_left(1);
    }
    let brand_column = chance(rng, d.brand_column);
    let size = respell_size(rng, &known.size);
    let size_column = chance(rng, 0.5);
    let mut name_words = Vec::new();
    if !brand_column {
        name_words.push(known.brand.to_lowercase());
    }
    name_words.extend(words);
    if !size_column {
        name_words.push(size.clone());
    }
    let mut name = name_words.join(" ");
    name = match rng.next_u64() % 3 {
        0 => name.to_uppercase(),
        1 => name,
        _ => name
            .split(' ')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    let barcode = if chance(rng, d.missing_barcode) {
        None
    } else if chance(rng, d.wrong_barcode / (1.0 - d.missing_barcode)) {
        Some(wrong_barcode(rng, &known.barcode, all))
    } else if chance(rng, 0.2) {
        // The same GTIN written as a GTIN-14.
        Some(format!("0{}", known.barcode))
    } else {
        Some(known.barcode.clone())
    };
    SampleLine {
        sku,
        name,
        brand: brand_column.then(|| known.brand.clone()),
        size: size_column.then_some(size),
        barcode,
        has_image: chance(rng, d.image),
        truth,
    }
}

/// A merchant's list of `lines` lines, made from `products` (those with an
/// id are in the directory; the rest are not), in a seeded order.
pub fn list(products: &[Known], lines: usize, seed: u64, d: &Differences) -> Vec<SampleLine> {
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..products.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order
        .into_iter()
        .take(lines)
        .enumerate()
        .map(|(n, p)| {
            line_for(
                &mut rng,
                format!("SKU{:06}", n + 1),
                &products[p],
                p,
                products,
                d,
            )
        })
        .collect()
}

/// A list as CSV, with the columns a merchant might send.
pub fn csv(lines: &[SampleLine], image_url: impl Fn(&SampleLine) -> Option<String>) -> String {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(["Item code", "Description", "Brand", "Size", "EAN", "Image"]);
    for l in lines {
        let _ = writer.write_record([
            l.sku.clone(),
            l.name.clone(),
            l.brand.clone().unwrap_or_default(),
            l.size.clone().unwrap_or_default(),
            l.barcode.clone().unwrap_or_default(),
            image_url(l).unwrap_or_default(),
        ]);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

const BRANDS: &[&str] = &[
    "Ulker",
    "Eti",
    "Torku",
    "Pinar",
    "Sutas",
    "Coca-Cola",
    "Pepsi",
    "Fanta",
    "Nestle",
    "Danone",
    "Dimes",
    "Tamek",
    "Lipton",
    "Dogadan",
    "Nescafe",
    "Jacobs",
    "Lays",
    "Doritos",
    "Ruffles",
    "Algida",
    "Unilever",
    "Elidor",
    "Head",
    "Colgate",
    "Signal",
    "Ariel",
    "Omo",
    "Finish",
    "Fairy",
    "Selpak",
    "Solo",
    "Familia",
    "Barilla",
    "Filiz",
    "Nuhun",
    "Tat",
    "Tukas",
    "Knorr",
    "Maggi",
    "Hochland",
    "President",
    "Icim",
    "Birsah",
    "Kent",
    "Haribo",
    "Milka",
    "Toblerone",
    "Kinder",
];

const KINDS: &[(&str, &[&str], &[&str])] = &[
    (
        "cola",
        &["original", "zero", "light", "cherry"],
        &["330 ml", "500 ml", "1 L", "1.5 L", "2.5 L"],
    ),
    (
        "mineral water",
        &["natural", "sparkling", "lemon"],
        &["330 ml", "500 ml", "1.5 L", "5 L"],
    ),
    (
        "fruit juice",
        &["orange", "apple", "peach", "cherry", "mixed"],
        &["200 ml", "1 L"],
    ),
    (
        "iced tea",
        &["lemon", "peach", "mango"],
        &["330 ml", "1 L", "1.5 L"],
    ),
    (
        "chocolate bar",
        &["milk", "dark", "hazelnut", "strawberry"],
        &["40 g", "80 g", "100 g", "300 g"],
    ),
    (
        "biscuits",
        &["chocolate", "vanilla", "classic", "cocoa cream"],
        &["100 g", "150 g", "300 g", "500 g"],
    ),
    (
        "potato chips",
        &["classic", "paprika", "cheese", "sour cream"],
        &["50 g", "107 g", "150 g"],
    ),
    (
        "yoghurt",
        &["natural", "strawberry", "light", "extra creamy"],
        &["200 g", "500 g", "1 kg", "2 kg"],
    ),
    (
        "milk",
        &["whole", "light", "lactose free", "chocolate"],
        &["200 ml", "500 ml", "1 L"],
    ),
    (
        "coffee",
        &["classic", "gold", "decaf", "3in1"],
        &["50 g", "100 g", "200 g"],
    ),
    (
        "black tea",
        &["classic", "earl grey", "family"],
        &["500 g", "1 kg"],
    ),
    (
        "pasta",
        &["spaghetti", "penne", "fusilli", "farfalle"],
        &["500 g", "1 kg"],
    ),
    (
        "shampoo",
        &["classic", "anti dandruff", "repair", "volume"],
        &["400 ml", "600 ml"],
    ),
    (
        "toothpaste",
        &["whitening", "fresh", "sensitive"],
        &["75 ml", "100 ml"],
    ),
    (
        "detergent",
        &["original", "color", "sensitive"],
        &["1 kg", "3 kg", "6 kg"],
    ),
    (
        "cheese",
        &["white", "cheddar", "kashar", "cream"],
        &["200 g", "400 g", "1 kg"],
    ),
    (
        "ice cream",
        &["vanilla", "chocolate", "strawberry"],
        &["100 ml", "500 ml", "1 L"],
    ),
    (
        "tomato paste",
        &["classic", "extra"],
        &["200 g", "830 g", "1.65 kg"],
    ),
];

/// Product lines within a brand, for variety.
const LINES: &[&str] = &[
    "premium",
    "mini",
    "max",
    "family",
    "gold",
    "kids",
    "bio",
    "organic",
    "protein",
    "plus",
    "select",
    "classic line",
    "home",
    "daily",
    "fresh",
    "fit",
    "pure",
    "intense",
    "smooth",
    "crispy",
    "double",
    "twin pack",
    "party",
    "sport",
    "energy",
    "balance",
    "delight",
    "royal",
    "mega",
    "duo",
];

/// A synthetic directory: `n` products of every brand, kind, variant and
/// size in turn (near neighbours included: one product in several sizes and
/// variants), and `strangers` more the directory does not have, each with a
/// valid EAN-13.
pub fn synthetic(n: usize, strangers: usize, seed: u64) -> Vec<Known> {
    let mut rng = Rng::new(seed);
    let mut seen = std::collections::HashSet::new();
    let mut barcodes = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n + strangers);
    while out.len() < n + strangers {
        let brand = *pick(&mut rng, BRANDS);
        let (kind, variants, sizes) = *pick(&mut rng, KINDS);
        let variant = *pick(&mut rng, variants);
        let size = *pick(&mut rng, sizes);
        let line = if chance(&mut rng, 0.7) {
            format!(" {}", pick(&mut rng, LINES))
        } else {
            String::new()
        };
        let name = format!("{kind} {variant}{line}");
        if !seen.insert((brand, name.clone(), size)) {
            continue;
        }
        let known = out.len() < n;
        // Nine random digits meet again in a directory of 100,000: drawn
        // until new, as barcodes are unique in the directory.
        let barcode = loop {
            let code = ean13(&mut rng, "869");
            if barcodes.insert(code.clone()) {
                break code;
            }
        };
        out.push(Known {
            id: known.then(Uuid::new_v4),
            barcode,
            brand: brand.to_owned(),
            name,
            size: size.to_owned(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_barcodes_are_valid_gtins() {
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let code = ean13(&mut rng, "869");
            assert!(crate::actions::merchants::csv::barcode_shape_ok(&code));
            let parsed = buybuddy_domain::Barcode::parse(&code).unwrap();
            assert!(parsed.is_gtin(), "{code}");
        }
        assert_eq!(check_digit("400638133393"), 1);
    }

    #[test]
    fn a_directory_of_the_bench_s_size_has_no_barcode_twice() {
        let directory = synthetic(100_000, 10_000, 17);
        let unique: std::collections::HashSet<&str> =
            directory.iter().map(|k| k.barcode.as_str()).collect();
        assert_eq!(unique.len(), directory.len());
    }

    #[test]
    fn sizes_are_respelled_as_the_same_amount() {
        let mut rng = Rng::new(1);
        for _ in 0..50 {
            let s = respell_size(&mut rng, "500 ml")
                .to_lowercase()
                .replace(',', ".");
            assert!(
                ["500ml", "500 ml", "0.5l", "0.5 lt", "50cl"].contains(&s.as_str()),
                "{s}"
            );
        }
        let kg = respell_size(&mut Rng::new(2), "1 kg").to_lowercase();
        assert!(
            ["1000g", "1000 gr", "1kg", "1 kg"].contains(&kg.as_str()),
            "{kg}"
        );
    }

    #[test]
    fn a_list_differs_as_asked_and_keeps_its_truth() {
        let directory = synthetic(300, 30, 4);
        assert_eq!(directory.iter().filter(|k| k.id.is_none()).count(), 30);
        let lines = list(&directory, 330, 9, &Differences::default());
        assert_eq!(lines.len(), 330);
        let share = |f: &dyn Fn(&SampleLine) -> bool| {
            lines.iter().filter(|l| f(l)).count() as f64 / lines.len() as f64
        };
        let missing = share(&|l| l.barcode.is_none());
        assert!((0.3..0.5).contains(&missing), "{missing}");
        let wrong = share(&|l| {
            l.barcode.as_deref().is_some_and(|b| {
                b.trim_start_matches('0') != directory[l.truth].barcode.trim_start_matches('0')
            })
        });
        assert!((0.01..0.1).contains(&wrong), "{wrong}");
        assert!(share(&|l| directory[l.truth].id.is_none()) > 0.05);
        assert_eq!(list(&directory, 330, 9, &Differences::default()), lines);
        let text = csv(&lines[..2], |_| None);
        assert!(text.starts_with("Item code,Description,Brand,Size,EAN,Image\n"));
    }
}
