//! Barcodes as the platform keys products by them. A barcode is also part of
//! storage keys (`frames/{barcode}/...`), so only characters that are safe in
//! a key and a URL are accepted. Retail barcodes are GTINs (EAN-8, UPC-A,
//! EAN-13, GTIN-14) with a check digit; internal codes are accepted too and
//! shown as such. Matching compares GTINs in their 14-digit form.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest barcode accepted.
pub const MAX_LEN: usize = 64;

/// A trimmed, non-empty barcode of letters, digits, '-', '_' and '.'.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Barcode(String);

/// Why a text is not a barcode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarcodeError {
    #[error("a barcode is needed")]
    Empty,
    #[error("{0:?} is not a barcode: use 1 to 64 letters, digits, '-', '_' or '.'")]
    Invalid(String),
}

/// What kind of code a barcode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarcodeKind {
    Ean8,
    UpcA,
    Ean13,
    Gtin14,
    /// Not a GTIN: a code of the company's own (or a GTIN with a wrong check digit).
    Internal,
}

impl BarcodeKind {
    /// The name people know the kind by.
    pub fn label(self) -> &'static str {
        match self {
            BarcodeKind::Ean8 => "EAN-8",
            BarcodeKind::UpcA => "UPC-A",
            BarcodeKind::Ean13 => "EAN-13",
            BarcodeKind::Gtin14 => "GTIN-14",
            BarcodeKind::Internal => "internal code",
        }
    }
}

impl Barcode {
    /// Reads a barcode, trimming surrounding white space.
    pub fn parse(text: &str) -> Result<Self, BarcodeError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(BarcodeError::Empty);
        }
        let fine = text.len() <= MAX_LEN
            && !text.starts_with('.')
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if fine {
            Ok(Self(text.to_owned()))
        } else {
            Err(BarcodeError::Invalid(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Which GTIN this is (by length and check digit), or an internal code.
    pub fn kind(&self) -> BarcodeKind {
        let digits = self.0.as_bytes();
        if !digits.iter().all(u8::is_ascii_digit) || !check_digit_holds(digits) {
            return BarcodeKind::Internal;
        }
        match digits.len() {
            8 => BarcodeKind::Ean8,
            12 => BarcodeKind::UpcA,
            13 => BarcodeKind::Ean13,
            14 => BarcodeKind::Gtin14,
            _ => BarcodeKind::Internal,
        }
    }

    pub fn is_gtin(&self) -> bool {
        self.kind() != BarcodeKind::Internal
    }

    /// The GTIN padded to 14 digits, so that the same product's EAN-13 and
    /// UPC-A (or GTIN-14 with a zero indicator) compare equal; `None` for an
    /// internal code.
    pub fn gtin14(&self) -> Option<String> {
        self.is_gtin().then(|| format!("{:0>14}", self.0))
    }
}

/// The GS1 check digit: from the right, digits before the check digit are
/// weighted 3, 1, 3, ...; the check digit brings the sum to a multiple of 10.
fn check_digit_holds(digits: &[u8]) -> bool {
    let Some((&check, body)) = digits.split_last() else {
        return false;
    };
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check - b'0')
}

impl fmt::Display for Barcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Barcode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Barcode {
    type Err = BarcodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Barcode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barcodes_are_trimmed_and_must_be_safe_in_storage_keys() {
        assert_eq!(
            Barcode::parse(" 8690000000001\n").unwrap().as_str(),
            "8690000000001"
        );
        assert!(Barcode::parse("SKU-42_a.b").is_ok());
        assert_eq!(Barcode::parse("  "), Err(BarcodeError::Empty));
        for bad in [
            "../etc",
            "a/b",
            ".hidden",
            "x y",
            "tab\there",
            "nul\0",
            &"9".repeat(65),
        ] {
            assert!(
                matches!(Barcode::parse(bad), Err(BarcodeError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn gtins_are_told_apart_from_internal_codes_by_length_and_check_digit() {
        let kind = |text: &str| Barcode::parse(text).unwrap().kind();
        assert_eq!(kind("96385074"), BarcodeKind::Ean8);
        assert_eq!(kind("036000291452"), BarcodeKind::UpcA);
        assert_eq!(kind("4006381333931"), BarcodeKind::Ean13);
        assert_eq!(kind("10012345678902"), BarcodeKind::Gtin14);
        // One digit off: the check digit no longer holds.
        assert_eq!(kind("4006381333932"), BarcodeKind::Internal);
        assert_eq!(kind("SKU-42"), BarcodeKind::Internal);
        assert_eq!(kind("12345"), BarcodeKind::Internal);
        assert_eq!(BarcodeKind::Internal.label(), "internal code");
    }

    #[test]
    fn the_same_product_compares_equal_as_upc_a_ean_13_and_gtin_14() {
        let upc = Barcode::parse("036000291452").unwrap();
        let ean = Barcode::parse("0036000291452").unwrap();
        let gtin = Barcode::parse("00036000291452").unwrap();
        assert_eq!(upc.gtin14().as_deref(), Some("00036000291452"));
        assert_eq!(upc.gtin14(), ean.gtin14());
        assert_eq!(ean.gtin14(), gtin.gtin14());
        assert_eq!(Barcode::parse("SKU-42").unwrap().gtin14(), None);
    }

    #[test]
    fn a_barcode_reads_from_json_only_when_valid() {
        let read: Barcode = serde_json::from_str("\" 4006381333931 \"").unwrap();
        assert_eq!(read.as_str(), "4006381333931");
        assert!(serde_json::from_str::<Barcode>("\"a/b\"").is_err());
    }
}
