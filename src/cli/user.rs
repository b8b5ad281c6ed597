//! `buybuddy user add` and `buybuddy token create`: accounts for the web UI and
//! tokens for the JSON API.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

use crate::{auth, config::DbArgs, db};

/// Shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 10;

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user, or set the password of an existing one. The password is read
    /// from standard input (one line) or, on a terminal, asked for twice.
    Add {
        #[command(flatten)]
        db: DbArgs,
        email: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (it is shown only this once).
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// What the token is for, e.g. the script that uses it.
        #[arg(long, default_value = "api")]
        name: String,
    },
}

pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Add { db, email } = command;
    let email = auth::normalize_email(&email)
        .with_context(|| format!("{email:?} is not an email address"))?;
    let password = read_password()?;
    let (_, pool) = super::open_database(&db, &[]).await?;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password)).await??;
    let (_, created) = db::users::upsert(&pool, &email, &hash).await?;
    if created {
        eprintln!("added {email}");
    } else {
        eprintln!("set a new password for {email}");
    }
    Ok(())
}

pub async fn token(command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create { db, user, name } = command;
    let email = auth::normalize_email(&user)
        .with_context(|| format!("{user:?} is not an email address"))?;
    let name = name.trim();
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    let (_, pool) = super::open_database(&db, &[]).await?;
    let account = db::users::by_email(&pool, &email).await?.with_context(|| {
        format!("there is no user {email}: add one with `buybuddy user add {email}`")
    })?;
    let token = auth::new_token();
    db::users::create_api_token(&pool, account.id, name, &auth::token_hash(&token)).await?;
    eprintln!("API token {name:?} for {email} (send it as `Authorization: Bearer <token>`):");
    println!("{token}");
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Again: ")?;
        if first != second {
            bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    Ok(password)
}
