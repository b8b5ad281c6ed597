//! The product metadata asked of Gemini: the JSON schema it must answer in, the
//! instructions that go with the video, and the validation that turns its answer
//! into typed fields or a clear refusal. Nothing half-valid gets through: one bad
//! field rejects the whole answer.

use serde_json::{Map, Value, json};

/// Longest name-like field (brand, product name, category, ...), in characters.
pub const MAX_FIELD_CHARS: usize = 200;
/// Longest grounding prompt, in characters: a short noun phrase.
pub const MAX_PROMPT_CHARS: usize = 80;
/// Most claims kept for one product.
pub const MAX_CLAIMS: usize = 40;
/// Most nutrition facts kept for one product.
pub const MAX_NUTRITION_FACTS: usize = 60;

/// Catalog metadata of one product: Gemini's validated answer always has a
/// product name, a grounding prompt and a visibility score.
pub use buybuddy_domain::Metadata;

/// What is known of the product before Gemini looks at it.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    pub barcode: String,
    /// The name in the Buybuddy catalog, when the product is there.
    pub catalog_name: Option<String>,
}

/// The system instruction sent with every request.
pub const SYSTEM_INSTRUCTION: &str = "You catalog retail products for a product \
directory. You are shown a short video of one packaged product turned in front of \
the camera. Read only what is printed on the package; never guess. Leave a field \
null when the package does not show it.";

/// The request text that follows the video.
pub fn instructions(hints: &Hints) -> String {
    let mut text = format!(
        "Describe the product in this video. Its barcode is {}.",
        hints.barcode
    );
    if let Some(name) = hints
        .catalog_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
    {
        text.push_str(&format!(
            " The catalog calls it {:?}; trust the package where they differ.",
            name.trim()
        ));
    }
    text.push_str(
        " Fill every field of the schema: brand_name (the maker's brand), sub_brand \
(a line within the brand), product_name (as printed), variant_flavor, category \
(a short retail category such as \"soft drinks\" or \"snacks\"), container_type \
(bottle, can, box, bag, jar, tube, ...), net_quantity with its unit (\"330 ml\"), \
nutrition_facts (nutrient to value as printed, per 100 g or ml when shown), claims \
(short marketing or health claims printed on the package), grounding_prompt (a short \
noun phrase of at most a few words that names the physical object so that a \
segmentation model can find it, e.g. \"red soda can\"), and visibility_score (0 to 100: \
how clearly the product and its label can be seen).",
    );
    text
}

/// The JSON schema of the answer, sent as `responseJsonSchema`.
pub fn response_schema() -> Value {
    let text = |description: &str| json!({ "type": ["string", "null"], "maxLength": MAX_FIELD_CHARS, "description": description });
    json!({
        "type": "object",
        "properties": {
            "brand_name": text("The brand of the product's maker."),
            "sub_brand": text("A product line within the brand."),
            "product_name": {
                "type": "string",
                "maxLength": MAX_FIELD_CHARS,
                "description": "The product's name as printed on the package."
            },
            "variant_flavor": text("Variant or flavour."),
            "category": text("Short retail category."),
            "container_type": text("Bottle, can, box, bag, jar, tube, ..."),
            "net_quantity": text("Net quantity with its unit, e.g. 330 ml."),
            "nutrition_facts": {
                "type": ["object", "null"],
                "additionalProperties": { "type": ["string", "number"] },
                "description": "Nutrient name to value as printed."
            },
            "claims": {
                "type": "array",
                "items": { "type": "string", "maxLength": MAX_FIELD_CHARS },
                "maxItems": MAX_CLAIMS,
                "description": "Marketing or health claims printed on the package."
            },
            "grounding_prompt": {
                "type": "string",
                "maxLength": MAX_PROMPT_CHARS,
                "description": "A short noun phrase naming the physical object, for a segmentation model."
            },
            "visibility_score": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "description": "How clearly the product and its label can be seen, 0 to 100."
            }
        },
        "required": [
            "brand_name", "sub_brand", "product_name", "variant_flavor", "category",
            "container_type", "net_quantity", "nutrition_facts", "claims",
            "grounding_prompt", "visibility_score"
        ],
        "additionalProperties": false
    })
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("the answer is not valid JSON ({0})")]
    NotJson(String),
    #[error("the answer does not fit the schema: {0}")]
    Schema(String),
}

