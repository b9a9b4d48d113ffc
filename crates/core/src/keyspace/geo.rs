//! Geospatial commands over sorted sets, as Redis 7.0 runs them: GEOADD is
//! ZADD of geohash scores (`crate::geohash`), the others read the scores
//! back as points; a search reads the cells around its centre in Redis's
//! order, so that its results (and their order when none is asked for)
//! are Redis's.

use bytes::Bytes;

use super::{Exec, Result};
use crate::command::geo::{GeoCommand, SearchKind, point, unit};
use crate::command::number::{parse_f64, parse_i64};
use crate::command::{CommandError, Reply};
use crate::geohash::{self, Shape};
use crate::value::ZSetValue;

/// A point found by a search: member, distance from the centre in
/// metres, score, longitude, latitude.
type Found = (Bytes, f64, f64, f64, f64);

fn position_reply(score: f64) -> Reply {
    let (lon, lat) = geohash::decode(score);
    Reply::Array(vec![
        Reply::DoubleText(geohash::coordinate_text(lon)),
        Reply::DoubleText(geohash::coordinate_text(lat)),
    ])
}

fn not_a_member() -> CommandError {
    CommandError::Other("could not decode requested zset member")
}

/// The position of `member` in `z`.
fn member_position(z: &ZSetValue, member: &[u8]) -> Result<(f64, f64)> {
    z.score(member)
        .map(geohash::decode)
        .ok_or_else(not_a_member)
}

/// A radius, width or height: a number, not below 0.
fn extent(arg: &[u8], not_numeric: &'static str) -> Result<f64> {
    parse_f64(arg).ok_or(CommandError::Other(not_numeric))
}

fn radius(arg: &[u8]) -> Result<f64> {
    let r = extent(arg, "need numeric radius")?;
    if r < 0.0 {
        return Err(CommandError::Other("radius cannot be negative"));
    }
    Ok(r)
}

/// A search's arguments, read.
#[derive(Default)]
struct Search {
    centre: Option<(f64, f64)>,
    from_member: bool,
    /// The shape in metres, and metres per unit of the answer.
    shape: Option<(Shape, f64)>,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    any: bool,
    /// `Some(true)`: ASC; `Some(false)`: DESC.
    ascending: Option<bool>,
    count: Option<usize>,
    /// Where to store, and whether distances rather than positions.
    store: Option<(Bytes, bool)>,
}

impl Search {
    /// Reads a search's arguments as Redis does: the fixed ones first,
    /// then the options left to right, each error as it comes. `z` is the
    /// source, when it exists.
    fn read(kind: SearchKind, a: &[Bytes], z: Option<&ZSetValue>) -> Result<Search> {
        let mut s = Search::default();
        let options_at = match kind {
            SearchKind::Radius | SearchKind::RadiusRo => {
                let (lon, lat) = point(&a[2], &a[3])?;
                let r = radius(&a[4])?;
                let u = unit(&a[5])?;
                s.centre = Some((lon, lat));
                s.shape = Some((Shape::Radius(r * u), u));
                6
            }
            SearchKind::RadiusByMember | SearchKind::RadiusByMemberRo => {
                // A missing source: nothing to check them against.
                if let Some(z) = z {
                    s.centre = Some(member_position(z, &a[2])?);
                    let r = radius(&a[3])?;
                    let u = unit(&a[4])?;
                    s.shape = Some((Shape::Radius(r * u), u));
                }
                5
            }
            SearchKind::Search => 2,
            SearchKind::SearchStore => {
                s.store = Some((a[1].clone(), false));
                3
            }
        };
        let searches = !kind.legacy();
        let (mut by_radius, mut by_box) = (false, false);
        let mut i = options_at;
        while i < a.len() {
            let more = a.len() - i - 1;
            let o = &a[i];
            let is = |w: &str| o.eq_ignore_ascii_case(w.as_bytes());
            if is("withdist") {
                s.with_dist = true;
            } else if is("withhash") {
                s.with_hash = true;
            } else if is("withcoord") {
                s.with_coord = true;
            } else if is("any") {
                s.any = true;
            } else if is("asc") {
                s.ascending = Some(true);
            } else if is("desc") {
                s.ascending = Some(false);
            } else if is("count") && more >= 1 {
                let n = parse_i64(&a[i + 1]).ok_or(CommandError::NotInteger)?;
                if n <= 0 {
                    return Err(CommandError::Other("COUNT must be > 0"));
                }
                s.count = Some(usize::try_from(n).unwrap_or(usize::MAX));
                i += 1;
            } else if (is("store") || is("storedist")) && kind.stores_by_keyword() && more >= 1 {
                s.store = Some((a[i + 1].clone(), is("storedist")));
                i += 1;
            } else if is("storedist") && kind == SearchKind::SearchStore {
                s.store = Some((a[1].clone(), true));
            } else if is("frommember") && searches && more >= 1 && !s.came_from_lonlat() {
                if let Some(z) = z {
                    s.centre = Some(member_position(z, &a[i + 1])?);
                }
                s.from_member = true;
                i += 1;
            } else if is("fromlonlat") && searches && more >= 2 && !s.from_member {
                s.centre = Some(point(&a[i + 1], &a[i + 2])?);
                i += 2;
            } else if is("byradius") && searches && more >= 2 && !by_box {
                let r = radius(&a[i + 1])?;
                let u = unit(&a[i + 2])?;
                s.shape = Some((Shape::Radius(r * u), u));
                by_radius = true;
                i += 2;
            } else if is("bybox") && searches && more >= 3 && !by_radius {
                let w = extent(&a[i + 1], "need numeric width")?;
                let h = extent(&a[i + 2], "need numeric height")?;
                if w < 0.0 || h < 0.0 {
                    return Err(CommandError::Other("height or width cannot be negative"));
                }
                let u = unit(&a[i + 3])?;
                s.shape = Some((
                    Shape::Box {
                        width: w * u,
                        height: h * u,
                    },
                    u,
                ));
                by_box = true;
                i += 3;
            } else {
                return Err(CommandError::Syntax);
            }
            i += 1;
        }
        if s.store.is_some() && (s.with_dist || s.with_hash || s.with_coord) {
            return Err(CommandError::Other(if searches {
                "GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
            } else {
                "STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
            }));
        }
        let name = String::from_utf8_lossy(&a[0]);
        if searches && !s.from_member && s.centre.is_none() {
            return Err(CommandError::Relayed(format!(
                "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
            )));
        }
        if searches && !by_radius && !by_box {
            return Err(CommandError::Relayed(format!(
                "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
            )));
        }
        if s.any && s.count.is_none() {
            return Err(CommandError::Other(
                "the ANY argument requires COUNT argument",
            ));
        }
        Ok(s)
    }

