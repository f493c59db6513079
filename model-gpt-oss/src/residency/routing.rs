//! Routing profiles of synthetic models. Random weights route almost uniformly — every expert
//! about as likely, consecutive tokens nearly independent — which understates what an expert
//! cache gets from a real model. The `skewed` profile gives each layer a popularity order of its
//! experts through the router biases, so hit rates can be measured on both.
//!
//! Parameters (`synthetic:120b?routing=skewed&popularity=A&warm=W`), on the router bias of
//! the expert of popularity rank r (0 the most popular; a random order per layer):
//! - `popularity` A: `−A · ln(1 + r)`, Zipf-like odds `(1 + r)^−A`;
//! - `warm` W: the layer's working set; experts ranked W or beyond get [`COLD`] more nats
//!   against them.
//!
//! The router's token-dependent logit (router weights of variance 1/hidden times a normalised
//! hidden state of norm √hidden) is close to a standard normal, independent from token to token
//! in a synthetic model fed random tokens; with that model of the router, the defaults
//! [`POPULARITY`] and [`WARM`] are the grid point nearest (in summed squared relative error) to
//! the published figures of one gpt-oss routing trace: the previous token's experts predict
//! ~18 % of the next token's, a layer's two hottest experts take ~27 % of its selections,
//! ~36 of 128 experts of a layer are touched over 64 tokens. Independent tokens cannot reach all
//! three at once (with the top two at 27 % of selections, persistence alone is ≥ 15 %, and the
//! tail pushes it higher); the fit gives 20 %, 22 % and 35.2
//! (`cargo run --release -p gptoss-model-gpt-oss --example fit_routing`), and a trace recorded
//! from the model is in bench/NOTES.md ("Routing profile"). There is no separate persistence
//! knob: a synthetic model's consecutive tokens share little beyond the popularity order.

use gptoss_engine::synth::{fnv1a64, mix};
use half::bf16;

/// The fitted `popularity` and `warm` of the `skewed` profile.
pub const POPULARITY: f32 = 0.5;
pub const WARM: usize = 36;
/// Nats against experts outside the warm set.
pub const COLD: f32 = 3.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum RoutingProfile {
    /// The synthetic model's own, near-uniform routing.
    #[default]
    Uniform,
    Skewed {
        popularity: f32,
        warm: usize,
    },
}

impl RoutingProfile {
    pub const SKEWED: RoutingProfile = RoutingProfile::Skewed { popularity: POPULARITY, warm: WARM };

    /// Parses the part of a synthetic model's name after `?`: `routing=uniform`,
    /// `routing=skewed`, optionally `&popularity=A&warm=W`.
    pub fn parse(query: &str) -> Result<Self, String> {
        let (mut profile, mut popularity, mut warm) = (None, None, None);
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("'{pair}' is not KEY=VALUE"))?;
            match key {
                "routing" => profile = Some(value),
                "popularity" => {
                    let a = value.parse::<f32>().ok().filter(|v| v.is_finite() && *v >= 0.0);
                    popularity = Some(a.ok_or_else(|| format!("popularity={value}: not a number ≥ 0"))?);
                }
                "warm" => warm = Some(value.parse::<usize>().map_err(|_| format!("warm={value}: not a count of experts"))?),
                other => return Err(format!("unknown option '{other}' (expected routing, popularity, warm)")),
            }
        }
        match profile {
            Some("uniform") if popularity.is_none() && warm.is_none() => Ok(RoutingProfile::Uniform),
            Some("uniform") => Err("popularity and warm go with routing=skewed".into()),
            Some("skewed") => Ok(RoutingProfile::Skewed { popularity: popularity.unwrap_or(POPULARITY), warm: warm.unwrap_or(WARM) }),
            Some(other) => Err(format!("routing={other}: expected uniform or skewed")),
            None => Err("no routing=… given".into()),
        }
    }

    /// What follows `?` in the model's name, or `None` for the uniform default.
    pub fn query(self) -> Option<String> {
        match self {
            RoutingProfile::Uniform => None,
            RoutingProfile::Skewed { popularity, warm } if (popularity, warm) == (POPULARITY, WARM) => Some("routing=skewed".into()),
            RoutingProfile::Skewed { popularity, warm } => Some(format!("routing=skewed&popularity={popularity}&warm={warm}")),
        }
    }

    /// What the profile adds to the router bias of the expert of popularity rank `rank`.
    pub fn offset(self, rank: usize) -> f32 {
        match self {
            RoutingProfile::Uniform => 0.0,
            RoutingProfile::Skewed { popularity, warm } => -popularity * (1.0 + rank as f32).ln() - if rank >= warm { COLD } else { 0.0 },
        }
    }

    /// Layer `name`'s router bias (bf16 bytes) from its uniform values `base`: the
    /// popularity term added, rounded to bf16.
    pub fn router_bias(self, seed: u64, name: &str, base: &[f32]) -> Vec<u8> {
        let ranks = popularity_ranks(seed, name, base.len());
        base.iter().zip(ranks).flat_map(|(&b, r)| bf16::from_f32(b + self.offset(r)).to_le_bytes()).collect()
    }
}