/// Parses and validates the text of an answer.
pub fn from_answer(text: &str) -> Result<Metadata, MetadataError> {
    let value: Value = serde_json::from_str(text.trim()).map_err(|e| {
        let shown: String = text.trim().chars().take(80).collect();
        MetadataError::NotJson(format!("{e}; it starts with {shown:?}"))
    })?;
    from_value(&value).map_err(MetadataError::Schema)
}

/// Validates a parsed answer: types, ranges and lengths; strings trimmed,
/// empty ones read as absent.
pub fn from_value(value: &Value) -> Result<Metadata, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("expected an object, got {}", kind(value)))?;
    let optional = |name: &str| optional_text(object, name, MAX_FIELD_CHARS);
    let product_name =
        optional("product_name")?.ok_or_else(|| "product_name is missing or empty".to_owned())?;
    let grounding_prompt = optional_text(object, "grounding_prompt", MAX_PROMPT_CHARS)?
        .ok_or_else(|| "grounding_prompt is missing or empty".to_owned())?;
    Ok(Metadata {
        brand_name: optional("brand_name")?,
        sub_brand: optional("sub_brand")?,
        product_name: Some(product_name),
        variant_flavor: optional("variant_flavor")?,
        category: optional("category")?,
        container_type: optional("container_type")?,
        net_quantity: optional("net_quantity")?,
        nutrition_facts: nutrition_facts(object.get("nutrition_facts"))?,
        claims: claims(object.get("claims"))?,
        grounding_prompt: Some(grounding_prompt),
        visibility_score: Some(visibility_score(object.get("visibility_score"))?),
    })
}

fn optional_text(
    object: &Map<String, Value>,
    name: &str,
    max_chars: usize,
) -> Result<Option<String>, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => clean_text(s, max_chars).map_err(|e| format!("{name} {e}")),
        Some(other) => Err(format!("{name} must be a string, got {}", kind(other))),
    }
}

/// Trims and collapses runs of white space; empty reads as absent.
fn clean_text(raw: &str, max_chars: usize) -> Result<Option<String>, String> {
    let cleaned = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars = cleaned.chars().count();
    if chars > max_chars {
        return Err(format!(
            "is {chars} characters long; at most {max_chars} are allowed"
        ));
    }
    Ok((!cleaned.is_empty()).then_some(cleaned))
}

fn claims(value: Option<&Value>) -> Result<Vec<String>, String> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("claims must be an array, got {}", kind(other))),
    };
    if items.len() > MAX_CLAIMS {
        return Err(format!(
            "claims has {} items; at most {MAX_CLAIMS} are allowed",
            items.len()
        ));
    }
    let mut claims = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::String(s) = item else {
            return Err(format!("claims[{i}] must be a string, got {}", kind(item)));
        };
        let claim = clean_text(s, MAX_FIELD_CHARS).map_err(|e| format!("claims[{i}] {e}"))?;
        if let Some(claim) = claim.filter(|c| !claims.contains(c)) {
            claims.push(claim);
        }
    }
    Ok(claims)
}

fn nutrition_facts(value: Option<&Value>) -> Result<Map<String, Value>, String> {
    let facts = match value {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(facts)) => facts,
        Some(other) => {
            return Err(format!(
                "nutrition_facts must be an object, got {}",
                kind(other)
            ));
        }
    };
    if facts.len() > MAX_NUTRITION_FACTS {
        return Err(format!(
            "nutrition_facts has {} entries; at most {MAX_NUTRITION_FACTS} are allowed",
            facts.len()
        ));
    }
    let mut cleaned = Map::new();
    for (name, value) in facts {
        let Some(name) =
            clean_text(name, MAX_FIELD_CHARS).map_err(|e| format!("a nutrition_facts name {e}"))?
        else {
            return Err("nutrition_facts has an empty name".to_owned());
        };
        let value = match value {
            Value::Number(_) => value.clone(),
            Value::String(s) => match clean_text(s, MAX_FIELD_CHARS)
                .map_err(|e| format!("nutrition_facts.{name} {e}"))?
            {
                Some(s) => Value::String(s),
                None => continue,
            },
            Value::Null => continue,
            other => {
                return Err(format!(
                    "nutrition_facts.{name} must be a number or a string, got {}",
                    kind(other)
                ));
            }
        };
        cleaned.insert(name, value);
    }
    Ok(cleaned)
}

