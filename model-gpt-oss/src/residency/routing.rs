//! Routing profiles of synthetic models. Random weights route almost uniformly — every expert
//! about as likely, consecutive tokens nearly independent — which understates what an expert
//! cache gets from a real model. The `skewed` profile gives each layer a popularity order of its
//! experts through the router biases, so hit rates can be measured on both.
//!
//! Parameters (`synthetic:120b?routing=skewed&popularity=A&spread=S`):
//! - `popularity` A: the expert of popularity rank r (0 the most popular, a per-layer random
//!   order) gets `−A · ln(1 + r)` added to its router bias: Zipf-like odds `(1 + r)^−A`.
//! - `spread` S: the router weights are drawn S times as wide as the uniform model's, which
//!   scales the token-dependent part of the logits against the biases (small S: every token
//!   picks the popular experts; large S: popularity washes out).
//!
//! The defaults [`POPULARITY`] and [`SPREAD`] are fitted to the published figures of one
//! gpt-oss routing trace (the previous token's experts predict ~18 % of the next token's; a
//! layer's two hottest experts take ~27 % of its selections; ~36 of 128 experts of a layer are
//! touched over 64 tokens): see bench/NOTES.md ("Routing profile") for the fit and for what a
//! recorded trace of the synthetic model measures. Token-to-token persistence is not a separate
//! knob: the synthetic model's hidden states change little in what the router reads from one
//! token to the next beyond the token itself, so persistence comes from popularity.

use gptoss_engine::SynthFill;
use gptoss_engine::synth::{fnv1a64, mix};
use half::bf16;

/// Fitted `popularity` and `spread` of the `skewed` profile.
pub const POPULARITY: f32 = 1.0;
pub const SPREAD: f32 = 1.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum RoutingProfile {
    /// The synthetic model's own, near-uniform routing.
    #[default]
    Uniform,
    Skewed {
        popularity: f32,
        spread: f32,
    },
}

impl RoutingProfile {
    pub const SKEWED: RoutingProfile = RoutingProfile::Skewed { popularity: POPULARITY, spread: SPREAD };

    /// Parses the part of a synthetic model's name after `?`: `routing=uniform`,
    /// `routing=skewed`, optionally `&popularity=A&spread=S`.
    pub fn parse(query: &str) -> Result<Self, String> {
        let (mut profile, mut popularity, mut spread) = (None, None, None);
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("'{pair}' is not KEY=VALUE"))?;
            let number = || {
                value.parse::<f32>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| format!("{key}={value}: not a number ≥ 0"))
            };
            match key {
                "routing" => profile = Some(value),
                "popularity" => popularity = Some(number()?),
                "spread" => spread = Some(number()?),
                other => return Err(format!("unknown option '{other}' (expected routing, popularity, spread)")),
            }
        }
        match profile {
            Some("uniform") if popularity.is_none() && spread.is_none() => Ok(RoutingProfile::Uniform),
            Some("uniform") => Err("popularity and spread go with routing=skewed".into()),
            Some("skewed") => Ok(RoutingProfile::Skewed { popularity: popularity.unwrap_or(POPULARITY), spread: spread.unwrap_or(SPREAD) }),
            Some(other) => Err(format!("routing={other}: expected uniform or skewed")),
            None => Err("no routing=… given".into()),
        }
    }

    /// What follows `?` in the model's name, or `None` for the uniform default.
    pub fn query(self) -> Option<String> {
        match self {
            RoutingProfile::Uniform => None,
            RoutingProfile::Skewed { popularity, spread } if (popularity, spread) == (POPULARITY, SPREAD) => Some("routing=skewed".into()),
            RoutingProfile::Skewed { popularity, spread } => Some(format!("routing=skewed&popularity={popularity}&spread={spread}")),
        }
    }

    /// The fill of a router weight matrix under this profile.
    pub fn router_weight(self, fill: SynthFill) -> SynthFill {
        match (self, fill) {
            (RoutingProfile::Skewed { spread, .. }, SynthFill::Uniform { center, half_width }) => {
                SynthFill::Uniform { center, half_width: half_width * spread }
            }
            _ => fill,
        }
    }

    /// Layer `name`'s router bias (bf16 bytes) from its uniform values `base`: the
    /// popularity term added, rounded to bf16.
    pub fn router_bias(self, seed: u64, name: &str, base: &[f32]) -> Vec<u8> {
        let offsets = match self {
            RoutingProfile::Uniform => vec![0.0; base.len()],
            RoutingProfile::Skewed { popularity, .. } => {
                popularity_ranks(seed, name, base.len()).iter().map(|&r| -popularity * (1.0 + r as f32).ln()).collect()
            }
        };
        base.iter().zip(offsets).flat_map(|(&b, o)| bf16::from_f32(b + o).to_le_bytes()).collect()
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
        let p = RoutingProfile::parse("routing=skewed&popularity=2&spread=0.5").unwrap();
        assert_eq!(p, RoutingProfile::Skewed { popularity: 2.0, spread: 0.5 });
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
        let bytes = RoutingProfile::Skewed { popularity: 1.0, spread: 1.0 }.router_bias(0, name, &base);
        let ranks = popularity_ranks(0, name, 8);
        let bias: Vec<f32> = bytes.chunks(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
        for e in 0..8 {
            assert!((bias[e] + (1.0 + ranks[e] as f32).ln()).abs() < 0.02, "{e}: {}", bias[e]);
        }
        assert_eq!(RoutingProfile::Uniform.router_bias(0, name, &[0.5]), bf16::from_f32(0.5).to_le_bytes().to_vec());
    }
}