    /// Whether FROMLONLAT came (FROMMEMBER may not follow it).
    fn came_from_lonlat(&self) -> bool {
        self.centre.is_some() && !self.from_member
    }

    /// The points of `z` inside the shape, in the order Redis finds them
    /// (cell by cell); with ANY, the first COUNT.
    fn find(&self, z: &ZSetValue) -> Vec<Found> {
        let (Some((lon, lat)), Some((shape, _))) = (self.centre, self.shape) else {
            return Vec::new();
        };
        let limit = if self.any { self.count } else { None };
        let mut found = Vec::new();
        for (min, max) in geohash::search_ranges(lon, lat, shape) {
            if limit.is_some_and(|n| found.len() >= n) {
                break;
            }
            for (member, score) in z.iter_from_score(min).take_while(|(_, s)| *s < max) {
                let (x, y) = geohash::decode(score);
                if let Some(d) = shape.contains(lon, lat, x, y) {
                    found.push((member.clone(), d, score, x, y));
                    if limit.is_some_and(|n| found.len() >= n) {
                        break;
                    }
                }
            }
        }
        found
    }
}

impl Exec<'_> {
    pub(super) fn geo_command(&mut self, c: &GeoCommand) -> Result<Reply> {
        match c {
            GeoCommand::Add { key, opts, pairs } => self.zadd(key, *opts, pairs),
            GeoCommand::Pos { key, members } => {
                let z = self.zset(key)?;
                Ok(Reply::Array(
                    members
                        .iter()
                        .map(|m| match z.and_then(|z| z.score(m)) {
                            Some(score) => position_reply(score),
                            None => Reply::NullArray,
                        })
                        .collect(),
                ))
            }
            GeoCommand::Hash { key, members } => {
                let z = self.zset(key)?;
                Ok(Reply::Array(
                    members
                        .iter()
                        .map(|m| match z.and_then(|z| z.score(m)) {
                            Some(score) => Reply::Bulk(Bytes::from(geohash::hash_string(score))),
                            None => Reply::Null,
                        })
                        .collect(),
                ))
            }
            GeoCommand::Dist { key, a, b, unit } => {
                let Some(z) = self.zset(key)? else {
                    return Ok(Reply::Null);
                };
                let (Some(sa), Some(sb)) = (z.score(a), z.score(b)) else {
                    return Ok(Reply::Null);
                };
                let ((x1, y1), (x2, y2)) = (geohash::decode(sa), geohash::decode(sb));
                let d = geohash::distance(x1, y1, x2, y2) / unit;
                Ok(Reply::Bulk(Bytes::from(format!("{d:.4}"))))
            }
            GeoCommand::Search { kind, args } => self.geo_search(*kind, args),
        }
    }

    fn geo_search(&mut self, kind: SearchKind, a: &[Bytes]) -> Result<Reply> {
        let z = self.zset(&a[kind.source_at()])?;
        let search = Search::read(kind, a, z)?;
        let Some(z) = z else {
            return match &search.store {
                Some((dst, _)) => self.store_zset(dst, Vec::new()),
                None => Ok(Reply::Array(Vec::new())),
            };
        };
        let mut found = search.find(z);
        // COUNT alone sorts nearest first.
        let ascending = search
            .ascending
            .or_else(|| (search.count.is_some() && !search.any).then_some(true));
        if let Some(ascending) = ascending {
            // Stable, as glibc's qsort is when it sorts them all.
            found.sort_by(|x, y| {
                let order = x.1.total_cmp(&y.1);
                if ascending { order } else { order.reverse() }
            });
        }
        if let Some(n) = search.count {
            found.truncate(n);
        }
        let per_unit = search.shape.map_or(1.0, |(_, u)| u);
        if let Some((dst, dist)) = search.store {
            let members = found
                .into_iter()
                .map(|(m, d, score, _, _)| (m, if dist { d / per_unit } else { score }))
                .collect();
            return self.store_zset(&dst, members);
        }
        let with = search.with_dist || search.with_hash || search.with_coord;
        Ok(Reply::Array(
            found
                .into_iter()
                .map(|(member, d, score, x, y)| {
                    if !with {
                        return Reply::Bulk(member);
                    }
                    let mut item = vec![Reply::Bulk(member)];
                    if search.with_dist {
                        item.push(Reply::Bulk(Bytes::from(format!("{:.4}", d / per_unit))));
                    }
                    if search.with_hash {
                        item.push(Reply::Integer(score as i64));
                    }
                    if search.with_coord {
                        item.push(Reply::Array(vec![
                            Reply::DoubleText(geohash::coordinate_text(x)),
                            Reply::DoubleText(geohash::coordinate_text(y)),
                        ]));
                    }
                    Reply::Array(item)
                })
                .collect(),
        ))
    }
}
