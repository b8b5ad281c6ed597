//! The embedded default database: a PostgreSQL cluster kept in the data folder,
//! created and started on first use and reused by every later run.
//!
//! PostgreSQL refuses to run as root, so when this process is root the server
//! programs run as the `postgres` system user and the cluster's files belong to it.
//! The cluster listens on loopback only and requires a password, which is generated
//! at creation and kept next to the cluster, readable by its owner alone.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context, bail};
use rand::RngExt;

use crate::config::Secret;

/// The superuser and database names inside the embedded cluster.
pub const SUPERUSER: &str = "buybuddy";

/// How hard the cluster works to keep committed data across a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Normal PostgreSQL durability: the embedded default for real use.
    Durable,
    /// No fsync: for throwaway test clusters only.
    Scratch,
}

/// One local PostgreSQL cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The data folder the cluster belongs to (`.data` by default).
    root: PathBuf,
    /// The cluster's name inside the data folder, e.g. `postgres`.
    name: String,
    /// Loopback TCP port.
    port: u16,
    /// Where initdb and pg_ctl live.
    bin_dir: PathBuf,
    durability: Durability,
    /// The system user the server runs as when this process is root.
    run_as: Option<String>,
}

impl Cluster {
    pub fn new(
        root: &Path,
        name: &str,
        port: u16,
        bin_dir: Option<&Path>,
        durability: Durability,
    ) -> anyhow::Result<Self> {
        let bin_dir = match bin_dir {
            Some(dir) => dir.to_owned(),
            None => find_bin_dir()?,
        };
        if !bin_dir.join("pg_ctl").exists() {
            bail!(
                "no PostgreSQL server programs in {} (pg_ctl is missing): run scripts/setup.sh, \
                 or set BUYBUDDY_PG_BIN_DIR, or set DATABASE_URL to use another server",
                bin_dir.display()
            );
        }
        let root = std::path::absolute(root).context("resolving the data folder")?;
        let run_as = nix::unistd::geteuid()
            .is_root()
            .then(|| "postgres".to_owned());
        Ok(Self {
            root,
            name: name.to_owned(),
            port,
            bin_dir,
            durability,
            run_as,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the cluster if it does not exist and starts it if it is not running.
    /// Safe to call from several processes at once.
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating the data folder {}", self.root.display()))?;
        let _lock = self.lock()?;
        let pgdata = self.pgdata()?;
        if !pgdata.join("PG_VERSION").exists() {
            self.init(&pgdata)?;
        }
        if !self.running(&pgdata)? {
            self.start(&pgdata)?;
        }
        Ok(())
    }

    /// Whether the cluster exists and its server is running.
    pub fn is_running(&self) -> anyhow::Result<bool> {
        let pgdata = self.pgdata()?;
        Ok(pgdata.join("PG_VERSION").exists() && self.running(&pgdata)?)
    }

    /// Stops the server (fast shutdown: open transactions are rolled back).
    pub fn stop(&self) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        let pgdata = self.pgdata()?;
        if pgdata.join("PG_VERSION").exists() && self.running(&pgdata)? {
            let pgdata_arg = pgdata.to_string_lossy().into_owned();
            let out = self.run(
                "pg_ctl",
                &["stop", "-D", &pgdata_arg, "-m", "fast", "-w", "-s"],
            )?;
            check(&out, "pg_ctl stop")?;
        }
        Ok(())
    }

    /// The connection URL of one database in the cluster.
    pub fn url(&self, database: &str) -> anyhow::Result<Secret> {
        let password = fs::read_to_string(self.password_file())
            .with_context(|| format!("reading {}", self.password_file().display()))?;
        Ok(Secret::new(format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            password.trim(),
            self.port
        )))
    }