/// Each expert's popularity rank in a layer: a permutation of `0..experts` drawn from
/// (seed, tensor name) by a Fisher–Yates shuffle on SplitMix64 words.
pub fn popularity_ranks(seed: u64, name: &str, experts: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..experts).collect();
    let stream = mix(seed ^ fnv1a64(name.as_bytes()) ^ 0x005E_ED0F_4047);
    for i in (1..experts).rev() {
        let j = (mix(stream.wrapping_add(i as u64)) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut rank = vec![0; experts];
    for (r, &e) in order.iter().enumerate() {
        rank[e] = r;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_print() {
        assert_eq!(RoutingProfile::parse("routing=skewed"), Ok(RoutingProfile::SKEWED));
        assert_eq!(RoutingProfile::parse("routing=uniform"), Ok(RoutingProfile::Uniform));
        let p = RoutingProfile::parse("routing=skewed&popularity=2&warm=16").unwrap();
        assert_eq!(p, RoutingProfile::Skewed { popularity: 2.0, warm: 16 });
        assert_eq!(RoutingProfile::parse(&p.query().unwrap()), Ok(p));
        assert_eq!(RoutingProfile::SKEWED.query().as_deref(), Some("routing=skewed"));
        assert!(RoutingProfile::parse("routing=zipf").unwrap_err().contains("expected uniform or skewed"));
        assert!(RoutingProfile::parse("routing=skewed&popularity=-1").is_err());
        assert!(RoutingProfile::parse("popularity=1").is_err());
    }

    #[test]
    fn ranks_are_a_permutation_that_differs_by_layer() {
        let a = popularity_ranks(0, "model.layers.0.mlp.router.bias", 128);
        let b = popularity_ranks(0, "model.layers.1.mlp.router.bias", 128);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..128).collect::<Vec<_>>());
        assert_ne!(a, b);
    }

    #[test]
    fn skewed_biases_fall_with_rank() {
        let base = vec![0.0f32; 8];
        let name = "model.layers.0.mlp.router.bias";
        let bytes = RoutingProfile::Skewed { popularity: 1.0, warm: 4 }.router_bias(0, name, &base);
        let ranks = popularity_ranks(0, name, 8);
        let bias: Vec<f32> = bytes.chunks(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
        for e in 0..8 {
            let cold = if ranks[e] >= 4 { COLD } else { 0.0 };
            assert!((bias[e] + (1.0 + ranks[e] as f32).ln() + cold).abs() < 0.02, "{e}: {}", bias[e]);
        }
        assert_eq!(RoutingProfile::Uniform.router_bias(0, name, &[0.5]), bf16::from_f32(0.5).to_le_bytes().to_vec());
    }
}
