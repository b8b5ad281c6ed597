//! A product's catalog metadata: one type for what Gemini reads from the
//! video, what the database stores, what people edit and what the API shows.
//! Every field may be absent (a person may clear one); Gemini's validated
//! answer always has a product name, a grounding prompt and a visibility score.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The metadata fields, by name, as the API and the editor know them.
pub const FIELDS: [&str; 11] = [
    "brand_name",
    "sub_brand",
    "product_name",
    "variant_flavor",
    "category",
    "container_type",
    "net_quantity",
    "nutrition_facts",
    "claims",
    "grounding_prompt",
    "visibility_score",
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub brand_name: Option<String>,
    pub sub_brand: Option<String>,
    pub product_name: Option<String>,
    pub variant_flavor: Option<String>,
    pub category: Option<String>,
    pub container_type: Option<String>,
    /// With its unit, as printed ("330 ml").
    pub net_quantity: Option<String>,
    /// Nutrient name to value as printed (numbers or strings), possibly empty.
    #[serde(default)]
    pub nutrition_facts: Map<String, Value>,
    #[serde(default)]
    pub claims: Vec<String>,
    /// A short noun phrase naming the object, for the segmenter.
    pub grounding_prompt: Option<String>,
    /// How well the product can be seen in its video, 0 to 100.
    pub visibility_score: Option<i32>,
}

/// The editor's form: metadata as typed, every field text (one claim per
/// line, one `name: value` line per nutrition fact), read from the posted form
/// and shown again, with messages, when it does not check out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MetadataForm {
    pub brand_name: String,
    pub sub_brand: String,
    pub product_name: String,
    pub variant_flavor: String,
    pub category: String,
    pub container_type: String,
    pub net_quantity: String,
    pub nutrition_facts: String,
    pub claims: String,
    pub grounding_prompt: String,
    pub visibility_score: String,
}

impl MetadataForm {
    /// The text of a field by its name (empty for an unknown name).
    pub fn value(&self, field: &str) -> &str {
        match field {
            "brand_name" => &self.brand_name,
            "sub_brand" => &self.sub_brand,
            "product_name" => &self.product_name,
            "variant_flavor" => &self.variant_flavor,
            "category" => &self.category,
            "container_type" => &self.container_type,
            "net_quantity" => &self.net_quantity,
            "grounding_prompt" => &self.grounding_prompt,
            "visibility_score" => &self.visibility_score,
            "nutrition_facts" => &self.nutrition_facts,
            "claims" => &self.claims,
            _ => "",
        }
    }
}

impl From<&Metadata> for MetadataForm {
    /// The metadata as the editor shows it.
    fn from(m: &Metadata) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let facts = m
            .nutrition_facts
            .iter()
            .map(|(name, value)| match value {
                Value::String(s) => format!("{name}: {s}"),
                other => format!("{name}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            brand_name: text(&m.brand_name),
            sub_brand: text(&m.sub_brand),
            product_name: text(&m.product_name),
            variant_flavor: text(&m.variant_flavor),
            category: text(&m.category),
            container_type: text(&m.container_type),
            net_quantity: text(&m.net_quantity),
            nutrition_facts: facts,
            claims: m.claims.join("\n"),
            grounding_prompt: text(&m.grounding_prompt),
            visibility_score: m
                .visibility_score
                .map(|v| v.to_string())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_editor_shows_facts_and_claims_one_a_line() {
        let m = Metadata {
            product_name: Some("Cola".into()),
            nutrition_facts: json!({ "sugars": "10.6 g", "energy_kcal": 42 })
                .as_object()
                .unwrap()
                .clone(),
            claims: vec!["no sugar".into(), "vegan".into()],
            visibility_score: Some(80),
            ..Metadata::default()
        };
        let form = MetadataForm::from(&m);
        assert_eq!(form.product_name, "Cola");
        assert_eq!(form.claims, "no sugar\nvegan");
        assert_eq!(form.nutrition_facts, "energy_kcal: 42\nsugars: 10.6 g");
        assert_eq!(form.visibility_score, "80");
        assert_eq!(form.brand_name, "");
    }
}
