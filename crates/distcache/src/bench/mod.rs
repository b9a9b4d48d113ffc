//! `distcache bench`: a load generator for peak numbers, since Locust cannot
//! saturate a Rust server.
//!
//! Layout:
//! - `mod.rs`: the options, and a run: resolve the URLs, optionally preload
//!   every key, then one phase (a `--mix` of REST operations) or one per
//!   command (`--commands`), each warmed up and measured; report.
//! - `worker.rs`: one task per connection, each with its own HTTP/1.1
//!   keep-alive connection, random generator and statistics, so that the
//!   measured path takes no locks. Connections are spread over the `--url`s
//!   round robin.
//! - `commands.rs`: the commands `--commands` sends through `POST /`, and
//!   their keys, members and values.
//! - `keys.rs`: uniform and Zipf key choice.
//! - `capacity.rs`: what the cluster holds, the warning when the keys do
//!   not fit, and why gets missed.
//! - `report.rs`: HDR histograms per operation, errors by kind, the table
//!   and the `--json` document (documented field by field in
//!   docs/benchmarks.md).
//!
//! Exit codes: 0 the run completed without a failed request, 1 it completed
//! with failed requests, 2 it could not start (bad option, unresolvable URL).

mod capacity;
mod commands;
mod keys;
mod report;
mod worker;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::header::HeaderValue;
use rand::Rng;
use serde::Serialize;

use commands::Command;
use keys::{Distribution, KeyPicker};
use report::{CommandSummary, Op, PreloadSummary, Report, Stats};
use worker::{Phase, Plan, Worker};

/// How long a run measures when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Options of `distcache bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Base URL of a master, the load balancer or any HTTP server; repeat
    /// the flag or separate with commas for several, and connections are
    /// spread over them round robin
    #[arg(long = "url", env = "DISTCACHE_URL", value_delimiter = ',', num_args = 1..,
          default_value = "http://127.0.0.1:8081")]
    pub urls: Vec<String>,
    /// Concurrent HTTP/1.1 keep-alive connections, each with one request in
    /// flight at a time
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// How long to measure (after the warm-up): 10s, 500ms, 2m; default 10s
    #[arg(long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Measure this many requests instead of a duration
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Share of each operation, as weights: get=90,set=10,del=0
    #[arg(long, default_value = "get=90,set=10,del=0", value_parser = Mix::parse)]
    pub mix: Mix,
    /// Instead of --mix, measure these commands through the command endpoint
    /// (POST /), one after another, each with its own warm-up and
    /// --duration or --requests: set,get,incr,lpush,sadd,hset,zadd (they run
    /// in that order, so that get reads what set wrote)
    #[arg(long, value_delimiter = ',', value_parser = Command::parse, conflicts_with = "mix")]
    pub commands: Option<Vec<Command>>,
    /// Number of distinct keys
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// How keys are chosen
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Zipf exponent s (rank k has probability proportional to 1/k^s)
    #[arg(long, default_value_t = 0.99, value_parser = parse_non_negative)]
    pub zipf_s: f64,
    /// Bytes of each value written (a JSON string of this many characters)
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Fraction of sets that carry a TTL (of --ttl seconds), 0 to 1
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub ttl_share: f64,
    /// The TTL in seconds of the sets chosen by --ttl-share
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl: u64,
    /// Run the mix this long first, without recording it
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Write every key once (no TTL) before the warm-up, so reads hit
    #[arg(long)]
    pub preload: bool,
    /// Longest wait for a connection or an answer; longer counts as an error
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Prefix of every key (keys are PREFIX0 .. PREFIX<keys-1>): a prefix of
    /// the run's own, so that it never overwrites other keys
    #[arg(long, default_value = "bench-")]
    pub key_prefix: String,
    /// Seed of the random choices (default: random); each connection derives
    /// its own from it
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON on stdout instead of a table
    #[arg(long)]
    pub json: bool,
    /// Bearer token sent with every request (a write token for sets and deletes)
    #[arg(long, env = "DISTCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The operation mix: weights of get, set and del.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Mix {
    /// Weight of `GET /data/{key}`.
    pub get: u32,
    /// Weight of `POST /data`.
    pub set: u32,
    /// Weight of `DELETE /data/{key}`.
    pub del: u32,
}

