//! `audit verify`: walks hash-chained trails and checks each against every signed checkpoint it
//! can find (`crate::anchor`). Reports edited, removed, inserted or reordered rows, a cut-off
//! tail, a rewritten (re-hashed) stretch, missing checkpoints and bad checkpoint signatures,
//! naming the first bad sequence number it can establish. Exit 1 on any problem, so monitoring
//! can alert on it.
//!
//! Where it looks:
//! - `--config-dir DIR` (the three service configs, as `dev init` writes them): every trail of
//!   every service found there; for each, the origin's database, its receivers' databases
//!   (`checkpoint.receivers`) and its checkpoint file under `log.dir`; keys from the configs.
//! - `--config FILE` or `--url URL` (one database): the trails named by `--trail` (default
//!   `public`), the checkpoints that database holds, the config's checkpoint file, and whatever
//!   `--checkpoints FILE` and `--anchor-url URL` add; keys from `--checkpoint-key` and the config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use common::checkpoint::{self, Checkpoint, CheckpointKeys};
use common::config::Config;
use common::ServiceName;
use serde::Serialize;
use sqlx::PgPool;

use crate::output::Output;
use common::anchor::{self, Source, TrailCheck};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify trails: their hash chains and their signed checkpoints.
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trail {
    /// public-api's audit_logs.
    #[value(alias = "audit-logs")]
    Public,
    /// phi-vault's access_log (metadata of every PHI access).
    #[value(alias = "access-log")]
    Phi,
    /// phi-vault's access_reviews (compliance findings on flagged accesses).
    AccessReviews,
    /// phi-vault's disclosures (the accounting of disclosures).
    Disclosures,
    /// The consent service's decisions (every disclosure question and its answer).
    #[value(alias = "decisions")]
    Consent,
    /// The consent service's consents.
    Consents,
    /// The consent service's revocations.
    Revocations,
}

impl Trail {
    const ALL: [Trail; 7] = [
        Trail::Public,
        Trail::Phi,
        Trail::AccessReviews,
        Trail::Disclosures,
        Trail::Consent,
        Trail::Consents,
        Trail::Revocations,
    ];

    fn anchored(self) -> checkpoint::Trail {
        match self {
            Trail::Public => checkpoint::Trail::AuditLogs,
            Trail::Phi => checkpoint::Trail::AccessLog,
            Trail::AccessReviews => checkpoint::Trail::AccessReviews,
            Trail::Disclosures => checkpoint::Trail::Disclosures,
            Trail::Consent => checkpoint::Trail::Decisions,
            Trail::Consents => checkpoint::Trail::Consents,
            Trail::Revocations => checkpoint::Trail::Revocations,
        }
    }

    fn table(self) -> &'static str {
        self.anchored().table()
    }

    fn service(self) -> ServiceName {
        self.anchored().service()
    }

    async fn verify_chain(self, pool: &PgPool, limit: usize) -> Result<common::chain::Verification, sqlx::Error> {
        match self {
            Trail::Public => public_api::audit::verify(pool, limit).await,
            Trail::Phi => phi_vault::access_log::verify(pool, limit).await,
            Trail::AccessReviews => phi_vault::access_log::verify_reviews(pool, limit).await,
            Trail::Disclosures => phi_vault::disclosures::verify(pool, limit).await,
            Trail::Consent => consent::decisions::verify(pool, limit).await,
            Trail::Consents => consent::consents::verify(pool, limit).await,
            Trail::Revocations => consent::consents::verify_revocations(pool, limit).await,
        }
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Which trail (repeatable). Default: every trail with --config-dir, `public` otherwise.
    #[arg(long, value_enum)]
    pub trail: Vec<Trail>,
    /// A directory holding the services' configs (`public-api.toml`, `phi-vault.toml`,
    /// `consent.toml`): every trail is checked against every database and checkpoint file they name.
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// The owning service's config file (its database.url is used; SELECT suffices).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["url", "config_dir"])]
    pub config: Option<PathBuf>,
    /// Or a URL of the trail's database.
    #[arg(long, value_name = "URL", env = "SECONDWIND_AUDIT_DATABASE_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// Another checkpoint file (repeatable; e.g. each instance's). All files count as one place.
    #[arg(long = "checkpoints", value_name = "FILE")]
    pub checkpoint_files: Vec<PathBuf>,
    /// Another database holding checkpoints, e.g. a receiver's (repeatable; SELECT suffices).
    #[arg(long = "anchor-url", value_name = "URL")]
    pub anchor_urls: Vec<String>,
    /// A service's checkpoint public key, `SERVICE=FILE` (repeatable).
    #[arg(long = "checkpoint-key", value_name = "SERVICE=FILE", value_parser = parse_key_arg)]
    pub checkpoint_keys: Vec<(ServiceName, PathBuf)>,
    /// How old a row beyond the last checkpoint may be before that counts as a missing checkpoint.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub max_unanchored_secs: u64,
    /// Stop after this many chain breaks per trail.
    #[arg(long, default_value_t = 100)]
    pub max_breaks: usize,
}

