//! Client verbs for a person at a terminal: `set`, `get`, `del`, `nodes`,
//! `call`. Exit codes: 0 done, 1 key not found (`call`: the command
//! answered an error), 2 any other failure (bad input, unreachable
//! cluster, server error).

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

/// Where the cluster is.
#[derive(Args, Debug)]
pub struct UrlArgs {
    /// Base URL of a master or the load balancer
    #[arg(long, env = "DISTCACHE_URL", default_value = "http://127.0.0.1:8081")]
    pub url: String,
    /// Bearer token, when the cluster has AUTH_TOKENS
    #[arg(long, env = "DISTCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of CA certificates to trust (besides the system's) for https:// URLs
    #[arg(long, env = "TLS_CA")]
    pub ca: Option<std::path::PathBuf>,
}

impl UrlArgs {
    /// A client builder for these options: trusts `--ca`, sends `--token`.
    pub(crate) fn client_builder(&self) -> Result<reqwest::ClientBuilder, String> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &self.token {
            let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "--token is not a valid header value".to_string())?;
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(
            distcache_server::security::tls::client_builder(self.ca.as_deref())
                .map_err(|e| format!("{e:#}"))?
                .default_headers(headers),
        )
    }

    /// An HTTP client for these options, with a 10 s timeout per request.
    pub(crate) fn client(&self) -> Result<reqwest::Client, String> {
        self.client_builder()?
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())
    }
}

/// A key and where the cluster is.
#[derive(Args, Debug)]
pub struct KeyArgs {
    /// The key
    pub key: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub url: UrlArgs,
}

/// Arguments of `set`.
#[derive(Args, Debug)]
pub struct SetArgs {
    /// The key
    pub key: String,
    /// The value: JSON if it parses as JSON (42, true, {"a":1}), else a
    /// string; `-` reads it from standard input, as is (a trailing newline
    /// included)
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub value: Option<String>,
    /// Read the value from this file, as is (for values too large for a
    /// command line)
    #[arg(long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// Seconds to live (0 or absent: no expiry)
    #[arg(long)]
    pub ttl: Option<u64>,
    /// Store VALUE as a string even if it parses as JSON
    #[arg(long)]
    pub string: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub url: UrlArgs,
}

/// Arguments of `call`.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// The command and its arguments, as redis-cli takes them (`HSET k f v`);
    /// put `--` before them when one starts with `-` and is not a number
    #[arg(required = true, num_args = 1.., allow_negative_numbers = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub url: UrlArgs,
}

const NOT_FOUND: u8 = 1;
const COMMAND_ERROR: u8 = 1;
const FAILED: u8 = 2;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("distcache: {message}");
    ExitCode::from(FAILED)
}

/// Percent-encodes a key as one URL path segment. Dots are encoded too, so
/// that URL normalisation cannot read the keys `.` and `..` as directories.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() * 3);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The server's error message from a JSON error body, else the raw body.
async fn error_message(resp: reqwest::Response) -> String {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    format!("{status}: {message}")
}

/// The text of the value: the argument, standard input (`-`), or `--file`.
/// A shell cannot pass a value of megabytes as an argument ("Argument list
/// too long"), so the other two take any size.
fn value_text(args: &SetArgs) -> Result<String, String> {
    let bytes = match (&args.file, args.value.as_deref()) {
        (Some(path), _) => std::fs::read(path)
            .map_err(|e| format!("cannot read --file {}: {e}", path.display()))?,
        (None, Some("-")) => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
                .map_err(|e| format!("cannot read the value from standard input: {e}"))?;
            bytes
        }
        (None, Some(text)) => return Ok(text.to_owned()),
        // clap requires VALUE unless --file is given.
        (None, None) => return Err("give a VALUE, - (standard input) or --file FILE".into()),
    };
    String::from_utf8(bytes).map_err(|_| {
        "the value is not UTF-8 text (values are JSON or strings; encode binary data first)".into()
    })
}