fn visibility_score(value: Option<&Value>) -> Result<i32, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Err("visibility_score is missing".to_owned());
    };
    let number = value
        .as_f64()
        .ok_or_else(|| format!("visibility_score must be a number, got {}", kind(value)))?;
    if number.fract() != 0.0 {
        return Err(format!(
            "visibility_score must be a whole number, got {number}"
        ));
    }
    if !(0.0..=100.0).contains(&number) {
        return Err(format!(
            "visibility_score must be between 0 and 100, got {number}"
        ));
    }
    Ok(number as i32)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({
            "brand_name": "  Fizzo ",
            "sub_brand": null,
            "product_name": "Fizzo   Cola",
            "variant_flavor": "",
            "category": "soft drinks",
            "container_type": "can",
            "net_quantity": "330 ml",
            "nutrition_facts": { "energy_kcal": 42, "sugars": " 10.6 g ", "salt": null },
            "claims": ["no preservatives", "no preservatives", "  "],
            "grounding_prompt": "red soda can",
            "visibility_score": 87
        })
    }

    #[test]
    fn a_good_answer_is_cleaned_into_fields() {
        let m = from_value(&answer()).unwrap();
        assert_eq!(m.brand_name.as_deref(), Some("Fizzo"));
        assert_eq!(m.product_name.as_deref(), Some("Fizzo Cola"));
        assert_eq!(m.sub_brand, None);
        assert_eq!(m.variant_flavor, None, "empty strings read as absent");
        assert_eq!(m.claims, vec!["no preservatives"]);
        assert_eq!(
            Value::Object(m.nutrition_facts),
            json!({ "energy_kcal": 42, "sugars": "10.6 g" })
        );
        assert_eq!(m.visibility_score, Some(87));
    }

    #[test]
    fn every_schema_violation_is_refused_with_its_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("visibility_score", json!(250), "between 0 and 100"),
            ("visibility_score", json!(-1), "between 0 and 100"),
            ("visibility_score", json!(50.5), "whole number"),
            ("visibility_score", json!("high"), "must be a number"),
            ("visibility_score", Value::Null, "missing"),
            ("product_name", json!("   "), "product_name is missing"),
            ("grounding_prompt", json!("x".repeat(81)), "at most 80"),
            ("brand_name", json!(42), "brand_name must be a string"),
            ("claims", json!("organic"), "claims must be an array"),
            ("claims", json!([1]), "claims[0] must be a string"),
            ("nutrition_facts", json!([1]), "must be an object"),
            (
                "nutrition_facts",
                json!({ "fat": [1] }),
                "nutrition_facts.fat",
            ),
        ];
        for (field, bad, expected) in cases {
            let mut value = answer();
            value[field] = bad.clone();
            let error = from_value(&value).unwrap_err();
            assert!(
                error.contains(expected),
                "{field} = {bad}: {error:?} does not say {expected:?}"
            );
        }
        let error = from_value(&json!([answer()])).unwrap_err();
        assert!(error.contains("expected an object"), "{error}");
    }

    #[test]
    fn text_that_is_not_json_is_refused() {
        let truncated = r#"{"brand_name": "Fizzo", "product_na"#;
        assert!(matches!(
            from_answer(truncated),
            Err(MetadataError::NotJson(_))
        ));
        assert!(matches!(
            from_answer("Sure! Here is the JSON you asked for."),
            Err(MetadataError::NotJson(_))
        ));
        assert!(from_answer(&answer().to_string()).is_ok());
    }

    #[test]
    fn the_schema_requires_every_property_it_declares() {
        let schema = response_schema();
        let properties: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(properties.len(), required.len());
        for name in properties {
            assert!(required.contains(&name.as_str()), "{name}");
        }
        // An answer built from the schema's own field list validates.
        assert!(from_value(&answer()).is_ok());
    }

    #[test]
    fn the_catalog_name_is_offered_as_a_hint() {
        let hints = Hints {
            barcode: "8690000000001".into(),
            catalog_name: Some("Fizzo Cola 330".into()),
        };
        let text = instructions(&hints);
        assert!(text.contains("8690000000001") && text.contains("\"Fizzo Cola 330\""));
        assert!(!instructions(&Hints::default()).contains("catalog calls it"));
    }
}