fn parse_key_arg(text: &str) -> Result<(ServiceName, PathBuf), String> {
    let (service, file) = text.split_once('=').ok_or("expected SERVICE=FILE")?;
    Ok((service.parse()?, PathBuf::from(file)))
}

/// Where checkpoints are read from.
#[derive(Debug, Clone)]
enum Place {
    /// `receiver`: set when this database stores the origin's checkpoints as a configured
    /// receiver (what the origin has not delivered there yet is pending, not missing).
    Database {
        label: String,
        url: String,
        receiver: Option<ServiceName>,
    },
    File {
        label: String,
        path: PathBuf,
    },
}

/// What to check for one trail.
struct Plan {
    trail: Trail,
    url: String,
    places: Vec<Place>,
}

#[derive(Serialize)]
struct Report {
    trail: Trail,
    #[serde(flatten)]
    check: TrailCheck,
}

#[derive(Serialize)]
struct Summary<'a> {
    intact: bool,
    trails: &'a [Report],
}

type Configs = BTreeMap<ServiceName, Config<toml::Table>>;

/// What each place holds, by its label: its checkpoints and a file's malformed lines.
type Held = BTreeMap<String, (Vec<Checkpoint>, Vec<(usize, String)>)>;

fn load_config(service: ServiceName, file: &Path) -> anyhow::Result<Config<toml::Table>> {
    Config::load(service, Some(file)).with_context(|| format!("reading {}", file.display()))
}

/// The checkpoint keys a config names: its peers' and its own.
fn keys_from(service: ServiceName, config: &Config<toml::Table>, keys: &mut CheckpointKeys) -> anyhow::Result<()> {
    keys.extend(CheckpointKeys::all_from_config(service, config)?);
    Ok(())
}

fn file_place(service: ServiceName, config: &Config<toml::Table>) -> Option<Place> {
    let path = checkpoint::file_in(config.log.dir.as_deref()?, service);
    Some(Place::File { label: format!("{service} checkpoint file {}", path.display()), path })
}

/// `--checkpoints FILE`s (for example every instance's file).
fn extra_files(args: &VerifyArgs) -> impl Iterator<Item = Place> + '_ {
    args.checkpoint_files
        .iter()
        .map(|path| Place::File { label: format!("checkpoint file {}", path.display()), path: path.clone() })
}

fn plan_dir(dir: &Path, args: &VerifyArgs, keys: &mut CheckpointKeys) -> anyhow::Result<Vec<Plan>> {
    let mut configs = Configs::new();
    for service in ServiceName::ALL {
        let file = dir.join(format!("{service}.toml"));
        if file.is_file() {
            let config = load_config(service, &file)?;
            keys_from(service, &config, keys)?;
            configs.insert(service, config);
        }
    }
    anyhow::ensure!(!configs.is_empty(), "{} holds no service config (<service>.toml)", dir.display());
    let trails: Vec<Trail> = if args.trail.is_empty() {
        Trail::ALL.into_iter().filter(|t| configs.contains_key(&t.service())).collect()
    } else {
        args.trail.clone()
    };
    let url_of = |service: ServiceName| -> anyhow::Result<String> {
        let config = configs.get(&service).with_context(|| format!("no {service}.toml in {}", dir.display()))?;
        Ok(config.database.url.expose().clone())
    };
    let mut plans = Vec::new();
    for trail in trails {
        let origin = trail.service();
        let url = url_of(origin)?;
        let mut places =
            vec![Place::Database { label: format!("{origin} database"), url: url.clone(), receiver: None }];
        let config = &configs[&origin];
        for receiver in config.checkpoint.iter().flat_map(|c| &c.receivers) {
            places.push(Place::Database {
                label: format!("{receiver} database"),
                url: url_of(*receiver)?,
                receiver: Some(*receiver),
            });
        }
        places.extend(file_place(origin, config));
        places.extend(extra_files(args));
        plans.push(Plan { trail, url, places });
    }
    Ok(plans)
}

