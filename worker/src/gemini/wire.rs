//! Gemini's wire types (the JSON of `generateContent`, the Files API and error
//! bodies) and the readings of them the client needs: the answer's text, the
//! delay a 429 asks for.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::GeminiError;

/// A file in the Files API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteFile {
    pub name: String,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub error: Option<Status>,
}

/// `google.rpc.Status`, as found in error bodies and failed files.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub details: Vec<Value>,
}

#[derive(Deserialize)]
pub(super) struct ErrorBody {
    pub(super) error: Status,
}

#[derive(Deserialize)]
pub(super) struct UploadedFile {
    pub(super) file: RemoteFile,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse {
    #[serde(default)]
    pub(super) candidates: Vec<Candidate>,
    #[serde(default)]
    pub(super) prompt_feedback: Option<PromptFeedback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback {
    #[serde(default)]
    pub(super) block_reason: Option<String>,
    #[serde(default)]
    pub(super) block_reason_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    #[serde(default)]
    pub(super) content: Option<Content>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) finish_message: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Content {
    #[serde(default)]
    pub(super) parts: Vec<Part>,
}

#[derive(Deserialize)]
pub(super) struct Part {
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) thought: Option<bool>,
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GeminiError> {
    serde_json::from_slice(body).map_err(|e| GeminiError::Protocol(format!("unreadable JSON: {e}")))
}

/// The text of the first candidate, or why there is none.
pub(super) fn answer_text(answer: GenerateContentResponse) -> Result<String, GeminiError> {
    let Some(candidate) = answer.candidates.into_iter().next() else {
        let why = match answer.prompt_feedback {
            Some(PromptFeedback {
                block_reason: Some(reason),
                block_reason_message,
            }) => format!(
                "the request was blocked ({reason}){}",
                block_reason_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            _ => "the answer has no candidates".to_owned(),
        };
        return Err(GeminiError::NoAnswer(why));
    };
    let finish = candidate.finish_reason.as_deref().unwrap_or("STOP");
    if finish != "STOP" {
        let why = match finish {
            "MAX_TOKENS" => "the answer was cut off at the output token limit".to_owned(),
            other => format!(
                "the answer stopped early ({other}){}",
                candidate
                    .finish_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        };
        return Err(GeminiError::NoAnswer(why));
    }
    let text: String = candidate
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.thought != Some(true))
        .filter_map(|p| p.text)
        .collect();
    if text.trim().is_empty() {
        return Err(GeminiError::NoAnswer("the answer is empty".into()));
    }
    Ok(text)
}

/// The wait asked for by a `google.rpc.RetryInfo` detail, e.g. `"37s"` or `"1.5s"`.
pub(super) fn retry_delay(status: &Status) -> Option<Duration> {
    status
        .details
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(parse_proto_duration)
}

/// Reads the JSON form of `google.protobuf.Duration`: seconds with an `s`.
pub(super) fn parse_proto_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}
