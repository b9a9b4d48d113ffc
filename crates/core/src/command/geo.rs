//! Geospatial commands (GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH,
//! GEORADIUS and their family): their typed form and parsers. A geo set is
//! a sorted set whose scores are geohashes (`crate::geohash`).
//!
//! Redis checks a search's arguments only after it has found the source
//! key (a wrong type is reported first, and FROMMEMBER needs the set), so
//! a search keeps its arguments as sent and the executor reads them
//! (`crate::keyspace`'s `geo`).

use bytes::Bytes;

use super::command::{Command, Cond, Key, ZAddOpts};
use super::error::CommandError;
use super::number::parse_f64;
use crate::geohash;

type Result<T> = std::result::Result<T, CommandError>;

/// Which search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchKind {
    /// GEOSEARCH.
    Search,
    /// GEOSEARCHSTORE.
    SearchStore,
    /// GEORADIUS.
    Radius,
    /// GEORADIUS_RO.
    RadiusRo,
    /// GEORADIUSBYMEMBER.
    RadiusByMember,
    /// GEORADIUSBYMEMBER_RO.
    RadiusByMemberRo,
}

impl SearchKind {
    /// Its source key's position.
    pub fn source_at(self) -> usize {
        match self {
            SearchKind::SearchStore => 2,
            _ => 1,
        }
    }

    /// Whether STORE and STOREDIST (with a key) are among its options.
    pub fn stores_by_keyword(self) -> bool {
        matches!(self, SearchKind::Radius | SearchKind::RadiusByMember)
    }

    /// Whether it is one of GEORADIUS's forms.
    pub fn legacy(self) -> bool {
        !matches!(self, SearchKind::Search | SearchKind::SearchStore)
    }
}

/// A geospatial command.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // field names are Redis's own argument names
pub enum GeoCommand {
    /// GEOADD: run as ZADD of the points' scores.
    Add {
        key: Key,
        opts: ZAddOpts,
        /// (score, member).
        pairs: Vec<(f64, Bytes)>,
    },
    Pos {
        key: Key,
        members: Vec<Bytes>,
    },
    Dist {
        key: Key,
        a: Bytes,
        b: Bytes,
        /// Metres per unit.
        unit: f64,
    },
    Hash {
        key: Key,
        members: Vec<Bytes>,
    },
    /// A search, its arguments as sent (name included).
    Search {
        kind: SearchKind,
        args: Vec<Bytes>,
    },
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn geo(c: GeoCommand) -> Result<Command> {
    Ok(Command::Geo(Box::new(c)))
}

/// A coordinate, as Redis reads a float.
pub(crate) fn coordinate(arg: &[u8]) -> Result<f64> {
    parse_f64(arg).ok_or(CommandError::NotFloat)
}

/// A longitude and latitude Redis takes, or its words for them.
pub(crate) fn point(lon: &[u8], lat: &[u8]) -> Result<(f64, f64)> {
    let (lon, lat) = (coordinate(lon)?, coordinate(lat)?);
    if !geohash::valid(lon, lat) {
        return Err(CommandError::Relayed(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Metres per `unit` (m, km, ft, mi, in any case).
pub(crate) fn unit(arg: &[u8]) -> Result<f64> {
    [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)]
        .into_iter()
        .find(|(name, _)| is(arg, name))
        .map(|(_, factor)| factor)
        .ok_or(CommandError::Other(
            "unsupported unit provided. please use M, KM, FT, MI",
        ))
}

pub(crate) fn geoadd(a: &[Bytes]) -> Result<Command> {
    let mut opts = ZAddOpts::default();
    let (mut nx, mut xx) = (false, false);
    let mut i = 2;
    while i < a.len() {
        if is(&a[i], "nx") {
            nx = true;
        } else if is(&a[i], "xx") {
            xx = true;
        } else if is(&a[i], "ch") {
            opts.ch = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || rest.len() % 3 != 0 || (nx && xx) {
        return Err(CommandError::Syntax);
    }
    opts.cond = match (nx, xx) {
        (true, _) => Cond::IfMissing,
        (_, true) => Cond::IfExists,
        _ => Cond::Always,
    };
    let pairs = rest
        .chunks_exact(3)
        .map(|t| {
            let (lon, lat) = point(&t[0], &t[1])?;
            Ok((geohash::score(lon, lat), t[2].clone()))
        })
        .collect::<Result<_>>()?;
    geo(GeoCommand::Add {
        key: a[1].clone(),
        opts,
        pairs,
    })
}

pub(crate) fn geopos(a: &[Bytes]) -> Result<Command> {
    geo(GeoCommand::Pos {
        key: a[1].clone(),
        members: a[2..].to_vec(),
    })
}

pub(crate) fn geohash(a: &[Bytes]) -> Result<Command> {
    geo(GeoCommand::Hash {
        key: a[1].clone(),
        members: a[2..].to_vec(),
    })
}

pub(crate) fn geodist(a: &[Bytes]) -> Result<Command> {
    let unit = match a.len() {
        4 => 1.0,
        5 => unit(&a[4])?,
        _ => return Err(CommandError::Syntax),
    };
    geo(GeoCommand::Dist {
        key: a[1].clone(),
        a: a[2].clone(),
        b: a[3].clone(),
        unit,
    })
}

fn search(a: &[Bytes], kind: SearchKind) -> Result<Command> {
    geo(GeoCommand::Search {
        kind,
        args: a.to_vec(),
    })
}

pub(crate) fn geosearch(a: &[Bytes]) -> Result<Command> {
    search(a, SearchKind::Search)
}

pub(crate) fn geosearchstore(a: &[Bytes]) -> Result<Command> {
    search(a, SearchKind::SearchStore)
}

pub(crate) fn georadius(a: &[Bytes]) -> Result<Command> {
    search(a, SearchKind::Radius)
}

pub(crate) fn georadius_ro(a: &[Bytes]) -> Result<Command> {
    search(a, SearchKind::RadiusRo)
}

pub(crate) fn georadiusbymember(a: &[Bytes]) -> Result<Command> {
    search(a, SearchKind::RadiusByMember)
}

pub(crate) fn georadiusbymember_ro(a: &[Bytes]) -> Result<Command> {
    search(a, SearchKind::RadiusByMemberRo)
}

/// The positions of GEORADIUS's keys: the source, then the key after each
/// STORE or STOREDIST from `options_at` on.
pub(crate) fn radius_keys(a: &[Bytes], options_at: usize) -> Vec<usize> {
    let mut keys = vec![1];
    let mut i = options_at;
    while i + 1 < a.len() {
        if is(&a[i], "store") || is(&a[i], "storedist") {
            keys.push(i + 1);
            i += 2;
        } else {
            i += 1;
        }
    }
    keys
}