fn plan_one(args: &VerifyArgs, keys: &mut CheckpointKeys) -> anyhow::Result<Vec<Plan>> {
    let trails = if args.trail.is_empty() { vec![Trail::Public] } else { args.trail.clone() };
    let service = trails[0].service();
    anyhow::ensure!(
        trails.iter().all(|t| t.service() == service),
        "these trails live in different databases: use --config-dir"
    );
    let (url, config) = match (&args.url, &args.config) {
        (Some(url), _) => (url.clone(), None),
        (None, Some(file)) => {
            let config = load_config(service, file)?;
            keys_from(service, &config, keys)?;
            (config.database.url.expose().clone(), Some(config))
        }
        (None, None) => anyhow::bail!("give --config-dir, --config or --url"),
    };
    let mut places = vec![Place::Database { label: format!("{service} database"), url: url.clone(), receiver: None }];
    places.extend(config.as_ref().and_then(|c| file_place(service, c)));
    for (n, anchor) in args.anchor_urls.iter().enumerate() {
        let label = format!("anchor database {}", n + 1);
        places.push(Place::Database { label, url: anchor.clone(), receiver: None });
    }
    places.extend(extra_files(args));
    Ok(trails.into_iter().map(|trail| Plan { trail, url: url.clone(), places: places.clone() }).collect())
}

/// Connections, one per distinct URL.
#[derive(Default)]
struct Pools(BTreeMap<String, PgPool>);

impl Pools {
    async fn get(&mut self, url: &str) -> anyhow::Result<PgPool> {
        if let Some(pool) = self.0.get(url) {
            return Ok(pool.clone());
        }
        let pool = common::db::connect_with_backoff(url, 2, Duration::from_secs(10)).await?;
        self.0.insert(url.to_owned(), pool.clone());
        Ok(pool)
    }

    async fn close(self) {
        for pool in self.0.into_values() {
            pool.close().await;
        }
    }
}

