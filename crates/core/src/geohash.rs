//! Geohashes as Redis's geospatial commands use them: a point is a 52-bit
//! interleaving of its latitude and longitude cells, stored as a sorted
//! set's score; a search walks the cell around its centre and the eight
//! cells next to it. Every formula and the order of every floating-point
//! operation follow Redis 7.0's `geohash.c` and `geohash_helper.c`, so that
//! scores, decoded positions, distances and the order in which a search
//! finds members are Redis's to the bit (the differential tests compare
//! them with redis-server).

/// Longitudes, in degrees.
pub const LON_MIN: f64 = -180.0;
/// Longitudes, in degrees.
pub const LON_MAX: f64 = 180.0;
/// Latitudes Redis accepts (Web Mercator's limits), in degrees.
pub const LAT_MIN: f64 = -85.05112878;
/// Latitudes Redis accepts (Web Mercator's limits), in degrees.
pub const LAT_MAX: f64 = 85.05112878;
/// Bits per coordinate of a stored point.
pub const STEP_MAX: u32 = 26;
/// The Earth's radius Redis's distances use, in metres.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;
/// Degrees to radians, as Redis computes it.
const D_R: f64 = std::f64::consts::PI / 180.0;
/// Half the Mercator world's width, in metres (to pick a search's cell size).
const MERCATOR_MAX: f64 = 20037726.37;

/// The ranges a hash is taken over: Redis's (Mercator latitudes) for
/// scores, the standard ±90 for GEOHASH's strings.
#[derive(Clone, Copy)]
struct Ranges {
    lat: (f64, f64),
    lon: (f64, f64),
}

const WGS84: Ranges = Ranges {
    lat: (LAT_MIN, LAT_MAX),
    lon: (LON_MIN, LON_MAX),
};

const STANDARD: Ranges = Ranges {
    lat: (-90.0, 90.0),
    lon: (LON_MIN, LON_MAX),
};

