//! The command line: what it offers, what it documents, what `doctor` and
//! `migrate` say about a real database.

use crate::common;

use std::collections::BTreeSet;

use buybuddy::cli::Cli;
use clap::CommandFactory;
use common::*;

#[test]
fn help_lists_the_main_subcommands() {
    let output = std::process::Command::new(binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["serve", "worker", "migrate", "doctor"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing from:\n{help}"
        );
    }
}

/// Every environment variable the binary reads, from its argument definitions.
fn env_vars(command: &clap::Command, found: &mut BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            found.insert(env.to_string_lossy().into_owned());
        }
    }
    for sub in command.get_subcommands() {
        env_vars(sub, found);
    }
}

#[test]
fn readme_documents_every_environment_variable() {
    let mut in_code = BTreeSet::new();
    env_vars(&Cli::command(), &mut in_code);
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let in_readme: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1))
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect();
    let undocumented: Vec<_> = in_code.difference(&in_readme).collect();
    let stale: Vec<_> = in_readme.difference(&in_code).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "README table out of date: undocumented {undocumented:?}, no longer read {stale:?}"
    );
}

#[tokio::test]
async fn doctor_reports_each_part_and_fails_on_an_unmigrated_database() {
    let db = TestDb::new().await;
    let output = tokio::process::Command::new(binary())
        .args(["doctor", "--data-dir", "/tmp/buybuddy-doctor"])
        .env("DATABASE_URL", db.url.expose())
        .output()
        .await
        .unwrap();
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{report}");
    for part in [
        "postgres", "pgvector", "hstore", "schema", "queue", "storage",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("OK") && l.contains(part)),
            "{part} not OK in:\n{report}"
        );
    }
    assert!(
        !report.contains(db.url.expose()),
        "the password must not be printed"
    );

    let empty = TestDb::unmigrated().await;
    let output = tokio::process::Command::new(binary())
        .args(["doctor", "--data-dir", "/tmp/buybuddy-doctor"])
        .env("DATABASE_URL", empty.url.expose())
        .output()
        .await
        .unwrap();
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success());
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("run `buybuddy migrate`")),
        "{report}"
    );

    // `migrate` fixes it.
    let output = tokio::process::Command::new(binary())
        .arg("migrate")
        .env("DATABASE_URL", empty.url.expose())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        buybuddy::db::schema::status(&empty.pool)
            .await
            .unwrap()
            .is_current()
    );
}
