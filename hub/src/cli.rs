//! The `hearth` command line: `run` (the default), `check-config`, `user`, `token`, `plugin`,
//! `backup`, `restore`, `version`.
//!
//! What `user` and `token` change is recorded in the audit log with no actor (the command line).
//!
//! Every subcommand that touches data takes `--data-dir` (and `--config`, whose `data_dir` it
//! honours) and works whether or not the hub is running: SQLite's locking lets it write beside
//! the hub's writer.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use hearth_automations::say::Say;

use crate::auth;
use crate::config::{Config, ConfigError};
use crate::runtime::{self, Settings};

/// Hearth: a smart-home hub your household owns.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub (the default when no subcommand is given).
    Run(RunArgs),
    /// Check the configuration file and exit.
    CheckConfig(ConfigArgs),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage adapter plugins, and check one with the conformance kit.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Write a backup: the database (a consistent snapshot, also while the hub runs), the
    /// configuration and the key that seals secrets, in one archive.
    Backup(BackupArgs),
    /// Verify a backup and restore it into the data directory (the hub must be stopped).
    ///
    /// Everything is checked first: the format, every file's checksum, the database's integrity
    /// and schema. A database already there is moved aside, never deleted (with --force when it
    /// holds data). With restore, --config FILE is where the backup's configuration is written
    /// (a different file there is moved aside); when FILE exists, its data_dir is restored into.
    Restore(RestoreArgs),
    /// Summarise the hub: whether it runs, what its database holds and takes on disk, the last
    /// backup, and (with a token) each adapter's state and the cloud link's.
    Status(StatusArgs),
    /// Seal a secret (the cloud link's password or an Alink device secret, or a built-in
    /// adapter's key) with this install's key, without writing it in the configuration file.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Print the version.
    Version,
    /// Bluetooth tools.
    #[cfg(feature = "ble")]
    #[command(subcommand)]
    Ble(BleCommand),
}

#[cfg(feature = "ble")]
#[derive(Debug, Subcommand)]
enum BleCommand {
    /// Read a recording of advertisements (JSON lines, as the adapter's `replay` takes) and print
    /// what each one says, as the hub reads it; for reporting and reproducing device problems.
    Replay {
        /// The recording.
        file: PathBuf,
        /// A bind key of an encrypted device: ADDRESS=HEX (repeat for several).
        #[arg(long = "key", value_name = "ADDRESS=HEX")]
        keys: Vec<String>,
    },
}

