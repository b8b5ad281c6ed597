//! Keyset pages for lists ordered newest first by (created_at, id): a page's
//! "next" link carries the last row's key, `<micros>_<uuid>`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::AppError;

/// A row's position in a newest-first list.
pub type Key = (DateTime<Utc>, Uuid);

pub fn parse(text: &str) -> Result<Key, AppError> {
    let bad =
        || AppError::BadRequest("That page link is broken; start from the first page.".into());
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// A list's query string as read: the status (one of `statuses`, else a
/// clear refusal naming `what`), the trimmed search text and the cursor.
pub struct Listing {
    pub status: Option<String>,
    pub q: String,
    pub before: Option<Key>,
}

impl Listing {
    pub fn read(
        status: Option<&str>,
        statuses: &[&str],
        what: &str,
        q: Option<&str>,
        before: Option<&str>,
    ) -> Result<Self, AppError> {
        let status = status.filter(|s| !s.is_empty()).map(str::to_owned);
        if let Some(status) = &status
            && !statuses.contains(&status.as_str())
        {
            return Err(AppError::BadRequest(format!(
                "{status:?} is not a {what} status."
            )));
        }
        Ok(Self {
            status,
            q: q.unwrap_or_default().trim().to_owned(),
            before: before.map(parse).transpose()?,
        })
    }

    /// The search text, when there is one.
    pub fn search(&self) -> Option<String> {
        Some(self.q.clone()).filter(|q| !q.is_empty())
    }
}

/// Keeps `limit` of the `limit + 1` rows fetched; returns the cursor of the
/// next page when there is one.
pub fn cut<T>(rows: &mut Vec<T>, limit: i64, key: impl Fn(&T) -> Key) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(|row| {
        let (at, id) = key(row);
        format!("{}_{}", at.timestamp_micros(), id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_the_key_it_was_made_from() {
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        let mut rows = vec![(at, id), (at, Uuid::nil())];
        let next = cut(&mut rows, 1, |r| *r).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(parse(&next).unwrap(), (at, id));
        assert_eq!(cut(&mut rows, 1, |r| *r), None);
        for broken in ["", "12", "x_y", "12_not-a-uuid"] {
            assert!(parse(broken).is_err(), "{broken}");
        }
    }
}
