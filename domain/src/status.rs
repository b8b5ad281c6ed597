//! Where a job and a product are in their lives. The database stores them as
//! text (`jobs.status`, `products.status`, each with a CHECK of these values);
//! these enums are the one list of them that code, pages and filters share.

use std::fmt;

/// A status name that is not one of the enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {what} status; statuses are {known}")]
pub struct UnknownStatus {
    pub what: &'static str,
    pub value: String,
    pub known: String,
}

/// Declares a status enum stored as text: its names, `ALL`, `as_str`,
/// parsing, serde as the name, and (with the `sqlx` feature) the column type.
macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every status, in the order of a job's or product's life.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name stored in the database and shown in filters.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Every status's name, in order.
            pub fn names() -> impl Iterator<Item = &'static str> {
                Self::ALL.iter().map(|s| s.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownStatus;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownStatus {
                        what: $what,
                        value: s.to_owned(),
                        known: Self::names().collect::<Vec<_>>().join(", "),
                    }),
                }
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self.as_str() == other.as_str()
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

status_enum!(
    /// A job's status.
    JobStatus, "job" {
        Queued = "queued",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

status_enum!(
    /// A product's status during processing and review.
    ProductStatus, "product" {
        Pending = "pending",
        Processing = "processing",
        NeedsReview = "needs_review",
        Approved = "approved",
        Rejected = "rejected",
    }
);

impl JobStatus {
    /// Whether the job's life is over (nothing will run it again by itself).
    pub fn has_ended(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Whether a person may queue the job again.
    pub fn can_retry(self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::Cancelled)
    }
}

impl ProductStatus {
    /// The verdicts a reviewer gives.
    pub const VERDICTS: &'static [ProductStatus] =
        &[ProductStatus::Approved, ProductStatus::Rejected];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_from_their_names() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>().unwrap(), *status);
        }
        for status in ProductStatus::ALL {
            assert_eq!(status.as_str().parse::<ProductStatus>().unwrap(), *status);
        }
        let unknown = "done".parse::<JobStatus>().unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "\"done\" is not a job status; statuses are queued, running, completed, failed, cancelled"
        );
    }

    #[test]
    fn statuses_are_written_in_json_by_name() {
        assert_eq!(
            serde_json::to_string(&ProductStatus::NeedsReview).unwrap(),
            "\"needs_review\""
        );
        assert_eq!(
            serde_json::from_str::<JobStatus>("\"cancelled\"").unwrap(),
            JobStatus::Cancelled
        );
    }
}
