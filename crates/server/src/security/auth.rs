//! Bearer tokens with roles, and what each public route needs.
//!
//! Roles are ordered: `read` < `write` < `admin`; a token may do what its
//! role and every lower role may. Tokens are kept as SHA-256 digests only:
//! a presented token is hashed and compared with every configured digest in
//! constant time (no early exit), so timing reveals neither which token
//! nor how much of one matched. A token file may hold digests instead of
//! tokens (`sha256:<64 hex digits>:role`), so the file need not contain the
//! tokens themselves.
//!
//! The decision, for a route that needs `need` (what each public route of
//! the master needs is declared in its route table,
//! `master::route_table`):
//!
//! - `/health` (and `/openapi.yaml`) are open, always.
//! - A request carrying the cluster secret may do anything: it is another
//!   node of the cluster.
//! - Membership changes (`POST /nodes`, `DELETE /nodes/{id}`) need an admin
//!   token; with no tokens configured they need the cluster secret when one
//!   is set, so a stranger cannot register or push ring changes.
//! - The command routes (`POST /`, `/pipeline`, `/multi-exec`) need a
//!   valid token of any role to be read at all; each command in the body
//!   then needs its own role from the command table, which the route
//!   checks with [`Gate::granted_role`] (403 `NOPERM` when it lacks it).
//! - Everything else needs a token of the route's role, unless no token is
//!   configured at all: then the API is open (and the master says so at
//!   start).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};

use super::PublicAuthConfig;
use super::secret::ClusterSecret;
use crate::config::ConfigError;
use crate::http::ApiError;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read data, nodes, the ring and the cluster's stats.
    Read = 1,
    /// Read, and write and delete data.
    Write = 2,
    /// Everything, including membership, backup, restore and rebalance.
    Admin = 3,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!("role {other:?} is not one of read, write, admin")),
        }
    }
}

/// Who may read `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsAuth {
    /// Anyone (Prometheus scrapes without a token).
    #[default]
    None,
    /// A token of any role, or the cluster secret.
    Read,
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: probes and documentation.
    Open,
    /// `/metrics`: as `METRICS_AUTH` says.
    Metrics,
    /// A token of at least this role.
    Role(Role),
    /// A change of membership: an admin token or the cluster secret.
    Membership,
    /// Commands over HTTP: a token of any role here, and each command's
    /// own role checked by the route ([`Gate::granted_role`]).
    Command,
}

impl From<distcache_core::command::Role> for Role {
    fn from(role: distcache_core::command::Role) -> Role {
        use distcache_core::command::Role as Command;
        match role {
            Command::Read => Role::Read,
            Command::Write => Role::Write,
            Command::Admin => Role::Admin,
        }
    }
}