    /// The folder holding the cluster's files.
    pub fn pgdata(&self) -> anyhow::Result<PathBuf> {
        let pointer = self.root.join(format!("{}.location", self.name));
        if let Ok(location) = fs::read_to_string(&pointer) {
            return Ok(PathBuf::from(location.trim()));
        }
        let local = self.root.join(&self.name);
        if local.exists() || self.owner_can_enter(&self.root)? {
            return Ok(local);
        }
        // The server's user cannot reach the data folder (it lies under a private
        // home folder, say): keep the files where it can, and remember where.
        let digest = short_hash(&self.root.to_string_lossy());
        let elsewhere = PathBuf::from(format!("/var/lib/buybuddy/{}-{digest}", self.name));
        fs::create_dir_all(elsewhere.parent().expect("has a parent"))?;
        fs::write(&pointer, elsewhere.to_string_lossy().as_bytes())?;
        Ok(elsewhere)
    }

    pub fn log_file(&self) -> anyhow::Result<PathBuf> {
        Ok(self.pgdata()?.join("server.log"))
    }

    fn password_file(&self) -> PathBuf {
        self.root.join(format!("{}.password", self.name))
    }

    fn lock(&self) -> anyhow::Result<File> {
        let path = self.root.join(format!("{}.lock", self.name));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(file)
    }

    fn init(&self, pgdata: &Path) -> anyhow::Result<()> {
        tracing::info!(path = %pgdata.display(), "creating the embedded PostgreSQL cluster");
        fs::create_dir_all(pgdata)?;
        fs::set_permissions(pgdata, fs::Permissions::from_mode(0o700))?;
        self.give_to_owner(pgdata)?;

        let password: String = {
            let mut rng = rand::rng();
            (0..32)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit"))
                .collect()
        };
        write_private(&self.password_file(), &password)?;
        // initdb reads the password from a file its own user can open.
        let pwfile = std::env::temp_dir().join(format!("buybuddy-pw-{}", std::process::id()));
        write_private(&pwfile, &password)?;
        self.give_to_owner(&pwfile)?;
        let pgdata_arg = pgdata.to_string_lossy().into_owned();
        let pwfile_arg = format!("--pwfile={}", pwfile.display());
        let out = self.run(
            "initdb",
            &[
                "-D",
                &pgdata_arg,
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                &pwfile_arg,
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
        );
        let _ = fs::remove_file(&pwfile);
        check(&out?, "initdb")?;

        let mut settings = format!(
            "\n# Written by buybuddy for the embedded cluster.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {}\n\
             unix_socket_directories = ''\n\
             max_connections = 300\n\
             shared_buffers = '256MB'\n",
            self.port
        );
        if self.durability == Durability::Scratch {
            settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let conf = pgdata.join("postgresql.conf");
        OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .with_context(|| format!("writing {}", conf.display()))?;
        Ok(())
    }

    fn start(&self, pgdata: &Path) -> anyhow::Result<()> {
        if let Err(taken) = port_is_free(self.port) {
            bail!("{taken}");
        }
        tracing::info!(port = self.port, "starting the embedded PostgreSQL cluster");
        let pgdata_arg = pgdata.to_string_lossy().into_owned();
        let log = pgdata.join("server.log").to_string_lossy().into_owned();
        // The port given now wins over the one written at initdb. Statement
        // statistics are loaded where the server has them (`bench queue` reads
        // them; they cost a hash lookup per statement).
        let mut port_option = format!("-p {}", self.port);
        if self.bin_dir.join("../lib/pg_stat_statements.so").is_file() {
            port_option.push_str(" -c shared_preload_libraries=pg_stat_statements");
        }
        let out = self.run(
            "pg_ctl",
            &[
                "start",
                "-D",
                &pgdata_arg,
                "-l",
                &log,
                "-o",
                &port_option,
                "-w",
                "-t",
                "60",
                "-s",
            ],
        )?;
        if !out.status.success() {
            let tail = fs::read_to_string(&log)
                .map(|text| {
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(5)..].join("\n")
                })
                .unwrap_or_default();
            bail!(
                "the embedded PostgreSQL cluster did not start (port {} in use?):\n{}\n{}",
                self.port,
                String::from_utf8_lossy(&out.stderr).trim(),
                tail
            );
        }
        Ok(())
    }

    fn running(&self, pgdata: &Path) -> anyhow::Result<bool> {
        let pgdata_arg = pgdata.to_string_lossy().into_owned();
        Ok(self
            .run("pg_ctl", &["status", "-D", &pgdata_arg])?
            .status
            .success())
    }

    /// Runs one of PostgreSQL's programs, as the cluster's owner when we are root.
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let path = self.bin_dir.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        command
            .args(args)
            .current_dir("/")
            .output()
            .with_context(|| format!("running {}", path.display()))
    }