impl Mix {
    /// Parses `get=90,set=10,del=0`; operations not named weigh 0.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut mix = Mix {
            get: 0,
            set: 0,
            del: 0,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected op=weight, as in get=90,set=10"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the weight must be a whole number"))?;
            match name.trim() {
                "get" => mix.get = weight,
                "set" => mix.set = weight,
                "del" => mix.del = weight,
                other => return Err(format!("unknown operation `{other}` (get, set, del)")),
            }
        }
        if mix.total() == 0 {
            return Err("the weights add up to 0".into());
        }
        Ok(mix)
    }

    fn total(&self) -> u32 {
        self.get + self.set + self.del
    }

    /// A random operation, in proportion to the weights.
    pub fn pick(&self, rng: &mut impl Rng) -> Op {
        let r = rng.random_range(0..self.total());
        if r < self.get {
            Op::Get
        } else if r < self.get + self.set {
            Op::Set
        } else {
            Op::Del
        }
    }
}

/// What a phase of a run sends.
#[derive(Clone, Copy, Debug)]
pub enum Workload {
    /// REST operations, in these proportions.
    Mix(Mix),
    /// This one command through `POST /`.
    Command(Command),
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a duration such as 10s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("`{text}`: unknown unit `{other}` (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("`{text}`: expected a fraction from 0 to 1")),
    }
}

fn parse_non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => Ok(f),
        _ => Err(format!("`{text}`: expected a number >= 0")),
    }
}

/// Percent-encodes text for one URL path segment (as the client verbs do).
fn encode_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One target: where to connect and what to send as `Host`.
struct Target {
    url: String,
    addr: SocketAddr,
    host: HeaderValue,
}

