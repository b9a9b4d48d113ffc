//! Which key the next request uses: uniform over `0..n`, or Zipf-distributed
//! so that a few hot keys take most of the traffic, as in real caches.

use rand::Rng;

/// How keys are drawn.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Every key equally likely
    Uniform,
    /// Key of rank k (1-based) drawn with probability proportional to 1/k^s
    Zipf,
}

/// Draws key indices in `0..n`.
#[derive(Debug)]
pub enum KeyPicker {
    /// Uniform over `0..n`.
    Uniform(u64),
    /// Zipf over `0..n`; index 0 is the hottest key.
    Zipf(Zipf),
}

impl KeyPicker {
    /// A picker over `keys` keys.
    pub fn new(distribution: Distribution, keys: u64, zipf_s: f64) -> KeyPicker {
        match distribution {
            Distribution::Uniform => KeyPicker::Uniform(keys),
            Distribution::Zipf => KeyPicker::Zipf(Zipf::new(keys, zipf_s)),
        }
    }

    /// The next key index.
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        match self {
            KeyPicker::Uniform(n) => rng.random_range(0..*n),
            KeyPicker::Zipf(z) => z.sample(rng),
        }
    }
}

/// A Zipf distribution over ranks `1..=n` with exponent `s`, drawn by
/// inverting its cumulative distribution. The table is exact (no
/// approximation of the harmonic number) and costs 8 bytes per key, which is
/// fine for the key counts a benchmark uses; a draw is one binary search.
#[derive(Debug)]
pub struct Zipf {
    /// `cdf[k]` = P(rank <= k + 1); the last entry is 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n >= 1` ranks with exponent `s >= 0`.
    pub fn new(n: u64, s: f64) -> Zipf {
        assert!(n >= 1, "Zipf needs at least one rank");
        assert!(s.is_finite() && s >= 0.0, "Zipf exponent must be >= 0");
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for k in 1..=n {
            total += (k as f64).powf(-s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        // Rounding could leave the last entry a hair under 1, and a draw
        // of u just below 1 would then fall off the end.
        *cdf.last_mut().expect("n >= 1") = 1.0;
        Zipf { cdf }
    }

    /// The probability of rank `k` (1-based).
    #[cfg(test)]
    pub fn pmf(&self, k: u64) -> f64 {
        let i = (k - 1) as usize;
        self.cdf[i] - if i == 0 { 0.0 } else { self.cdf[i - 1] }
    }

    /// A draw: the 0-based index of the rank (0 is the most likely).
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c <= u) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const DRAWS: usize = 1_000_000;

    fn counts(z: &Zipf, n: u64, seed: u64) -> Vec<u64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut counts = vec![0u64; n as usize];
        for _ in 0..DRAWS {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn zipf_pmf_matches_the_formula() {
        let z = Zipf::new(1000, 1.0);
        let h: f64 = (1..=1000).map(|k| 1.0 / k as f64).sum();
        for k in [1, 2, 10, 1000] {
            let want = 1.0 / (k as f64 * h);
            assert!((z.pmf(k) - want).abs() < 1e-12, "pmf({k})");
        }
    }

    /// Frequencies of ranks 1, 2 and 10 against the theoretical pmf, and
    /// the ratios between them (1/k^s: rank 1 is twice as likely as rank 2
    /// and ten times as likely as rank 10 at s = 1).
    #[test]
    fn zipf_frequencies_of_ranks_1_2_10_match_the_pmf() {
        for s in [0.99, 1.0, 1.2] {
            let n = 1000;
            let z = Zipf::new(n, s);
            let c = counts(&z, n, 42);
            for k in [1u64, 2, 10] {
                let observed = c[(k - 1) as usize] as f64 / DRAWS as f64;
                let expected = z.pmf(k);
                // Five standard deviations of a binomial count.
                let sd = (expected * (1.0 - expected) / DRAWS as f64).sqrt();
                assert!(
                    (observed - expected).abs() < 5.0 * sd,
                    "s={s} rank {k}: observed {observed:.5}, expected {expected:.5}"
                );
            }
            let ratio_1_2 = c[0] as f64 / c[1] as f64;
            let ratio_1_10 = c[0] as f64 / c[9] as f64;
            let want_1_2 = 2f64.powf(s);
            let want_1_10 = 10f64.powf(s);
            assert!(
                (ratio_1_2 / want_1_2 - 1.0).abs() < 0.03,
                "s={s} rank1/rank2 {ratio_1_2}"
            );
            assert!(
                (ratio_1_10 / want_1_10 - 1.0).abs() < 0.05,
                "s={s} rank1/rank10 {ratio_1_10}"
            );
        }
    }

    /// Pearson's chi-square over the first 50 ranks and the tail as one
    /// bucket: 50 degrees of freedom, whose 0.999 quantile is 86.7.
    #[test]
    fn zipf_passes_a_chi_square_test() {
        let n = 10_000;
        let z = Zipf::new(n, 0.99);
        let c = counts(&z, n, 7);
        let mut chi2 = 0.0;
        for k in 1..=50u64 {
            let e = z.pmf(k) * DRAWS as f64;
            let o = c[(k - 1) as usize] as f64;
            chi2 += (o - e) * (o - e) / e;
        }
        let tail_p: f64 = 1.0 - z.cdf[49];
        let e = tail_p * DRAWS as f64;
        let o = c[50..].iter().sum::<u64>() as f64;
        chi2 += (o - e) * (o - e) / e;
        assert!(
            chi2 < 86.7,
            "chi-square {chi2:.1} over 50 degrees of freedom"
        );
    }

    #[test]
    fn zipf_with_one_rank_and_s_zero() {
        let mut rng = SmallRng::seed_from_u64(1);
        let one = Zipf::new(1, 1.0);
        assert!((0..1000).all(|_| one.sample(&mut rng) == 0));
        // s = 0 is uniform.
        let flat = Zipf::new(4, 0.0);
        for k in 1..=4 {
            assert!((flat.pmf(k) - 0.25).abs() < 1e-12);
        }
    }

    #[test]
    fn uniform_picker_stays_in_range_and_covers_it() {
        let mut rng = SmallRng::seed_from_u64(3);
        let p = KeyPicker::new(Distribution::Uniform, 10, 1.0);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[p.pick(&mut rng) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }
}