/// The configured tokens, as digests.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Role)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Parses one `token:role` or `sha256:<hex>:role` entry.
pub fn parse_entry(entry: &str) -> Result<([u8; 32], Role), String> {
    let (token, role) = entry
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| "an entry is token:role".to_string())?;
    let role: Role = role.parse()?;
    if let Some(hex) = token.strip_prefix("sha256:") {
        let digest = decode_hex32(hex)
            .ok_or_else(|| "a hashed token is sha256:<64 hex digits>:role".to_string())?;
        return Ok((digest, role));
    }
    if token.is_empty() {
        return Err("a token must not be empty".into());
    }
    if token
        .bytes()
        .any(|b| !(0x21..0x7f).contains(&b) || b == b',')
    {
        return Err("a token is printable ASCII without spaces or commas".into());
    }
    Ok((sha256(token.as_bytes()), role))
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// The hex SHA-256 of a token, as a hashed entry wants it.
pub fn token_digest_hex(token: &str) -> String {
    sha256(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Tokens {
    /// Tokens from `AUTH_TOKENS` and `AUTH_TOKENS_FILE` (both may be set).
    pub fn load(config: &PublicAuthConfig) -> Result<Self, ConfigError> {
        let mut tokens = Tokens::default();
        if let Some(list) = &config.auth_tokens {
            for (i, entry) in list.split(',').enumerate() {
                if entry.trim().is_empty() {
                    continue;
                }
                parse_entry(entry)
                    .and_then(|parsed| tokens.add(parsed))
                    .map_err(|reason| ConfigError {
                        setting: "AUTH_TOKENS",
                        reason: format!("entry {}: {reason}", i + 1),
                    })?;
            }
        }
        if let Some(path) = &config.auth_tokens_file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                setting: "AUTH_TOKENS_FILE",
                reason: format!("{}: {e}", path.display()),
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                parse_entry(line)
                    .and_then(|parsed| tokens.add(parsed))
                    .map_err(|reason| ConfigError {
                        setting: "AUTH_TOKENS_FILE",
                        reason: format!("{} line {}: {reason}", path.display(), i + 1),
                    })?;
            }
        }
        Ok(tokens)
    }

    /// Adds a parsed entry. A token listed again with the same role is
    /// kept once; with another role it is refused: which role was meant
    /// cannot be told, and taking the higher would hand out rights by a
    /// typo.
    fn add(&mut self, (digest, role): ([u8; 32], Role)) -> Result<(), String> {
        match self.entries.iter().find(|(d, _)| *d == digest) {
            Some((_, held)) if *held == role => Ok(()),
            Some((_, held)) => Err(format!(
                "a token listed before as {} is listed again as {}: list each token once, with its role",
                role_name(*held),
                role_name(role)
            )),
            None => {
                self.entries.push((digest, role));
                Ok(())
            }
        }
    }

    /// Tokens from entries already parsed.
    pub fn from_entries(entries: Vec<([u8; 32], Role)>) -> Self {
        Tokens { entries }
    }

    /// True when no token is configured (the API is open).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The highest role of a configured token equal to `presented`. Every
    /// entry is compared, match or not, in constant time.
    pub fn role_of(&self, presented: &[u8]) -> Option<Role> {
        let digest = sha256(presented);
        let mut best = 0u8;
        for (d, role) in &self.entries {
            let matched = d.ct_eq(&digest);
            let role = *role as u8;
            let higher = role.ct_gt(&best);
            // best = max(best, role) where matched, without branching on it.
            let take = matched & higher;
            best = u8::conditional_select(&best, &role, take);
        }
        match best {
            1 => Some(Role::Read),
            2 => Some(Role::Write),
            3 => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value; `None` for
/// any other shape. The scheme is case-insensitive; spaces around the token
/// are ignored.
pub fn parse_bearer(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer";
    if value.len() <= SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let rest = &value[SCHEME.len()..];
    if rest[0] != b' ' {
        return None;
    }
    let token = rest.trim_ascii();
    if token.is_empty() || token.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some(token)
}

/// The access decision for the public API.
#[derive(Debug, Clone)]
pub struct Gate {
    tokens: Tokens,
    secret: Option<ClusterSecret>,
    metrics: MetricsAuth,
}

impl Gate {
    /// A gate over these tokens and secret.
    pub fn new(tokens: Tokens, secret: Option<ClusterSecret>, metrics: MetricsAuth) -> Self {
        Gate {
            tokens,
            secret,
            metrics,
        }
    }

    /// True when no token is configured.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The role of a token presented some other way than a header (RESP's
    /// `AUTH`), `None` when it is not one of the configured tokens.
    pub fn role_of_token(&self, token: &[u8]) -> Option<Role> {
        self.tokens.role_of(token)
    }

    /// Whether a request with `headers` may do what `need` says.
    pub fn check(&self, need: Need, headers: &HeaderMap) -> Result<(), ApiError> {
        let need = match need {
            Need::Open => return Ok(()),
            Need::Metrics => match self.metrics {
                MetricsAuth::None => return Ok(()),
                MetricsAuth::Read => Need::Role(Role::Read),
            },
            Need::Command => Need::Role(Role::Read),
            other => other,
        };
        if self
            .secret
            .as_ref()
            .is_some_and(|s| s.presented_in(headers))
        {
            return Ok(());
        }
        if self.tokens.is_empty() {
            if need == Need::Membership && self.secret.is_some() {
                return Err(unauthorized(
                    "membership changes need the cluster secret (x-distcache-secret) or an admin token",
                ));
            }
            return Ok(());
        }
        let required = match need {
            Need::Role(r) => r,
            _ => Role::Admin,
        };
        let token = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            unauthorized("this route needs a bearer token (Authorization: Bearer <token>)")
        })?;
        let token = parse_bearer(token.as_bytes())
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))?;
        let role = self
            .tokens
            .role_of(token)
            .ok_or_else(|| unauthorized("the bearer token is not valid"))?;
        if role < required {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this route needs the {} role; the token has {}",
                    role_name(required),
                    role_name(role)
                ),
            ));
        }
        Ok(())
    }
}