async fn resolve(url: &str) -> Result<Target, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("`{url}`: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("`{url}`: only http:// URLs are supported"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!("`{url}`: give the base URL only, without a path"));
    }
    let authority = uri.authority().ok_or_else(|| format!("`{url}`: no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    let addr = tokio::net::lookup_host((authority.host(), port))
        .await
        .map_err(|e| format!("`{url}`: cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("`{url}`: the host has no address"))?;
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| format!("`{url}`: {e}"))?;
    Ok(Target {
        url: url.to_string(),
        addr,
        host,
    })
}

/// The settings of a run, as the JSON report gives them.
#[derive(Serialize, Debug)]
struct ConfigReport {
    urls: Vec<String>,
    connections: u32,
    duration_s: Option<f64>,
    requests: Option<u64>,
    warmup_s: f64,
    /// `None` in a `--commands` run.
    mix: Option<Mix>,
    /// `None` in a `--mix` run.
    commands: Option<Vec<&'static str>>,
    keys: u64,
    distribution: &'static str,
    zipf_s: f64,
    value_size: usize,
    ttl_share: f64,
    ttl_s: u64,
    preload: bool,
    timeout_s: f64,
    key_prefix: String,
    seed: u64,
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> ExitCode {
    match bench(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("distcache bench: {message}");
            ExitCode::from(2)
        }
    }
}

async fn bench(args: BenchArgs) -> Result<ExitCode, String> {
    let mut targets = Vec::new();
    for url in &args.urls {
        targets.push(resolve(url.trim_end_matches('/')).await?);
    }
    let duration = match (args.duration, args.requests) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_DURATION),
    };
    // Before any write: a key space the cluster cannot hold evicts other
    // keys too, which the user should hear about first.
    let capacity = capacity::fetch(&targets[0].url, args.token.as_deref()).await;
    let over_capacity = capacity.filter(|c| args.keys > c.keys());
    let mut notes = Vec::new();
    if let Some(warning) = capacity.and_then(|c| capacity::warning(args.keys, &args.key_prefix, &c))
    {
        eprintln!("distcache bench: {warning}");
        notes.push(warning);
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let plan = Arc::new(Plan {
        keys: KeyPicker::new(args.distribution, args.keys, args.zipf_s),
        key_count: args.keys,
        key_prefix_path: encode_path_segment(&args.key_prefix),
        key_prefix: args.key_prefix.clone(),
        value_size: args.value_size,
        ttl_share: args.ttl_share,
        ttl_s: args.ttl,
        timeout: args.timeout,
        authorization: match &args.token {
            Some(t) => match HeaderValue::from_str(&format!("Bearer {t}")) {
                Ok(v) => Some(v),
                Err(_) => return Err("--token is not a valid header value".into()),
            },
            None => None,
        },
    });
    let connections = args.connections as usize;
    let mut workers: Vec<Worker> = (0..connections)
        .map(|i| {
            let t = &targets[i % targets.len()];
            let worker_seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            Worker::new(t.addr, t.host.clone(), plan.clone(), worker_seed)
        })
        .collect();

    let mut preload = None;
    if args.preload {
        if !args.json {
            eprintln!(
                "preloading: writing each of the {} keys once, so that gets find them...",
                args.keys
            );
        }
        let started = Instant::now();
        let step = connections as u64;
        let tasks: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(i, mut w)| {
                tokio::spawn(async move {
                    let errors = w.preload(i as u64, step).await;
                    (w, errors)
                })
            })
            .collect();
        workers = Vec::with_capacity(connections);
        let mut errors = 0;
        for t in tasks {
            let (w, e) = t.await.map_err(|e| format!("a preload task failed: {e}"))?;
            workers.push(w);
            errors += e;
        }
        preload = Some(PreloadSummary {
            keys: args.keys,
            seconds: started.elapsed().as_secs_f64(),
            errors,
        });
    }

    let commands = args.commands.as_deref().map(Command::in_run_order);
    let workloads: Vec<Workload> = match &commands {
        Some(commands) => commands.iter().copied().map(Workload::Command).collect(),
        None => vec![Workload::Mix(args.mix)],
    };
    let mut stats = Stats::default();
    let mut elapsed = Duration::ZERO;
    let mut per_command = Vec::new();
    for workload in workloads {
        if let (Workload::Command(c), false) = (workload, args.json) {
            eprintln!("measuring {}...", c.name());
        }
        let measured;
        (workers, measured) = measure(workers, workload, &args, duration).await?;
        stats.merge(&measured.stats);
        elapsed += measured.elapsed;
        if let Workload::Command(c) = workload {
            per_command.push(CommandSummary::new(c, &measured.stats, measured.elapsed));
        }
    }

    let summary = stats.summary(elapsed);
    let failed = summary.total.errors > 0;
    let causes = capacity::MissCauses {
        preload: args.preload,
        deletes: commands.is_none() && args.mix.del > 0,
        ttl_s: (commands.is_none() && args.ttl_share > 0.0).then_some(args.ttl),
        over_capacity,
    };
    let get = &summary.operations.get;
    notes.extend(causes.explain(get.misses, get.ops));
    if let Some(get) = per_command
        .iter()
        .find(|c| c.command == Command::Get.name())
    {
        notes.extend(causes.explain(get.figures.misses, get.figures.ops));
    }
    let config = ConfigReport {
        urls: targets.iter().map(|t| t.url.clone()).collect(),
        connections: args.connections,
        duration_s: duration.map(|d| d.as_secs_f64()),
        requests: args.requests,
        warmup_s: args.warmup.as_secs_f64(),
        mix: commands.is_none().then_some(args.mix),
        commands: commands
            .as_ref()
            .map(|cs| cs.iter().map(|c| c.name()).collect()),
        keys: args.keys,
        distribution: match args.distribution {
            Distribution::Uniform => "uniform",
            Distribution::Zipf => "zipf",
        },
        zipf_s: args.zipf_s,
        value_size: args.value_size,
        ttl_share: args.ttl_share,
        ttl_s: args.ttl,
        preload: args.preload,
        timeout_s: args.timeout.as_secs_f64(),
        key_prefix: args.key_prefix,
        seed,
    };
    let mut out = String::new();
    if args.json {
        let report = Report {
            config,
            preload,
            notes,
            summary,
            commands: commands.is_some().then_some(per_command),
        };
        out = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n";
    } else {
        let c = &config;
        let zipf = match args.distribution {
            Distribution::Zipf => format!(" (s={})", c.zipf_s),
            Distribution::Uniform => String::new(),
        };
        let workload = match (&c.mix, &c.commands) {
            (Some(m), _) => format!("mix get={},set={},del={}", m.get, m.set, m.del),
            (None, Some(cs)) => {
                format!("commands {} through POST /, each on its own", cs.join(","))
            }
            (None, None) => unreachable!("a run has a mix or commands"),
        };
        out += &format!(
            "distcache bench: {} connections to {}; {:.1} s measured after {:.1} s warm-up{}; \
             {workload}; {} keys ({}0 to {}{}), {}{zipf}; {}-byte values\n",
            c.connections,
            c.urls.join(", "),
            summary.elapsed_s,
            c.warmup_s,
            if per_command.len() > 1 { " each" } else { "" },
            c.keys,
            c.key_prefix,
            c.key_prefix,
            c.keys - 1,
            c.distribution,
            c.value_size,
        );
        match &preload {
            Some(p) => {
                out += &format!(
                    "preload: every key written once before the run, so that gets find them: \
                     {} keys in {:.1} s, {} errors\n",
                    p.keys, p.seconds, p.errors
                )
            }
            None => {
                out += "no preload: a get finds a key only once a set wrote it \
                        (--preload writes every key first)\n"
            }
        }
        out += &match commands {
            Some(_) => report::commands_table(&per_command, &summary),
            None => report::table(&summary),
        };
        for note in &notes {
            out += note;
            out += "\n";
        }
    }
    // A closed stdout (piped into `head`) is not worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What one phase measured.
struct Measured {
    stats: Stats,
    elapsed: Duration,
}

/// Runs one phase on `workers`: `workload` for the warm-up, then for
/// `duration` or `--requests`; gives the workers back for the next phase.
async fn measure(
    workers: Vec<Worker>,
    workload: Workload,
    args: &BenchArgs,
    duration: Option<Duration>,
) -> Result<(Vec<Worker>, Measured), String> {
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let done = Arc::new(AtomicU64::new(0));
    let phase = Arc::new(Phase {
        workload,
        measure_from,
        until: duration.map(|d| measure_from + d),
        budget: args.requests,
        issued: AtomicU64::new(0),
        done: done.clone(),
    });
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| spawn_progress(done, args.warmup, duration, args.requests));
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(w.run(phase.clone())))
        .collect();
    let mut stats = Stats::default();
    let mut workers = Vec::with_capacity(tasks.len());
    for t in tasks {
        let mut w = t
            .await
            .map_err(|e| format!("a connection task failed: {e}"))?;
        stats.merge(&std::mem::take(&mut w.stats));
        workers.push(w);
    }
    let elapsed = Instant::now().saturating_duration_since(measure_from);
    if let Some(p) = progress {
        p.abort();
        let _ = p.await;
    }
    Ok((workers, Measured { stats, elapsed }))
}

