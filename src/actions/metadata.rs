//! Checking product metadata that people edit, in the editor's form or as JSON
//! through the API: the same rules and the same messages for both.

use serde_json::{Map, Value};

pub use super::FieldErrors;
use crate::db::products::{Metadata, Product};
pub use buybuddy_domain::MetadataForm;

const MAX_TEXT: usize = 200;
const MAX_PROMPT: usize = 80;
const MAX_CLAIMS: usize = 40;
const MAX_FACTS: usize = 60;

/// The free-text fields with their length limits.
const TEXTS: [(&str, usize); 8] = [
    ("brand_name", MAX_TEXT),
    ("sub_brand", MAX_TEXT),
    ("product_name", MAX_TEXT),
    ("variant_flavor", MAX_TEXT),
    ("category", MAX_TEXT),
    ("container_type", MAX_TEXT),
    ("net_quantity", MAX_TEXT),
    ("grounding_prompt", MAX_PROMPT),
];

fn text_mut<'a>(m: &'a mut Metadata, name: &str) -> &'a mut Option<String> {
    match name {
        "brand_name" => &mut m.brand_name,
        "sub_brand" => &mut m.sub_brand,
        "product_name" => &mut m.product_name,
        "variant_flavor" => &mut m.variant_flavor,
        "category" => &mut m.category,
        "container_type" => &mut m.container_type,
        "net_quantity" => &mut m.net_quantity,
        "grounding_prompt" => &mut m.grounding_prompt,
        other => unreachable!("{other} is not a text field"),
    }
}

fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The product's metadata as it stands.
pub fn of(product: &Product) -> Metadata {
    Metadata {
        brand_name: product.brand_name.clone(),
        sub_brand: product.sub_brand.clone(),
        product_name: product.product_name.clone(),
        variant_flavor: product.variant_flavor.clone(),
        category: product.category.clone(),
        container_type: product.container_type.clone(),
        net_quantity: product.net_quantity.clone(),
        nutrition_facts: product
            .nutrition_facts
            .as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        claims: product.claims.clone().unwrap_or_default(),
        grounding_prompt: product.grounding_prompt.clone(),
        visibility_score: product.visibility_score,
    }
}

/// Tidies (whitespace squeezed, empty text dropped) and checks metadata,
/// adding to `errors` at most one message per field.
fn check(mut m: Metadata, errors: &mut FieldErrors) -> Metadata {
    for (name, max) in TEXTS {
        let field = text_mut(&mut m, name);
        *field = field.as_deref().map(squeeze).filter(|t| !t.is_empty());
        let chars = field.as_deref().map_or(0, |t| t.chars().count());
        if chars > max {
            errors
                .entry(name)
                .or_insert_with(|| format!("At most {max} characters; this has {chars}."));
        }
    }
    if m.product_name.is_none() {
        errors
            .entry("product_name")
            .or_insert_with(|| "A product needs a name.".into());
    }
    if let Some(score) = m.visibility_score
        && !(0..=100).contains(&score)
    {
        errors
            .entry("visibility_score")
            .or_insert_with(|| format!("A whole number from 0 to 100, not {score}."));
    }
    if m.nutrition_facts.len() > MAX_FACTS {
        errors
            .entry("nutrition_facts")
            .or_insert_with(|| format!("At most {MAX_FACTS} facts."));
    }
    m.claims = m
        .claims
        .iter()
        .map(|c| squeeze(c))
        .filter(|c| !c.is_empty())
        .collect();
    if m.claims.len() > MAX_CLAIMS {
        errors
            .entry("claims")
            .or_insert_with(|| format!("At most {MAX_CLAIMS} claims."));
    } else if let Some(long) = m.claims.iter().find(|c| c.chars().count() > MAX_TEXT) {
        errors.entry("claims").or_insert_with(|| {
            format!(
                "A claim has at most {MAX_TEXT} characters: {:?}…",
                long.chars().take(30).collect::<String>()
            )
        });
    }
    m
}

fn finish(m: Metadata, mut errors: FieldErrors) -> Result<Metadata, FieldErrors> {
    let m = check(m, &mut errors);
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(errors)
    }
}

/// Reads the editor's form, then checks it.
pub fn from_form(fields: &MetadataForm) -> Result<Metadata, FieldErrors> {
    let mut errors = FieldErrors::new();
    let text = |t: &str| Some(t.to_owned());
    let mut m = Metadata {
        brand_name: text(&fields.brand_name),
        sub_brand: text(&fields.sub_brand),
        product_name: text(&fields.product_name),
        variant_flavor: text(&fields.variant_flavor),
        category: text(&fields.category),
        container_type: text(&fields.container_type),
        net_quantity: text(&fields.net_quantity),
        grounding_prompt: text(&fields.grounding_prompt),
        claims: fields.claims.lines().map(str::to_owned).collect(),
        ..Default::default()
    };
    let score = fields.visibility_score.trim();
    if !score.is_empty() {
        match score.parse::<i32>() {
            Ok(v) => m.visibility_score = Some(v),
            Err(_) => {
                errors.insert(
                    "visibility_score",
                    format!("A whole number from 0 to 100, not {score:?}."),
                );
            }
        }
    }
    for (n, line) in fields.nutrition_facts.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
                let value = value.trim();
                // Numbers stay numbers; "10.6 g" stays text.
                let value = value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(value.to_owned()));
                m.nutrition_facts.insert(name.trim().to_owned(), value);
            }
            _ => {
                errors.insert(
                    "nutrition_facts",
                    format!(
                        "Line {} should read name: value (e.g. sugars: 10.6 g).",
                        n + 1
                    ),
                );
                break;
            }
        }
    }
    finish(m, errors)
}