/// Every checkpoint each place holds (read once per place), and a file's malformed lines.
async fn read_places(plans: &[Plan], pools: &mut Pools) -> anyhow::Result<Held> {
    let mut read = BTreeMap::new();
    for place in plans.iter().flat_map(|p| &p.places) {
        let (label, content) = match place {
            Place::Database { label, .. } | Place::File { label, .. } if read.contains_key(label) => continue,
            Place::Database { label, url, .. } => {
                let pool = pools.get(url).await?;
                let held = checkpoint::held(&pool).await.with_context(|| format!("reading checkpoints in {label}"))?;
                (label, (held, Vec::new()))
            }
            Place::File { label, path } => {
                let lines = match checkpoint::read_file(path) {
                    Ok(lines) => lines,
                    // A file that should be there and is not: every checkpoint is missing from it.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                let mut good = Vec::new();
                let mut bad = Vec::new();
                for (line, parsed) in lines {
                    match parsed {
                        Ok(c) => good.push(c),
                        Err(e) => bad.push((line, e)),
                    }
                }
                (label, (good, bad))
            }
        };
        read.insert(label.clone(), content);
    }
    Ok(read)
}

fn label(place: &Place) -> &str {
    match place {
        Place::Database { label, .. } | Place::File { label, .. } => label,
    }
}

async fn check(
    plan: &Plan,
    pools: &mut Pools,
    read: &Held,
    keys: &CheckpointKeys,
    args: &VerifyArgs,
) -> anyhow::Result<Report> {
    let anchored = plan.trail.anchored();
    let pool = pools.get(&plan.url).await?;
    let verification = plan
        .trail
        .verify_chain(&pool, args.max_breaks)
        .await
        .with_context(|| format!("reading {}", plan.trail.table()))?;
    let origin = plan.trail.service();
    let ours = |held: Vec<Checkpoint>| held.into_iter().filter(|c| c.origin == origin && c.trail == anchored);
    let mut sources = Vec::new();
    // The checkpoint files are one place together: with several instances, each appends what it
    // published to its own file.
    let mut files = Source {
        label: String::new(),
        checkpoints: Vec::new(),
        malformed: Vec::new(),
        undelivered: Default::default(),
    };
    let mut file_labels = Vec::new();
    for place in &plan.places {
        let (held, malformed) = read.get(label(place)).cloned().unwrap_or_default();
        match place {
            Place::Database { receiver, .. } => {
                let undelivered = match receiver {
                    Some(receiver) => anchor::undelivered(&pool, origin, anchored, *receiver).await?,
                    None => Default::default(),
                };
                let checkpoints = ours(held).collect();
                sources.push(Source { label: label(place).to_owned(), checkpoints, malformed, undelivered });
            }
            Place::File { path, .. } => {
                file_labels.push(label(place).to_owned());
                files.checkpoints.extend(ours(held));
                let path = path.display();
                files.malformed.extend(malformed.into_iter().map(|(line, e)| (line, format!("{path}: {e}"))));
            }
        }
    }
    if !file_labels.is_empty() {
        files.label = match &file_labels[..] {
            [one] => one.clone(),
            many => format!("{origin} checkpoint files ({} files)", many.len()),
        };
        sources.push(files);
    }
    let bound = Duration::from_secs(args.max_unanchored_secs);
    let check = anchor::check_trail(&pool, anchored, verification, &sources, keys, bound).await?;
    Ok(Report { trail: plan.trail, check })
}

fn describe(report: &Report) -> String {
    let report = &report.check;
    let anchors = match report.checkpoints.latest {
        Some((number, seq)) => {
            let places: Vec<String> =
                report.checkpoints.sources.iter().map(|(label, n)| format!("{label}: {n}")).collect();
            format!(
                "{} checkpoint(s), latest #{number} at seq {seq} ({})",
                report.checkpoints.verified,
                places.join(", ")
            )
        }
        None => "no checkpoints".to_owned(),
    };
    let head = format!("{} ({})", report.table, report.origin);
    let pending: String = report
        .checkpoints
        .pending_delivery
        .iter()
        .map(|(number, place)| {
            format!("\n  note: checkpoint #{number} is not delivered to {place} yet (its origin retries)")
        })
        .collect();
    if report.intact {
        return format!("{head}: intact: {} rows verified; {anchors}{pending}", report.rows_checked);
    }
    let mut s = format!(
        "{head}: BROKEN: {} rows checked, {} break(s), {} checkpoint problem(s){}; {anchors}",
        report.rows_checked,
        report.breaks.len(),
        report.problems.len(),
        report.first_bad_seq.map(|s| format!("; first bad seq {s}")).unwrap_or_default()
    );
    for b in &report.breaks {
        s.push_str(&format!("\n  seq {}: {:?}", b.seq, b.problem));
    }
    for p in &report.problems {
        s.push_str(&format!("\n  {}", p.describe()));
    }
    s.push_str(&pending);
    s
}

pub async fn run(cmd: AuditCommand, out: &Output) -> anyhow::Result<()> {
    let AuditCommand::Verify(args) = cmd;
    let mut keys = CheckpointKeys::default();
    for (service, file) in &args.checkpoint_keys {
        keys.insert(*service, common::keys::read_public(file)?);
    }
    let plans = match &args.config_dir {
        Some(dir) => plan_dir(dir, &args, &mut keys)?,
        None => plan_one(&args, &mut keys)?,
    };
    let mut pools = Pools::default();
    let read = read_places(&plans, &mut pools).await?;
    let mut reports = Vec::new();
    for plan in &plans {
        out.progress(format!("verifying {} against {} place(s)", plan.trail.table(), plan.places.len()));
        reports.push(check(plan, &mut pools, &read, &keys, &args).await?);
    }
    pools.close().await;
    let intact = reports.iter().all(|r| r.check.intact);
    let text = || reports.iter().map(describe).collect::<Vec<_>>().join("\n");
    // One trail: its report (the shape scripts already read); several: a summary of them all.
    match &reports[..] {
        [one] => out.result(one, text)?,
        all => out.result(&Summary { intact, trails: all }, text)?,
    }
    if !intact {
        let broken: Vec<&str> = reports.iter().filter(|r| !r.check.intact).map(|r| r.check.table).collect();
        anyhow::bail!("the audit chain is broken: {}", broken.join(", "));
    }
    Ok(())
}
