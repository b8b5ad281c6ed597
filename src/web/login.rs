//! Signing in and out.

use axum::{
    Form,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use buybuddy_templates::{login, paths};
use chrono::Utc;
use serde::Deserialize;

use super::{AppError, AppState, error::OwnBody, session};
use crate::{auth, db};

/// Failed sign-ins of one email within the window before it is refused.
const MAX_FAILURES_PER_EMAIL: i64 = 5;
/// Failed sign-ins from one address within the window before it is refused.
const MAX_FAILURES_PER_ADDRESS: i64 = 20;
const WINDOW_SECONDS: i64 = 15 * 60;

/// The peer's IP address, when the server was started with connection info.
pub struct ClientAddress(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    Query(query): Query<NextQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let next = auth::safe_next(query.next.as_deref());
    if session::session_of(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(login::page(&login::LoginForm {
        next,
        ..Default::default()
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    next: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<Credentials>,
) -> Result<Response, AppError> {
    let next = auth::safe_next(form.next.as_deref());
    let again = |status: StatusCode, error: &str| {
        let mut response = (
            status,
            login::page(&login::LoginForm {
                email: form.email.clone(),
                next: next.clone(),
                error: Some(error.to_owned()),
            }),
        )
            .into_response();
        response.extensions_mut().insert(OwnBody);
        response
    };
    let Some(email) = auth::normalize_email(&form.email) else {
        return Ok(again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter the email address of your account.",
        ));
    };
    let (by_email, by_address) =
        db::users::recent_failures(&state.pool, &email, &address, WINDOW_SECONDS).await?;
    if by_email >= MAX_FAILURES_PER_EMAIL || by_address >= MAX_FAILURES_PER_ADDRESS {
        return Ok(again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins. Wait 15 minutes and try again.",
        ));
    }
    let user = db::users::by_email(&state.pool, &email).await?;
    let password = form.password.clone();
    let verified = tokio::task::spawn_blocking(move || match &user {
        Some(user) if auth::verify_password(&user.password_hash, &password) => Some(user.id),
        Some(_) => None,
        None => {
            auth::verify_nothing(&password);
            None
        }
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))?;
    let Some(user_id) = verified else {
        db::users::record_failure(&state.pool, &email, &address).await?;
        tracing::info!(%email, %address, "failed sign-in");
        return Ok(again(StatusCode::UNAUTHORIZED, "Wrong email or password."));
    };
    db::users::clear_failures(&state.pool, &email, WINDOW_SECONDS).await?;
    let token = auth::new_token();
    db::users::create_session(
        &state.pool,
        &auth::token_hash(&token),
        user_id,
        &auth::new_token(),
        Utc::now() + chrono::Duration::days(auth::SESSION_DAYS),
    )
    .await?;
    tracing::info!(%email, "signed in");
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::session_cookie_header(&token, session::over_tls(&headers)),
    );
    Ok(response)
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let Some(token) = session::session_cookie(&headers) {
        db::users::end_session(&state.pool, &auth::token_hash(token)).await?;
    }
    let mut response = Redirect::to(paths::LOGIN).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie_header());
    Ok(response)
}