/// Whether `lon`, `lat` is a point GEOADD takes.
pub fn valid(lon: f64, lat: f64) -> bool {
    (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// Spreads the 32 bits of `x` to the even bits of a `u64`.
fn spread(x: u32) -> u64 {
    let mut x = u64::from(x);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `x` into a `u32`.
fn squash(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Latitude cells in the even bits, longitude cells in the odd ones.
fn interleave(lat: u32, lon: u32) -> u64 {
    spread(lat) | (spread(lon) << 1)
}

/// The cell of `lon`, `lat` at `step` bits per coordinate. At the very
/// top of a range the cell is one past the last, as in Redis (which does
/// not clamp it).
fn encode(lon: f64, lat: f64, step: u32, r: Ranges) -> u64 {
    let cells = (1u64 << step) as f64;
    let lat_off = (lat - r.lat.0) / (r.lat.1 - r.lat.0) * cells;
    let lon_off = (lon - r.lon.0) / (r.lon.1 - r.lon.0) * cells;
    interleave(lat_off as u32, lon_off as u32)
}

/// A cell's bounds: (lon min, lon max, lat min, lat max).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Area {
    lon: (f64, f64),
    lat: (f64, f64),
}

fn area(bits: u64, step: u32, r: Ranges) -> Area {
    let cells = (1u64 << step) as f64;
    let ilat = squash(bits);
    let ilon = squash(bits >> 1);
    let lat_scale = r.lat.1 - r.lat.0;
    let lon_scale = r.lon.1 - r.lon.0;
    Area {
        lat: (
            r.lat.0 + (f64::from(ilat) / cells) * lat_scale,
            r.lat.0 + (f64::from(ilat.wrapping_add(1)) / cells) * lat_scale,
        ),
        lon: (
            r.lon.0 + (f64::from(ilon) / cells) * lon_scale,
            r.lon.0 + (f64::from(ilon.wrapping_add(1)) / cells) * lon_scale,
        ),
    }
}

/// The score GEOADD stores for `lon`, `lat`.
pub fn score(lon: f64, lat: f64) -> f64 {
    encode(lon, lat, STEP_MAX, WGS84) as f64
}

/// The point a score stands for: its cell's centre, clamped to the ranges.
pub fn decode(score: f64) -> (f64, f64) {
    let a = area(score as u64, STEP_MAX, WGS84);
    let lon = ((a.lon.0 + a.lon.1) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat.0 + a.lat.1) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The distance between two points, in metres (haversine, with Redis's
/// shortcut when the longitudes are the same).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = lon1 * D_R;
    let lon2r = lon2 * D_R;
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return EARTH_RADIUS_M * (lat2 * D_R - lat1 * D_R).abs();
    }
    let lat1r = lat1 * D_R;
    let lat2r = lat2 * D_R;
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// GEOHASH's 11 characters for a score: its point re-encoded over the
/// standard latitudes, the last character always `0`, as Redis writes it.
pub fn hash_string(score: f64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode(score);
    let bits = encode(lon, lat, STEP_MAX, STANDARD);
    let mut out = String::with_capacity(11);
    for i in 0..10 {
        let index = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        out.push(char::from(ALPHABET[index as usize]));
    }
    out.push('0');
    out
}

/// A coordinate as GEOPOS writes it: 17 decimals, trailing zeros (and a
/// trailing point) dropped.
pub fn coordinate_text(x: f64) -> String {
    let mut s = format!("{x:.17}");
    if s.contains('.') {
        let kept = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(kept);
    }
    s
}

/// What a search looks for around its centre, in metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Within this radius.
    Radius(f64),
    /// Within a box this wide (east to west) and high.
    Box {
        /// Width.
        width: f64,
        /// Height.
        height: f64,
    },
}

impl Shape {
    /// Half its extent east-west and north-south, and the radius that
    /// covers it.
    fn extent(self) -> (f64, f64, f64) {
        match self {
            Shape::Radius(r) => (r, r, r),
            Shape::Box { width, height } => {
                let (hw, hh) = (width / 2.0, height / 2.0);
                (hw, hh, (hw * hw + hh * hh).sqrt())
            }
        }
    }

    /// Whether `x`, `y` is inside, seen from `lon`, `lat`: its distance
    /// from the centre if so.
    pub fn contains(self, lon: f64, lat: f64, x: f64, y: f64) -> Option<f64> {
        match self {
            Shape::Radius(r) => {
                let d = distance(lon, lat, x, y);
                (d <= r).then_some(d)
            }
            Shape::Box { width, height } => {
                let lat_distance = EARTH_RADIUS_M * (lat * D_R - y * D_R).abs();
                if lat_distance > height / 2.0 {
                    return None;
                }
                if distance(x, y, lon, y) > width / 2.0 {
                    return None;
                }
                Some(distance(lon, lat, x, y))
            }
        }
    }
}

/// The bits of a cell per coordinate that make a search's nine cells
/// cover a radius of `radius_m` around latitude `lat`.
fn search_step(radius_m: f64, lat: f64) -> u32 {
    if radius_m == 0.0 {
        return STEP_MAX;
    }
    let mut range = radius_m;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, STEP_MAX as i32) as u32
}

/// The neighbouring cell `dx`, `dy` (each -1, 0 or 1) away, at `step`.
fn neighbour(bits: u64, step: u32, dx: i64, dy: i64) -> u64 {
    const X: u64 = 0xAAAA_AAAA_AAAA_AAAA;
    const Y: u64 = 0x5555_5555_5555_5555;
    let shift = 64 - 2 * step;
    let mut bits = bits;
    if dx != 0 {
        let zz = Y >> shift;
        let x = if dx > 0 {
            (bits & X).wrapping_add(zz + 1)
        } else {
            ((bits & X) | zz).wrapping_sub(zz + 1)
        };
        bits = (x & (X >> shift)) | (bits & Y);
    }
    if dy != 0 {
        let zz = X >> shift;
        let y = if dy > 0 {
            (bits & Y).wrapping_add(zz + 1)
        } else {
            ((bits & Y) | zz).wrapping_sub(zz + 1)
        };
        bits = (y & (Y >> shift)) | (bits & X);
    }
    bits
}

/// The nine cells, in the order Redis walks them (centre, N, S, E, W,
/// NE, NW, SE, SW), of `step` bits each: `None` for one a search may
/// leave out.
fn cells(lon: f64, lat: f64, shape: Shape) -> (u32, [Option<u64>; 9]) {
    let (hw, hh, radius) = shape.extent();
    // The search's bounding box, in degrees.
    let lat_delta = (hh / EARTH_RADIUS_M) / D_R;
    let top = (hw / EARTH_RADIUS_M / ((lat + lat_delta) * D_R).cos()) / D_R;
    let bottom = (hw / EARTH_RADIUS_M / ((lat - lat_delta) * D_R).cos()) / D_R;
    let (min_lon, max_lon) = if lat < 0.0 {
        (lon - bottom, lon + bottom)
    } else {
        (lon - top, lon + top)
    };
    let (min_lat, max_lat) = (lat - lat_delta, lat + lat_delta);
    let mut step = search_step(radius, lat);
    let around = |step: u32| {
        let centre = encode(lon, lat, step, WGS84);
        let at = |dx, dy| neighbour(centre, step, dx, dy);
        [
            centre,
            at(0, 1),
            at(0, -1),
            at(1, 0),
            at(-1, 0),
            at(1, 1),
            at(-1, 1),
            at(1, -1),
            at(-1, -1),
        ]
    };
    let mut boxes = around(step);
    // Cells too small to reach the bounding box: one bit less.
    let north = area(boxes[1], step, WGS84);
    let south = area(boxes[2], step, WGS84);
    let east = area(boxes[3], step, WGS84);
    let west = area(boxes[4], step, WGS84);
    if (north.lat.1 < max_lat
        || south.lat.0 > min_lat
        || east.lon.1 < max_lon
        || west.lon.0 > min_lon)
        && step > 1
    {
        step -= 1;
        boxes = around(step);
    }
    let mut kept = boxes.map(Some);
    if step >= 2 {
        let centre = area(boxes[0], step, WGS84);
        let mut drop = |which: &[usize]| {
            for &i in which {
                kept[i] = None;
            }
        };
        if centre.lat.0 < min_lat {
            drop(&[2, 8, 7]);
        }
        if centre.lat.1 > max_lat {
            drop(&[1, 5, 6]);
        }
        if centre.lon.0 < min_lon {
            drop(&[4, 8, 6]);
        }
        if centre.lon.1 > max_lon {
            drop(&[3, 7, 5]);
        }
    }
    (step, kept)
}

/// The score ranges a search around `lon`, `lat` reads, in Redis's order:
/// each `[min, max)`, a cell's points. A range the same as the one read
/// before it (huge radii make neighbours coincide) is left out, except
/// after the centre, as Redis does.
pub fn search_ranges(lon: f64, lat: f64, shape: Shape) -> Vec<(f64, f64)> {
    let (step, boxes) = cells(lon, lat, shape);
    let shift = 52 - 2 * step;
    let mut ranges = Vec::with_capacity(9);
    let mut last: Option<usize> = None;
    for (i, cell) in boxes.iter().enumerate() {
        let Some(bits) = cell else {
            continue;
        };
        if let Some(l) = last
            && l != 0
            && boxes[l] == Some(*bits)
        {
            continue;
        }
        let min = (bits << shift) as f64;
        let max = ((bits + 1) << shift) as f64;
        ranges.push((min, max));
        last = Some(i);
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points whose scores, positions and hashes redis-server 7.0.15 gave.
    #[test]
    fn scores_positions_and_hashes_are_redis_s() {
        let cases = [
            (
                13.361389,
                38.115556,
                3479099956230698u64,
                "13.36138933897018433",
                "38.11555639549629859",
                "sqc8b49rny0",
            ),
            (
                15.087269,
                37.502669,
                3479447370796909,
                "15.08726745843887329",
                "37.50266842333162032",
                "sqdtr74hyu0",
            ),
            (
                0.0,
                0.0,
                3377699720527872,
                "0.00000268220901489",
                "0.00000126736058093",
                "s0000000000",
            ),
            (
                -73.985656,
                40.748433,
                1791875672649880,
                "-73.98565381765365601",
                "40.74843209700949132",
                "dr5ru6j2c60",
            ),
            (
                -180.0,
                LAT_MIN,
                0,
                "-179.99999731779098511",
                "-85.05112751263942528",
                "00bh0hbj200",
            ),
            (
                180.0,
                LAT_MAX,
                13510798882111488,
                "180",
                "85.0511287799999991",
                "bp05b5048p0",
            ),
        ];
        for (lon, lat, want, want_lon, want_lat, want_hash) in cases {
            let s = score(lon, lat);
            assert_eq!(s as u64, want, "{lon} {lat}");
            let (x, y) = decode(s);
            assert_eq!(coordinate_text(x), want_lon);
            assert_eq!(coordinate_text(y), want_lat);
            assert_eq!(hash_string(s), want_hash);
        }
    }

    #[test]
    fn distances_are_redis_s() {
        let (a, b) = (decode(3479099956230698.0), decode(3479447370796909.0));
        assert_eq!(
            format!("{:.4}", distance(a.0, a.1, b.0, b.1)),
            "166274.1516"
        );
        assert_eq!(distance(a.0, a.1, a.0, a.1), 0.0);
    }
}