    fn give_to_owner(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(name) = &self.run_as {
            let user = nix::unistd::User::from_name(name)?.with_context(|| {
                format!("no system user {name:?}: install PostgreSQL with scripts/setup.sh")
            })?;
            std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .with_context(|| format!("giving {} to {name}", path.display()))?;
        }
        Ok(())
    }

    /// Whether the server's user can reach files inside `dir`.
    fn owner_can_enter(&self, dir: &Path) -> anyhow::Result<bool> {
        let Some(user) = &self.run_as else {
            return Ok(true);
        };
        let status = Command::new("runuser")
            .args(["-u", user, "--", "test", "-x"])
            .arg(dir)
            .current_dir("/")
            .status()
            .context("running runuser")?;
        Ok(status.success())
    }
}

/// The newest PostgreSQL server installed the Debian way.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context(
        "PostgreSQL's server programs were not found under /usr/lib/postgresql: \
         run scripts/setup.sh, or set DATABASE_URL to use another server",
    )
}

/// Whether the loopback port is free; if not, says what holds it and how to
/// choose another (two checkouts on one machine both default to 54329).
fn port_is_free(port: u16) -> Result<(), String> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            let holder = port_holder(port).map_or_else(
                || "another program".to_owned(),
                |(pid, what)| format!("{what} (pid {pid})"),
            );
            let free = (port.saturating_add(1)..=port.saturating_add(200))
                .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
                .map_or_else(|| "another port".to_owned(), |p| p.to_string());
            Err(format!(
                "the embedded PostgreSQL cluster cannot listen on 127.0.0.1:{port}: it is taken by {holder}. \
                 Give this data folder another port, e.g. BUYBUDDY_PG_PORT={free} (or --embedded-pg-port {free}), \
                 or stop the other cluster (`buybuddy db stop` in its checkout)."
            ))
        }
        Err(error) => Err(format!(
            "the embedded PostgreSQL cluster cannot listen on 127.0.0.1:{port}: {error}"
        )),
    }
}

/// The process listening on a loopback TCP port, from /proc: its pid and what
/// it is (a PostgreSQL server is named with its data folder).
fn port_holder(port: u16) -> Option<(u32, String)> {
    let listening = format!(":{port:04X}");
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| table.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, state 0A (listen), inode
            (fields.len() > 9 && fields[1].ends_with(&listening) && fields[3] == "0A")
                .then(|| fields[9].to_owned())
        })?;
    let socket = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let holds = fs::read_dir(entry.path().join("fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == socket))
        });
        if !holds {
            continue;
        }
        let name = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let name = name.trim();
        // A postmaster's working folder is its data folder.
        let what = match fs::read_link(entry.path().join("cwd")) {
            Ok(dir) if name.starts_with("postgres") => {
                format!("PostgreSQL with the data folder {}", dir.display())
            }
            _ => name.to_owned(),
        };
        return Some((pid, what));
    }
    None
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let _ = fs::remove_file(path);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    )
}

/// A short stable digest of a path (FNV-1a), to name a folder after it.
fn short_hash(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:08x}", hash as u32)
}
