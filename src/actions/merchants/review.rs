//! Assigning a merchant's lines: one line at a time beside its suggestions
//! (with the parts of their scores, and which other line a product is
//! already assigned to), a decision per line kept in its history, and the
//! bulk acceptance of exact barcode matches whose names agree.

use serde::Serialize;
use uuid::Uuid;

use super::score::{Part, Signals};
use crate::{
    actions::{ActionError, Ctx},
    db::{
        self,
        embeddings::ProductCard,
        merchants::{Decision, Line, LineFilter, NewDecision},
    },
};

/// A suggestion as review shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SuggestionView {
    pub rank: i16,
    pub product: ProductCard,
    /// A frame of the product, for its thumbnail.
    pub frame_key: Option<String>,
    pub score: f32,
    pub signals: Signals,
    pub parts: Vec<Part>,
    pub exact: bool,
    /// Other lines of the merchant already assigned to it: (line, SKU).
    pub assigned_to: Vec<(i64, String)>,
}

/// A line with what review needs of it.
#[derive(Debug, Clone, Serialize)]
pub struct LineView {
    pub line: Line,
    pub suggestions: Vec<SuggestionView>,
    /// The assigned product, when it is not among the suggestions.
    pub assigned: Option<ProductCard>,
    /// Other lines assigned to the same product as this one.
    pub conflicts: Vec<(i64, String)>,
    pub history: Vec<Decision>,
}

pub async fn line_view(ctx: Ctx<'_>, line_id: i64) -> Result<LineView, ActionError> {
    let line = db::merchants::line(ctx.pool, line_id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no merchant line #{line_id}.")))?;
    let stored = db::merchants::suggestions(ctx.pool, line_id).await?;
    let mut ids: Vec<Uuid> = stored.iter().map(|s| s.product_id).collect();
    ids.extend(line.product_id);
    let mut cards = db::embeddings::cards(ctx.pool, &ids).await?;
    let mut frames = db::merchants::thumbnails(ctx.pool, &ids).await?;
    let mut suggestions = Vec::with_capacity(stored.len());
    for s in stored {
        let Some(product) = cards.get(&s.product_id).cloned() else {
            continue;
        };
        suggestions.push(SuggestionView {
            rank: s.rank,
            assigned_to: db::merchants::assigned_elsewhere(
                ctx.pool,
                line.merchant_id,
                s.product_id,
                line.id,
            )
            .await?,
            frame_key: frames.remove(&s.product_id),
            product,
            score: s.score,
            signals: s.signals,
            parts: s.parts,
            exact: s.exact,
        });
    }
    let assigned = line
        .product_id
        .filter(|p| !suggestions.iter().any(|s| s.product.id == *p))
        .and_then(|p| cards.remove(&p));
    let conflicts = match (line.status.as_deref(), line.product_id) {
        (Some("assigned"), Some(product)) => {
            db::merchants::assigned_elsewhere(ctx.pool, line.merchant_id, product, line.id).await?
        }
        _ => Vec::new(),
    };
    let history = db::merchants::history(ctx.pool, line_id).await?;
    Ok(LineView {
        line,
        suggestions,
        assigned,
        conflicts,
        history,
    })
}

/// The next line to review under a filter, and how many lines the filter
/// holds.
pub async fn next_line(
    ctx: Ctx<'_>,
    merchant: i32,
    filter: LineFilter,
) -> Result<(Option<LineView>, i64), ActionError> {
    let confident = super::score::CONFIDENT;
    let left = db::merchants::count_lines(ctx.pool, merchant, filter, confident).await?;
    let next = db::merchants::lines(ctx.pool, merchant, filter, confident, 1, 0).await?;
    match next.into_iter().next() {
        Some(line) => Ok((Some(line_view(ctx, line.id).await?), left)),
        None => Ok((None, left)),
    }
}

/// What a person decides about a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// It is this product (its id or barcode).
    Assign(String),
    /// The directory does not have it.
    Absent,
    /// Later: to the back of the queue.
    Skip,
    /// Back to undecided.
    Clear,
}