impl Gate {
    /// What a request that passed [`Gate::check`] may do, for a route
    /// whose need depends on its body ([`Need::Command`]): everything
    /// (admin) when no token is configured or the cluster secret is
    /// presented, else its token's role; `None` without a valid token.
    pub fn granted_role(&self, headers: &HeaderMap) -> Option<Role> {
        if self.tokens.is_empty()
            || self
                .secret
                .as_ref()
                .is_some_and(|s| s.presented_in(headers))
        {
            return Some(Role::Admin);
        }
        let token = parse_bearer(headers.get(header::AUTHORIZATION)?.as_bytes())?;
        self.tokens.role_of(token)
    }
}

/// A role's name, as token entries spell it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Read => "read",
        Role::Write => "write",
        Role::Admin => "admin",
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The 401 or 403 answer when a request with `headers` may not do what
/// `need` says, else `None`.
pub fn refusal(gate: &Gate, need: Need, headers: &HeaderMap) -> Option<Response> {
    match gate.check(need, headers) {
        Ok(()) => None,
        Err(e) => {
            let status = e.status;
            let mut resp = e.into_response();
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"distcache\""),
                );
            }
            Some(resp)
        }
    }
}

/// Logs, loudly, that the API is open when no token is configured.
pub fn warn_if_open(gate: &Gate, has_secret: bool) {
    if gate.is_open() {
        tracing::warn!(
            "AUTHENTICATION IS OFF: no AUTH_TOKENS or AUTH_TOKENS_FILE is set, so anyone who can \
             reach this port can read, write and delete every key{}",
            if has_secret {
                ""
            } else {
                ", and (no CLUSTER_SECRET either) register nodes and change the ring"
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tokens(list: &str) -> Tokens {
        Tokens::load(&PublicAuthConfig {
            auth_tokens: Some(list.into()),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn roles_come_from_plain_and_hashed_entries() {
        let hashed = format!("sha256:{}:admin", token_digest_hex("root-token"));
        let t = tokens(&format!("r-token:read, w-token:write,{hashed},"));
        assert_eq!(t.role_of(b"r-token"), Some(Role::Read));
        assert_eq!(t.role_of(b"w-token"), Some(Role::Write));
        assert_eq!(t.role_of(b"root-token"), Some(Role::Admin));
        assert_eq!(t.role_of(b"sha256:whatever"), None);
        assert_eq!(t.role_of(b"r-toke"), None);
        assert_eq!(t.role_of(b""), None);
    }

    /// The same token with two roles is refused (a typo would otherwise
    /// hand out the higher one); with the same role twice it is kept once.
    #[test]
    fn a_token_listed_twice_with_another_role_is_refused() {
        for (list, listed) in [
            ("same:read,same:admin", "read"),
            ("same:admin,x:read,same:read", "admin"),
        ] {
            let err = Tokens::load(&PublicAuthConfig {
                auth_tokens: Some(list.into()),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(err.setting, "AUTH_TOKENS");
            assert!(
                err.reason.contains(&format!("listed before as {listed}")),
                "{}",
                err.reason
            );
        }
        let hashed = format!("sha256:{}:write", token_digest_hex("same"));
        assert!(
            Tokens::load(&PublicAuthConfig {
                auth_tokens: Some(format!("same:read,{hashed}")),
                ..Default::default()
            })
            .is_err()
        );
        let t = tokens("same:write,same:write");
        assert_eq!(t.role_of(b"same"), Some(Role::Write));
        // Entries given whole still resolve to the highest role.
        let digest = |t: &str| sha256(t.as_bytes());
        let t = Tokens::from_entries(vec![
            (digest("same"), Role::Read),
            (digest("same"), Role::Admin),
        ]);
        assert_eq!(t.role_of(b"same"), Some(Role::Admin));
    }

    #[test]
    fn bad_entries_name_the_setting() {
        for bad in [
            "nocolon",
            "t:superuser",
            ":read",
            "sha256:abcd:read",
            "a b:read",
        ] {
            let err = Tokens::load(&PublicAuthConfig {
                auth_tokens: Some(bad.into()),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(err.setting, "AUTH_TOKENS", "{bad}");
        }
    }

    #[test]
    fn a_command_route_is_granted_the_tokens_role() {
        use super::super::secret::{ClusterSecret, SECRET_HEADER};
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, HeaderValue::from_str(value).unwrap());
            }
            h
        };
        let gate = Gate::new(
            tokens("r:read,w:write"),
            Some(ClusterSecret::new("s3cret")),
            MetricsAuth::None,
        );
        let bearer = |t: &str| headers(&[("authorization", &format!("Bearer {t}"))]);
        assert_eq!(gate.granted_role(&bearer("r")), Some(Role::Read));
        assert_eq!(gate.granted_role(&bearer("w")), Some(Role::Write));
        assert_eq!(gate.granted_role(&bearer("x")), None);
        assert_eq!(gate.granted_role(&headers(&[])), None);
        assert_eq!(
            gate.granted_role(&headers(&[(SECRET_HEADER, "s3cret")])),
            Some(Role::Admin),
            "another node of the cluster"
        );
        // Any valid token passes the route's own check; no token does not.
        assert!(gate.check(Need::Command, &bearer("r")).is_ok());
        let refused = gate.check(Need::Command, &headers(&[])).unwrap_err();
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        // With no token configured, everything is granted.
        let open = Gate::new(Tokens::default(), None, MetricsAuth::None);
        assert_eq!(open.granted_role(&headers(&[])), Some(Role::Admin));
    }

    #[test]
    fn bearer_headers_parse() {
        assert_eq!(parse_bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(parse_bearer(b"bearer   abc  "), Some(&b"abc"[..]));
        assert_eq!(parse_bearer(b"Bearer"), None);
        assert_eq!(parse_bearer(b"Bearer "), None);
        assert_eq!(parse_bearer(b"Basic abc"), None);
        assert_eq!(parse_bearer(b"Bearerabc"), None);
        assert_eq!(parse_bearer(b"Bearer a b"), None);
    }

    proptest! {
        /// Any bytes at all: the parser never panics, and what it returns
        /// is a non-empty token without whitespace taken from the input.
        #[test]
        fn bearer_parsing_is_total(value in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(token) = parse_bearer(&value) {
                prop_assert!(!token.is_empty());
                prop_assert!(!token.iter().any(|b| b.is_ascii_whitespace()));
                prop_assert!(value.windows(token.len()).any(|w| w == token));
            }
        }

        /// A well-formed header always gives back its token.
        #[test]
        fn bearer_round_trips(token in "[!-~]{1,40}") {
            let header = format!("Bearer {token}");
            prop_assert_eq!(parse_bearer(header.as_bytes()), Some(token.as_bytes()));
        }

        /// Any entry text: parsing never panics, and an accepted plain entry
        /// grants its role to exactly its token.
        #[test]
        fn entry_parsing_is_total(entry in "\\PC{0,80}") {
            if let Ok((digest, _role)) = parse_entry(&entry) {
                let t = Tokens::from_entries(vec![(digest, Role::Read)]);
                let token = entry.trim().rsplit_once(':').unwrap().0;
                if !token.starts_with("sha256:") {
                    prop_assert_eq!(t.role_of(token.as_bytes()), Some(Role::Read));
                }
            }
        }

        /// Any token presented against any configured set: the role found is
        /// the highest configured for exactly that token.
        #[test]
        fn role_of_matches_a_simple_model(
            configured in proptest::collection::vec(("[a-c]{1,3}", 1u8..=3), 0..8),
            presented in "[a-c]{0,3}",
        ) {
            let role = |n: u8| match n { 1 => Role::Read, 2 => Role::Write, _ => Role::Admin };
            let entries = configured.iter().map(|(t, r)| (sha256(t.as_bytes()), role(*r))).collect();
            let t = Tokens::from_entries(entries);
            let want = configured.iter().filter(|(t, _)| *t == presented).map(|(_, r)| role(*r)).max();
            prop_assert_eq!(t.role_of(presented.as_bytes()), want);
        }
    }
}