/// `distcache set KEY VALUE|-|--file F [--ttl N] [--string]`.
pub async fn set(args: SetArgs) -> ExitCode {
    let text = match value_text(&args) {
        Ok(text) => text,
        Err(e) => return fail(e),
    };
    let value = if args.string {
        Value::String(text)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    let mut body = serde_json::json!({"key": args.key, "value": value});
    if let Some(ttl) = args.ttl {
        body["ttl"] = ttl.into();
    }
    let url = format!("{}/data", base(&args.url.url));
    let client = match args.url.client() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match client.post(&url).json(&body).send().await {
        Ok(resp) if resp.status().is_success() => {
            println!("OK");
            ExitCode::SUCCESS
        }
        Ok(resp) => fail(error_message(resp).await),
        Err(e) => fail(format!("cannot reach {url}: {e}")),
    }
}

/// `distcache get KEY`: prints the value as JSON, and its TTL on stderr.
pub async fn get(args: KeyArgs) -> ExitCode {
    let url = format!("{}/data/{}", base(&args.url.url), encode_key(&args.key));
    let client = match args.url.client() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match client.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => match resp.json::<Value>().await {
            Ok(body) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body["value"]).unwrap_or_default()
                );
                if let Some(ttl) = body["ttl"].as_u64() {
                    eprintln!("(expires in {ttl} s)");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("unreadable answer: {e}")),
        },
        Ok(resp) if resp.status() == reqwest::StatusCode::NOT_FOUND => {
            eprintln!("(not found)");
            ExitCode::from(NOT_FOUND)
        }
        Ok(resp) => fail(error_message(resp).await),
        Err(e) => fail(format!("cannot reach {url}: {e}")),
    }
}

/// `distcache del KEY`.
pub async fn del(args: KeyArgs) -> ExitCode {
    let url = format!("{}/data/{}", base(&args.url.url), encode_key(&args.key));
    let client = match args.url.client() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match client.delete(&url).send().await {
        Ok(resp) if resp.status().is_success() => {
            println!("deleted");
            ExitCode::SUCCESS
        }
        Ok(resp) if resp.status() == reqwest::StatusCode::NOT_FOUND => {
            eprintln!("(not found)");
            ExitCode::from(NOT_FOUND)
        }
        Ok(resp) => fail(error_message(resp).await),
        Err(e) => fail(format!("cannot reach {url}: {e}")),
    }
}

/// `distcache nodes`: a table of the auxiliaries, as the master's last
/// health checks saw them.
pub async fn nodes(args: UrlArgs) -> ExitCode {
    let url = format!("{}/nodes", base(&args.url));
    let client = match args.client() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let body = match client.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => match resp.json::<Value>().await {
            Ok(body) => body,
            Err(e) => return fail(format!("unreadable answer: {e}")),
        },
        Ok(resp) => return fail(error_message(resp).await),
        Err(e) => return fail(format!("cannot reach {url}: {e}")),
    };
    let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<24} {:<22} {:<8} {:>10} {:>12}",
        "ID", "ADDRESS", "STATE", "ITEMS", "BYTES"
    );
    for n in &nodes {
        println!(
            "{:<24} {:<22} {:<8} {:>10} {:>12}",
            n["id"].as_str().unwrap_or("?"),
            n["addr"].as_str().unwrap_or("?"),
            n["state"].as_str().unwrap_or("?"),
            n["items"].as_u64().unwrap_or(0),
            n["bytes"].as_u64().unwrap_or(0),
        );
    }
    let up = nodes.iter().filter(|n| n["state"] == "up").count();
    println!("{up} of {} auxiliaries up", nodes.len());
    // The master fills ITEMS and BYTES in from its health checks, so a
    // write shows up only after the next one; say so rather than let a
    // fresh write look lost.
    println!(
        "ITEMS and BYTES are as of each node's last health check (every HEALTH_CHECK_INTERVAL); \
         `distcache stats` asks the nodes now"
    );
    ExitCode::SUCCESS
}