/// A progress bar on stderr with the live request rate, ticking until aborted.
fn spawn_progress(
    done: Arc<AtomicU64>,
    warmup: Duration,
    duration: Option<Duration>,
    requests: Option<u64>,
) -> tokio::task::JoinHandle<()> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = match (duration, requests) {
        (Some(d), _) => ProgressBar::new((warmup + d).as_millis() as u64),
        (None, Some(n)) => ProgressBar::new(n),
        (None, None) => ProgressBar::no_length(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {wide_bar} {percent:>3}% {msg}")
            .expect("a valid template"),
    );
    tokio::spawn(async move {
        let _clear = ClearOnDrop(bar.clone());
        let start = Instant::now();
        let mut last = (start, 0u64);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let now = Instant::now();
            let n = done.load(Ordering::Relaxed);
            let rate = (n - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
            last = (now, n);
            let phase = if now.duration_since(start) < warmup {
                "warm-up"
            } else {
                "measuring"
            };
            bar.set_message(format!("{rate:>9.0} req/s  {phase}"));
            match duration {
                Some(_) => bar.set_position(now.duration_since(start).as_millis() as u64),
                None => bar.set_position(n),
            }
        }
    })
}

/// Clears the bar when its task is aborted.
struct ClearOnDrop(indicatif::ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_weights_and_rejects_nonsense() {
        let m = Mix::parse("get=90,set=10,del=0").unwrap();
        assert_eq!((m.get, m.set, m.del), (90, 10, 0));
        let m = Mix::parse("get=1").unwrap();
        assert_eq!((m.get, m.set, m.del), (1, 0, 0));
        assert!(Mix::parse("get=0,set=0").is_err());
        assert!(Mix::parse("put=5").is_err());
        assert!(Mix::parse("get").is_err());
        assert!(Mix::parse("get=-1").is_err());
    }

    #[test]
    fn mix_picks_in_proportion() {
        use rand::SeedableRng;
        let m = Mix::parse("get=70,set=20,del=10").unwrap();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            let op = m.pick(&mut rng);
            counts[Op::DATA.iter().position(|o| *o == op).unwrap()] += 1;
        }
        assert!((69_000..71_000).contains(&counts[0]), "{counts:?}");
        assert!((19_000..21_000).contains(&counts[1]), "{counts:?}");
        assert!((9_300..10_700).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn key_prefixes_are_encoded_for_paths() {
        assert_eq!(encode_path_segment("bench-"), "bench-");
        assert_eq!(encode_path_segment("a/b c:"), "a%2Fb%20c%3A");
    }
}