impl Choice {
    /// Reads `assign` (with a product), `absent`, `skip` or `clear`.
    pub fn parse(action: &str, product: Option<&str>) -> Result<Self, ActionError> {
        let product = product.map(str::trim).filter(|p| !p.is_empty());
        match (action.trim(), product) {
            ("assign", Some(p)) => Ok(Self::Assign(p.to_owned())),
            ("assign", None) => Err(ActionError::field(
                "product",
                "Say which product it is (an id or a barcode).",
            )),
            ("absent", _) => Ok(Self::Absent),
            ("skip", _) => Ok(Self::Skip),
            ("clear", _) => Ok(Self::Clear),
            (other, _) => Err(ActionError::field(
                "action",
                format!("{other:?} is not a decision; they are assign, absent, skip and clear."),
            )),
        }
    }
}

async fn product_by(ctx: Ctx<'_>, given: &str) -> Result<(Uuid, String), ActionError> {
    let found = match Uuid::parse_str(given) {
        Ok(id) => db::products::get(ctx.pool, id)
            .await?
            .map(|p| (id, p.barcode)),
        Err(_) => db::products::by_barcode(ctx.pool, given).await?,
    };
    found.ok_or_else(|| {
        ActionError::field(
            "product",
            format!("No product of the directory has the id or barcode {given:?}."),
        )
    })
}

/// Records a decision about a line (`via`: review, api or cli).
pub async fn decide(
    ctx: Ctx<'_>,
    line_id: i64,
    choice: &Choice,
    via: &'static str,
    user: Option<Uuid>,
) -> Result<Line, ActionError> {
    let line = db::merchants::line(ctx.pool, line_id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no merchant line #{line_id}.")))?;
    if line.removed_at.is_some() {
        return Err(ActionError::Conflict(format!(
            "SKU {} is no longer in the merchant's list (the last import removed it).",
            line.sku
        )));
    }
    let decision = match choice {
        Choice::Skip => {
            db::merchants::skip(ctx.pool, line_id).await?;
            return line_after(ctx, line_id).await;
        }
        Choice::Absent => NewDecision {
            status: "absent",
            product: None,
            suggested: false,
            score: None,
            via,
        },
        Choice::Clear => NewDecision {
            status: "cleared",
            product: None,
            suggested: false,
            score: None,
            via,
        },
        Choice::Assign(given) => {
            let product = product_by(ctx, given).await?;
            let suggestions = db::merchants::suggestions(ctx.pool, line_id).await?;
            let mine = suggestions.iter().find(|s| s.product_id == product.0);
            NewDecision {
                status: "assigned",
                suggested: mine.is_some_and(|s| s.rank == 1),
                score: mine.map(|s| s.score),
                product: Some(product),
                via,
            }
        }
    };
    db::merchants::decide(ctx.pool, &[(line_id, decision)], user).await?;
    line_after(ctx, line_id).await
}

async fn line_after(ctx: Ctx<'_>, line_id: i64) -> Result<Line, ActionError> {
    db::merchants::line(ctx.pool, line_id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no merchant line #{line_id}.")))
}

/// What a bulk acceptance did, or would do, in words.
pub fn bulk_outcome(n: usize, done: bool) -> String {
    match (n, done) {
        (1, true) => "1 line assigned to its exact barcode match".to_owned(),
        (n, true) => format!("{n} lines assigned to their exact barcode matches"),
        (1, false) => "1 line would be assigned".to_owned(),
        (n, false) => format!("{n} lines would be assigned"),
    }
}

pub async fn bulk_accept(
    ctx: Ctx<'_>,
    merchant: i32,
    confirm: bool,
    user: Option<Uuid>,
) -> Result<usize, ActionError> {
    let matches = db::merchants::exact_matches(ctx.pool, merchant).await?;
    if confirm && !matches.is_empty() {
        let decisions: Vec<(i64, NewDecision)> = matches
            .iter()
            .map(|(line, product, barcode, score)| {
                (
                    *line,
                    NewDecision {
                        status: "assigned",
                        product: Some((*product, barcode.clone())),
                        suggested: true,
                        score: Some(*score),
                        via: "bulk",
                    },
                )
            })
            .collect();
        db::merchants::decide(ctx.pool, &decisions, user).await?;
    }
    Ok(matches.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_read_from_forms_and_requests() {
        assert_eq!(
            Choice::parse("assign", Some(" 8690000000001 ")).unwrap(),
            Choice::Assign("8690000000001".into())
        );
        assert!(Choice::parse("assign", None).is_err());
        assert_eq!(Choice::parse("absent", None).unwrap(), Choice::Absent);
        assert_eq!(Choice::parse("clear", Some("x")).unwrap(), Choice::Clear);
        assert!(Choice::parse("approve", None).is_err());
    }
}