/// `distcache call CMD ARG...`: runs one command through `POST /` and
/// prints its reply as redis-cli does. Strings are asked for in base64
/// (`Upstash-Encoding: base64`), so they print byte for byte, and the
/// status `OK` (the one string that comes back unencoded) prints bare.
pub async fn call(args: CallArgs) -> ExitCode {
    let url = format!("{}/", base(&args.url.url));
    let client = match args.url.client() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let resp = client
        .post(&url)
        .header("Upstash-Encoding", "base64")
        .json(&args.command)
        .send()
        .await;
    let resp = match resp {
        Ok(resp) => resp,
        Err(e) => return fail(format!("cannot reach {url}: {e}")),
    };
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let body: Value = match serde_json::from_str(&text) {
        Ok(body) => body,
        Err(_) => return fail(format!("{status}: {text}")),
    };
    match (&body["result"], &body["error"]) {
        (_, Value::String(error)) => {
            println!("(error) {error}");
            ExitCode::from(COMMAND_ERROR)
        }
        (result, Value::Null) if body.get("result").is_some() => {
            print!("{}", redis_cli_format(result, 0));
            ExitCode::SUCCESS
        }
        // A refusal of the request itself (401, 413...): the REST shape.
        _ => fail(format!(
            "{status}: {}",
            body["error"]["message"].as_str().unwrap_or(&text)
        )),
    }
}

/// A reply as redis-cli prints it on a terminal, each line ending in a
/// newline; `indent` is the width of the array prefixes before it.
fn redis_cli_format(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "(nil)\n".into(),
        Value::Number(n) => format!("(integer) {n}\n"),
        Value::Bool(b) => format!("(integer) {}\n", u8::from(*b)),
        Value::String(s) if s == "OK" => "OK\n".into(),
        Value::String(s) => {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(s) {
                Ok(bytes) => format!("{}\n", quoted(&bytes)),
                Err(_) => format!("{}\n", quoted(s.as_bytes())),
            }
        }
        Value::Array(items) if items.is_empty() => "(empty array)\n".into(),
        Value::Array(items) => {
            let width = items.len().to_string().len();
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                let prefix = format!("{:>width$}) ", i + 1);
                out.push_str(&prefix);
                out.push_str(&redis_cli_format(item, indent + prefix.len()));
            }
            out
        }
        Value::Object(_) => format!("{value}\n"),
    }
}

/// Bytes in double quotes with redis-cli's escapes: `\\`, `\"`, `\n`,
/// `\r`, `\t`, `\a`, `\b`, and `\xNN` for every other byte outside
/// printable ASCII.
fn quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::{encode_key, quoted, redis_cli_format};
    use serde_json::json;

    #[test]
    fn replies_print_as_redis_cli_prints_them() {
        // "YQ==" is base64 of "a", "Yg==" of "b".
        assert_eq!(redis_cli_format(&json!(5), 0), "(integer) 5\n");
        assert_eq!(redis_cli_format(&json!(null), 0), "(nil)\n");
        assert_eq!(redis_cli_format(&json!("OK"), 0), "OK\n");
        assert_eq!(redis_cli_format(&json!("YQ=="), 0), "\"a\"\n");
        assert_eq!(redis_cli_format(&json!([]), 0), "(empty array)\n");
        assert_eq!(
            redis_cli_format(&json!(["YQ==", ["Yg==", 2], null]), 0),
            "1) \"a\"\n2) 1) \"b\"\n   2) (integer) 2\n3) (nil)\n"
        );
        let ten: Vec<_> = (0..10).map(|i| json!(i)).collect();
        let out = redis_cli_format(&json!(ten), 0);
        assert!(out.starts_with(" 1) (integer) 0\n"), "{out}");
        assert!(out.ends_with("10) (integer) 9\n"), "{out}");
    }

    #[test]
    fn strings_are_quoted_with_redis_cli_escapes() {
        assert_eq!(
            quoted(b"a\"b\\c\n\x00\xc3\xa9"),
            r#""a\"b\\c\n\x00\xc3\xa9""#
        );
    }

    #[test]
    fn keys_are_encoded_as_one_path_segment() {
        assert_eq!(encode_key("a/b"), "a%2Fb");
        assert_eq!(encode_key("q?x#y"), "q%3Fx%23y");
        assert_eq!(encode_key("50% off"), "50%25%20off");
        assert_eq!(encode_key("é"), "%C3%A9");
        assert_eq!(encode_key("plain-key_1~"), "plain-key_1~");
        assert_eq!(encode_key(".."), "%2E%2E");
    }
}