/// The metadata fields a JSON patch may carry.
pub use buybuddy_domain::metadata::FIELDS;

/// Applies the fields present in a JSON object over `current` (a field set
/// to null is cleared), then checks the result.
pub fn patch(mut m: Metadata, patch: &Map<String, Value>) -> Result<Metadata, FieldErrors> {
    let mut errors = FieldErrors::new();
    for (key, value) in patch {
        let Some(&name) = FIELDS.iter().find(|f| **f == key.as_str()) else {
            // Unknown keys are reported under their own name.
            let known = FIELDS.join(", ");
            errors.insert(
                "_",
                format!("{key:?} is not a metadata field; the fields are {known}."),
            );
            continue;
        };
        match (name, value) {
            ("nutrition_facts", Value::Null) => m.nutrition_facts.clear(),
            ("nutrition_facts", Value::Object(facts)) => {
                if let Some((fact, _)) = facts
                    .iter()
                    .find(|(k, v)| k.trim().is_empty() || !(v.is_string() || v.is_number()))
                {
                    errors.insert(
                        name,
                        format!(
                            "Each fact is a name with a text or number value; {fact:?} is not."
                        ),
                    );
                } else {
                    m.nutrition_facts = facts.clone();
                }
            }
            ("nutrition_facts", _) => {
                errors.insert(name, "An object of name: value pairs, or null.".into());
            }
            ("claims", Value::Null) => m.claims.clear(),
            ("claims", Value::Array(items)) => {
                match items
                    .iter()
                    .map(|c| c.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(claims) => m.claims = claims,
                    None => {
                        errors.insert(name, "A list of texts, or null.".into());
                    }
                }
            }
            ("claims", _) => {
                errors.insert(name, "A list of texts, or null.".into());
            }
            ("visibility_score", Value::Null) => m.visibility_score = None,
            ("visibility_score", score) => {
                match score.as_i64().and_then(|s| i32::try_from(s).ok()) {
                    Some(s) => m.visibility_score = Some(s),
                    None => {
                        errors.insert(name, format!("A whole number from 0 to 100, not {score}."));
                    }
                }
            }
            (_, Value::Null) => *text_mut(&mut m, name) = None,
            (_, Value::String(text)) => *text_mut(&mut m, name) = Some(text.clone()),
            (_, other) => {
                errors.insert(name, format!("A text or null, not {other}."));
            }
        }
    }
    finish(m, errors)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn named(name: &str) -> Metadata {
        Metadata {
            product_name: Some(name.into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_form_reads_lines_and_numbers() {
        let fields = MetadataForm {
            product_name: "  Cola   Zero ".into(),
            nutrition_facts: "sugars: 0 g\nenergy_kcal: 1.5\n\n".into(),
            claims: "no sugar\n\n  vegan  ".into(),
            visibility_score: " 80 ".into(),
            ..Default::default()
        };
        let m = from_form(&fields).unwrap();
        assert_eq!(m.product_name.as_deref(), Some("Cola Zero"));
        assert_eq!(m.brand_name, None);
        assert_eq!(m.nutrition_facts["sugars"], json!("0 g"));
        assert_eq!(m.nutrition_facts["energy_kcal"], json!(1.5));
        assert_eq!(m.claims, vec!["no sugar", "vegan"]);
        assert_eq!(m.visibility_score, Some(80));
    }

    #[test]
    fn the_form_says_what_is_wrong_per_field() {
        let fields = MetadataForm {
            brand_name: "x".repeat(201),
            nutrition_facts: "sugars 10".into(),
            visibility_score: "high".into(),
            ..Default::default()
        };
        let errors = from_form(&fields).unwrap_err();
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            [
                "brand_name",
                "nutrition_facts",
                "product_name",
                "visibility_score"
            ]
        );
        assert!(errors["visibility_score"].contains("\"high\""));
        let errors = from_form(&MetadataForm {
            product_name: "A".into(),
            visibility_score: "250".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            errors["visibility_score"],
            "A whole number from 0 to 100, not 250."
        );
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let current = Metadata {
            brand_name: Some("Acme".into()),
            claims: vec!["vegan".into()],
            ..named("Cola")
        };
        let patched = patch(
            current.clone(),
            json!({"product_name": " Cola  Zero ", "claims": ["no sugar"], "visibility_score": 75})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(patched.brand_name.as_deref(), Some("Acme"));
        assert_eq!(patched.product_name.as_deref(), Some("Cola Zero"));
        assert_eq!(patched.claims, vec!["no sugar"]);
        assert_eq!(patched.visibility_score, Some(75));
        let cleared = patch(
            current,
            json!({"brand_name": null, "claims": null})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(cleared.brand_name, None);
        assert!(cleared.claims.is_empty());
    }

    #[test]
    fn a_patch_with_wrong_types_is_refused_field_by_field() {
        let errors = patch(
            named("Cola"),
            json!({
                "product_name": null,
                "visibility_score": "80",
                "claims": "vegan",
                "nutrition_facts": {"sugars": {"g": 1}},
                "colour": "red"
            })
            .as_object()
            .unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            [
                "_",
                "claims",
                "nutrition_facts",
                "product_name",
                "visibility_score"
            ]
        );
        assert!(errors["_"].contains("\"colour\""));
        assert!(errors["nutrition_facts"].contains("\"sugars\""));
    }
}