#[derive(Debug, Args, Clone, Default)]
struct ConfigArgs {
    /// The configuration file (default: ./hearth.toml, else /etc/hearth/hearth.toml, else built-in defaults).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args, Clone, Default)]
struct DataArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The data directory (default: data_dir from the configuration, else ./data).
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone, Default)]
struct RunArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Address and port of the web UI and API (default 0.0.0.0:8080).
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
    /// Address and port of the built-in MQTT broker, or `off` (default 127.0.0.1:1883).
    #[arg(long, value_name = "ADDR:PORT|off")]
    mqtt: Option<String>,
    /// Add the demo home: simulated lights, plugs, sensors, a button, a thermostat and a cover.
    #[arg(long)]
    demo: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The hub's HTTP address (default: [http] listen from the configuration).
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
    /// An API token, for adapters' and the cloud link's states (or set HEARTH_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Print JSON instead of sentences.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Seal and store a secret; the value is read from the first line of standard input, or
    /// asked for twice at a terminal. A running hub uses it from its next start.
    ///
    /// The cloud link's names: `password`, `alink.device_secret`, `alink.<device id>.device_secret`.
    /// The MQTT passwords' (`mqtt`): `users.<username>.password` for a `[[mqtt.users]]` account,
    /// `external.password` for `[mqtt.external]`.
    Set {
        /// `cloud`, `mqtt`, or a built-in adapter's id.
        owner: String,
        /// The secret's name.
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List the names of the stored secrets of `cloud`, `mqtt` or an adapter (never their values).
    List {
        /// `cloud`, `mqtt`, or an adapter's id.
        owner: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Delete a stored secret.
    Delete {
        /// `cloud`, `mqtt`, or an adapter's id.
        owner: String,
        /// The secret's name.
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Args, Clone, Default)]
struct PassphraseArgs {
    /// Encrypt (backup) or decrypt (restore) with the passphrase on the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_stdin")]
    passphrase_file: Option<PathBuf>,
    /// Read the passphrase from the first line of standard input.
    #[arg(long)]
    passphrase_stdin: bool,
}

impl PassphraseArgs {
    fn read(&self) -> anyhow::Result<Option<crate::backup::Passphrase>> {
        if let Some(f) = &self.passphrase_file {
            return Ok(Some(crate::backup::Passphrase::from_file(f)?));
        }
        if self.passphrase_stdin {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            return Ok(Some(crate::backup::Passphrase::new(&line)?));
        }
        Ok(None)
    }
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// The archive to write, like hearth-2026-01-31.hearth-backup (never left half-written).
    file: PathBuf,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The archive to restore.
    file: PathBuf,
    /// Only verify the archive and say what a restore would do; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Restore over a database that holds data (it is moved aside and kept, never deleted).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add an account (a member unless --admin); the password is asked for, or read from stdin
    /// with --password-stdin.
    Add {
        /// Account name.
        name: String,
        /// Make it an administrator (may do everything).
        #[arg(long, conflicts_with = "member")]
        admin: bool,
        /// Make it a member (controls devices and runs scenes; the default).
        #[arg(long)]
        member: bool,
        /// Limit a member to this area (an area id; repeat for more; none means every area).
        #[arg(long = "area", value_name = "AREA")]
        areas: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Set an account's password (its sessions end).
    Passwd {
        /// Account name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove an account and its tokens.
    Remove {
        /// Account name.
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// List the plugins in the plugins directory: enabled or not, and any problem.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Enable a plugin: a running hub starts it within seconds (again, when it was quarantined).
    Enable {
        /// The plugin's id (from its plugin.toml).
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Disable a plugin: a running hub stops it within seconds.
    Disable {
        /// The plugin's id.
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Run the conformance kit on a plugin's directory and print a report (exit status 0 when
    /// every step passes, 1 when one fails).
    Test {
        /// The plugin's directory (holding its plugin.toml).
        path: PathBuf,
        /// The configuration to test with, as a JSON object (defaults from the schema fill the rest).
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a long-lived API token; it is printed once, alone on the last line.
    Create {
        /// The account the token acts as.
        #[arg(long)]
        user: String,
        /// A label to recognise it by.
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this account's tokens.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token id from `hearth token list`.
        id: i64,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// Parses the command line, runs it, and turns errors into messages and exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(c) = e.downcast_ref::<ConfigError>() {
                eprintln!("error: {c}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(merge(cli.run, args)),
        Some(Command::CheckConfig(args)) => check_config(&args),
        Some(Command::User(c)) => user(c),
        Some(Command::Token(c)) => token(c),
        Some(Command::Plugin(c)) => plugin(c),
        Some(Command::Backup(args)) => backup(&args),
        Some(Command::Restore(args)) => restore(&args),
        #[cfg(feature = "ble")]
        Some(Command::Ble(BleCommand::Replay { file, keys })) => ble_replay(&file, &keys),
        Some(Command::Status(args)) => status(&args),
        Some(Command::Secret(c)) => secret(c),
        Some(Command::Version) => {
            let mut out = std::io::stdout();
            writeln!(out, "hearth {} (schema {})", env!("CARGO_PKG_VERSION"), hearth_sdk::SCHEMA_VERSION)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `hearth ble replay FILE`: each advertisement's decoding, one line each.
#[cfg(feature = "ble")]
fn ble_replay(file: &Path, keys: &[String]) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut config = hearth_ble::Config::default();
    for k in keys {
        let (address, hex) = k
            .split_once('=')
            .with_context(|| format!("--key {k}: write ADDRESS=HEX, like A4:C1:38:0A:1B:2C=231d..."))?;
        config.keys.insert(address.to_owned(), hex.to_owned());
    }
    let keys = config.keys().map_err(|e| anyhow::anyhow!(e.replace("[adapters.ble.keys]", "--key")))?;
    let lines = hearth_ble::describe_recording(&text, &keys).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Flags given before `run` (`hearth --demo run`) count too.
fn merge(outer: RunArgs, inner: RunArgs) -> RunArgs {
    RunArgs {
        data: DataArgs {
            config: ConfigArgs { config: inner.data.config.config.or(outer.data.config.config) },
            data_dir: inner.data.data_dir.or(outer.data.data_dir),
        },
        http: inner.http.or(outer.http),
        mqtt: inner.mqtt.or(outer.mqtt),
        demo: inner.demo || outer.demo,
    }
}

fn load_config(args: &ConfigArgs) -> Result<(Config, Option<PathBuf>), ConfigError> {
    match Config::locate(args.config.as_deref()) {
        Some(path) => Ok((Config::load(&path)?, Some(path))),
        None => Ok((Config::default(), None)),
    }
}

fn data_dir(flag: Option<&Path>, config: &Config) -> PathBuf {
    flag.map(Path::to_path_buf).or_else(|| config.data_dir.clone()).unwrap_or_else(|| PathBuf::from("data"))
}

/// Sets up logging to stderr in the configured format. The embedded broker's own log is off by
/// default: it reports routine client disconnects as errors. `HEARTH_LOG=info,rumqttd=info`
/// shows it.
fn init_logging(log: &crate::config::LogConfig) {
    use crate::config::LogFormat;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let spec = std::env::var("HEARTH_LOG").unwrap_or_else(|_| log.level.clone());
    let targets: Targets = format!("rumqttd=off,{spec}").parse().unwrap_or_else(|e| {
        let mut err = std::io::stderr();
        let _ = writeln!(err, "warning: log level `{spec}` is not valid ({e}); using info");
        Targets::new().with_default(tracing::Level::INFO)
    });
    // systemd sets JOURNAL_STREAM when standard error is connected to the journal.
    let format = match log.format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journal,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let registry = tracing_subscriber::registry().with(targets);
    let base = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => registry.with(base.json().with_current_span(false)).try_init(),
        LogFormat::Journal => registry
            .with(base.with_ansi(false).event_format(JournalFormat(tracing_subscriber::fmt::format().without_time())))
            .try_init(),
        LogFormat::Text | LogFormat::Auto => registry.with(base.with_ansi(std::io::stderr().is_terminal())).try_init(),
    };
}

/// Lines for the systemd journal: the syslog priority first (`<3>` error, `<4>` warning, `<6>`
/// info, `<7>` debug and trace), then the usual line without its time.
struct JournalFormat<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JournalFormat<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (mut config, file) = load_config(&args.data.config)?;
    if let Some(http) = args.http {
        config.http.listen = http;
    }
    if let Some(mqtt) = &args.mqtt {
        if mqtt.eq_ignore_ascii_case("off") {
            config.mqtt.enabled = false;
        } else {
            config.mqtt.enabled = true;
            config.mqtt.listen = mqtt
                .parse()
                .with_context(|| format!("--mqtt takes ADDR:PORT (like 127.0.0.1:1883) or `off`, not `{mqtt}`"))?;
        }
    }
    if args.demo {
        config.adapters.demo.enabled = true;
    }
    // Flags can break rules the file alone kept (e.g. --mqtt 0.0.0.0:1883 without accounts).
    config.validate().map_err(|message| ConfigError {
        file: file.clone().unwrap_or_else(|| PathBuf::from("command line")),
        position: None,
        message,
        snippet: None,
    })?;
    init_logging(&config.log);
    if let Some(f) = &file {
        tracing::info!(file = %f.display(), "Read the configuration.");
    }
    let data_dir = data_dir(args.data.data_dir.as_deref(), &config);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(runtime::run(Settings { config, data_dir, config_file: file }))?;
    Ok(ExitCode::SUCCESS)
}

fn check_config(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let (config, file) = load_config(args)?;
    let mut out = std::io::stdout();
    match file {
        Some(f) => writeln!(out, "{}: the configuration is valid.", f.display())?,
        None => writeln!(out, "No configuration file found; the built-in defaults apply.")?,
    }
    writeln!(
        out,
        "http: {}; mqtt: {}; data: {}",
        config.http.listen,
        if config.mqtt.enabled { config.mqtt.listen.to_string() } else { "off".into() },
        data_dir(None, &config).display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn open_db(data: &DataArgs) -> anyhow::Result<rusqlite::Connection> {
    let (config, _) = load_config(&data.config)?;
    let dir = data_dir(data.data_dir.as_deref(), &config);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    Ok(crate::store::open_and_migrate(&dir)?.0)
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password again: ")?;
    if first != second {
        bail!("the passwords differ; nothing was changed");
    }
    Ok(first)
}

/// `hearth status`: see `status.rs`.
fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (config, _) = load_config(&args.data.config)?;
    let input = crate::status::StatusInput {
        config: &config,
        data_dir: data_dir(args.data.data_dir.as_deref(), &config),
        http: args.http.unwrap_or(config.http.listen),
        token: args.token.clone().or_else(|| std::env::var("HEARTH_TOKEN").ok().filter(|t| !t.is_empty())),
    };
    let summary = crate::status::gather(&input);
    let mut out = std::io::stdout();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        write!(out, "{}", crate::status::render(&summary))?;
    }
    // Scripts can tell a stopped hub by the exit status.
    Ok(if summary["running"] == serde_json::json!(true) { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

/// `hearth secret`: sealed secrets from the command line.
fn secret(command: SecretCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    match command {
        SecretCommand::Set { owner, name, data } => {
            let (config, _) = load_config(&data.config)?;
            // The name first, before anyone types a password for nothing; the value after.
            crate::secrets::secret_rule(&config, &owner, &name).map_err(anyhow::Error::msg)?;
            let value = read_password(false)?;
            crate::secrets::check_offline(&config, &owner, &name, &value).map_err(anyhow::Error::msg)?;
            let dir = data_dir(data.data_dir.as_deref(), &config);
            let conn = open_db(&data)?;
            crate::secrets::set_offline(&dir, &conn, &owner, &name, &value)?;
            cli_audit(&conn, "secret.set", &format!("{owner}/{name}"), None)?;
            writeln!(out, "Sealed `{name}` of {owner}; a running hub uses it from its next start.")?;
        }
        SecretCommand::List { owner, data } => {
            let conn = open_db(&data)?;
            let list = crate::secrets::list(&conn, &owner)?;
            if list.is_empty() {
                writeln!(out, "{owner} has no stored secrets.")?;
            }
            for l in list {
                writeln!(out, "{}\t(set {})", l.name, l.updated_at)?;
            }
        }
        SecretCommand::Delete { owner, name, data } => {
            let conn = open_db(&data)?;
            if !crate::secrets::delete(&conn, &owner, &name)? {
                bail!("{owner} has no stored secret `{name}` (see `hearth secret list {owner}`)");
            }
            cli_audit(&conn, "secret.delete", &format!("{owner}/{name}"), None)?;
            writeln!(out, "Deleted `{name}` of {owner}.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records what a command did in the audit log (no account acted: the actor is empty).
fn cli_audit(conn: &rusqlite::Connection, action: &str, target: &str, note: Option<Say>) -> anyhow::Result<()> {
    let note = match note {
        None => Say::AuditCommandLine,
        Some(note) => Say::AuditFromCommandLine { note: Box::new(note) },
    };
    crate::audit::record(conn, &crate::audit::Entry::new(None, action).target(target).note(note))?;
    Ok(())
}

fn user(c: UserCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    match c {
        UserCommand::Add { name, admin, member: _, areas, password_stdin, data } => {
            auth::check_name(&name)?;
            let mut conn = open_db(&data)?;
            let hash = auth::hash_password(&read_password(password_stdin)?)?;
            let tx = conn.transaction()?;
            auth::insert_user(&tx, &name, &hash, admin)?;
            auth::set_user_areas(&tx, &name, &areas)?;
            cli_audit(&tx, "user.add", &name, Some(Say::AuditRole { role: auth::role_name(admin).to_owned() }))?;
            tx.commit()?;
            writeln!(out, "Added {} `{name}`.", if admin { "administrator" } else { "member" })?;
        }
        UserCommand::Passwd { name, password_stdin, data } => {
            let conn = open_db(&data)?;
            let hash = auth::hash_password(&read_password(password_stdin)?)?;
            auth::set_password(&conn, &name, &hash)?;
            cli_audit(&conn, "user.change", &name, Some(Say::AuditPasswordSet))?;
            writeln!(out, "Changed the password of `{name}`; their sessions have ended.")?;
        }
        UserCommand::List { data } => {
            let conn = open_db(&data)?;
            let users = auth::list_users(&conn)?;
            if users.is_empty() {
                writeln!(out, "No accounts yet: add one with `hearth user add NAME --admin`.")?;
            }
            for u in users {
                let areas = if u.admin || u.areas.is_empty() { "all areas".to_owned() } else { u.areas.join(",") };
                writeln!(out, "{}\t{}\t{areas}\tcreated {}", u.name, u.role, u.created_at)?;
            }
        }
        UserCommand::Remove { name, data } => {
            let conn = open_db(&data)?;
            auth::remove_user(&conn, &name)?;
            cli_audit(&conn, "user.remove", &name, None)?;
            writeln!(out, "Removed `{name}` and their tokens.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn token(c: TokenCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    match c {
        TokenCommand::Create { user, name, data } => {
            let conn = open_db(&data)?;
            let (id, token) = auth::create_token(&conn, &user, &name, "api")?;
            cli_audit(
                &conn,
                "token.create",
                &id.to_string(),
                Some(Say::AuditToken { token_kind: "api".into(), name: name.clone(), user: user.clone() }),
            )?;
            writeln!(out, "Created token {id} for `{user}`. Keep it secret; it is not shown again:")?;
            writeln!(out, "{token}")?;
        }
        TokenCommand::List { user, data } => {
            let conn = open_db(&data)?;
            for t in auth::list_tokens(&conn, user.as_deref())? {
                writeln!(out, "{}\t{}\t{}\t{}\tcreated {}", t.id, t.user, t.kind, t.name, t.created_at)?;
            }
        }
        TokenCommand::Revoke { id, data } => {
            let conn = open_db(&data)?;
            auth::revoke_token(&conn, id)?;
            cli_audit(&conn, "token.revoke", &id.to_string(), None)?;
            writeln!(out, "Revoked token {id}.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `hearth backup FILE`: the archive, written whether or not the hub runs; recorded in the
/// audit log.
fn backup(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let (config, file) = load_config(&args.data.config)?;
    let dir = data_dir(args.data.data_dir.as_deref(), &config);
    let passphrase = args.passphrase.read()?;
    let sources = crate::backup::Sources { data_dir: dir.clone(), config_file: file };
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let written = crate::backup::write_file(&sources, &args.file, passphrase.as_ref(), &cancel)?;
    let target = written.path.display().to_string();
    let recorded = crate::store::open_connection(&dir.join(crate::store::DB_FILE))
        .map_err(anyhow::Error::from)
        .and_then(|conn| cli_audit(&conn, "backup", &target, None));
    let mut out = std::io::stdout();
    writeln!(out, "{written}")?;
    if let Err(e) = recorded {
        writeln!(std::io::stderr(), "warning: the backup was not recorded in the audit log: {e:#}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `hearth restore FILE`: verify, then restore (see `backup/restore.rs`).
fn restore(args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    // A --config that does not exist yet is only where the backup's configuration goes.
    let config_out = args.data.config.config.clone();
    let (config, in_use) = match &config_out {
        Some(p) if !p.exists() => (Config::default(), None),
        _ => load_config(&args.data.config)?,
    };
    let passphrase = args.passphrase.read()?;
    let opts = crate::backup::RestoreOptions {
        file: args.file.clone(),
        data_dir: data_dir(args.data.data_dir.as_deref(), &config),
        config_out,
        config_in_use: in_use,
        passphrase,
        dry_run: args.dry_run,
        force: args.force,
    };
    // An encrypted archive and no passphrase given: ask, when someone is at a terminal.
    let mut ask = || {
        if args.passphrase.passphrase_stdin || !std::io::stdin().is_terminal() {
            return None;
        }
        let typed = rpassword::prompt_password("Passphrase of the backup: ").ok()?;
        crate::backup::Passphrase::new(&typed).ok()
    };
    let restored = crate::backup::restore(&opts, &mut ask)?;
    writeln!(std::io::stdout(), "{}", restored.to_string().trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// The plugins directory and the built-in adapters' ids, for `hearth plugin`.
fn plugins_dir(data: &DataArgs) -> anyhow::Result<PathBuf> {
    let (config, _) = load_config(&data.config)?;
    Ok(crate::plugins::dir(&config, &data_dir(data.data_dir.as_deref(), &config)))
}

fn builtin_ids() -> Vec<&'static str> {
    crate::adapters::builtin().iter().map(|b| b.id).collect()
}

/// The installed plugin `id`, usable, or a message that says what to do.
fn installed_plugin(data: &DataArgs, id: &str) -> anyhow::Result<hearth_plugin::manifest::Manifest> {
    let dir = plugins_dir(data)?;
    let found = crate::plugins::scan(&dir, &builtin_ids());
    let Some(p) = found.into_iter().find(|p| p.id == id) else {
        bail!(
            "no plugin `{id}` in {}: put its directory, with its plugin.toml, there (see `hearth plugin list`)",
            dir.display()
        );
    };
    p.manifest.map_err(|e| anyhow::anyhow!("plugin `{id}` cannot be used: {e}"))
}

fn plugin(c: PluginCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    match c {
        PluginCommand::List { data } => {
            let dir = plugins_dir(&data)?;
            let conn = open_db(&data)?;
            let rows = crate::plugins::rows(&conn)?;
            let found = crate::plugins::scan(&dir, &builtin_ids());
            if found.is_empty() {
                writeln!(
                    out,
                    "No plugins in {}: each plugin is a directory there with its plugin.toml.",
                    dir.display()
                )?;
            }
            for p in found {
                let enabled = rows.get(&p.id).is_some_and(|r| r.enabled);
                let state = if enabled { "enabled" } else { "disabled" };
                match &p.manifest {
                    Ok(m) => {
                        let problem = rows
                            .get(&p.id)
                            .and_then(|r| m.validate_config(&r.config).err())
                            .or_else(|| {
                                m.validate_config(&serde_json::json!({})).err().filter(|_| !rows.contains_key(&p.id))
                            })
                            .map(|e| format!("\tconfiguration: {e}"))
                            .unwrap_or_default();
                        writeln!(out, "{}\t{}\t{state}\t{}\t{}{problem}", p.id, m.version, m.name, p.dir.display())?;
                    }
                    Err(e) => writeln!(out, "{}\t-\t{state}\tcannot be used: {e}", p.id)?,
                }
            }
        }
        PluginCommand::Enable { id, data } => {
            let manifest = installed_plugin(&data, &id)?;
            let conn = open_db(&data)?;
            let entered =
                crate::plugins::rows(&conn)?.get(&id).map_or_else(|| serde_json::json!({}), |r| r.config.clone());
            if let Err(e) = manifest.validate_config(&entered) {
                bail!(
                    "plugin `{id}` cannot start with its configuration: {e}. Set it first with PUT /api/v1/plugins/{id}/config (or in the web UI)."
                );
            }
            let mut conn = conn;
            let tx = conn.transaction()?;
            crate::plugins::set_enabled(&tx, &id, true)?;
            cli_audit(&tx, "plugin.enable", &id, None)?;
            tx.commit()?;
            writeln!(
                out,
                "Enabled plugin `{id}` ({} {}); a running hub starts it within seconds.",
                manifest.name, manifest.version
            )?;
        }
        PluginCommand::Disable { id, data } => {
            let conn = open_db(&data)?;
            let known = crate::plugins::rows(&conn)?.contains_key(&id);
            if !known {
                installed_plugin(&data, &id)?;
            }
            let mut conn = conn;
            let tx = conn.transaction()?;
            crate::plugins::set_enabled(&tx, &id, false)?;
            cli_audit(&tx, "plugin.disable", &id, None)?;
            tx.commit()?;
            writeln!(out, "Disabled plugin `{id}`; a running hub stops it within seconds.")?;
        }
        PluginCommand::Test { path, config, json } => {
            let config = config
                .map(|c| serde_json::from_str::<serde_json::Value>(&c))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--config takes a JSON object, like '{{\"interval_secs\": 5}}': {e}"))?;
            let options = hearth_plugin::conformance::Options { config, ..Default::default() };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(hearth_plugin::conformance::check(&path, &options));
            if json {
                writeln!(out, "{}", report.to_json())?;
            } else {
                writeln!(out, "{report}")?;
            }
            return Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
    }
    Ok(ExitCode::SUCCESS)
}
