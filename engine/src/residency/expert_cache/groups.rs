//! One layer of a forward step over the pool: the step's tokens cut into groups of consecutive
//! tokens whose distinct experts fit the pool at once, and each group's experts looked up in
//! first-use order. The engine runs a group's experts in one fused call (so each token's
//! weighted sum is the same as with every expert resident) and reads each of its experts at
//! most once; a chunk whose experts all fit is a single group, so each expert is read at most
//! once per chunk.

use std::ops::Range;

use super::ExpertKey;
use super::cache::{ExpertCache, Lookup};

/// Consecutive token ranges covering `0..n` (`ids` is `[n, top_k]`), each as long as possible
/// with at most `capacity` distinct experts. `None` if one token alone needs more.
pub fn token_groups(ids: &[u32], top_k: usize, capacity: usize) -> Option<Vec<Range<usize>>> {
    let n = ids.len() / top_k.max(1);
    let mut groups = Vec::new();
    let mut seen: Vec<u32> = Vec::with_capacity(capacity + top_k);
    let mut start = 0;
    for t in 0..n {
        let token = &ids[t * top_k..(t + 1) * top_k];
        let new = token.iter().enumerate().filter(|&(i, e)| !seen.contains(e) && !token[..i].contains(e)).count();
        if seen.len() + new > capacity {
            if t == start {
                return None;
            }
            groups.push(start..t);
            start = t;
            seen.clear();
        }
        for e in token {
            if !seen.contains(e) {
                seen.push(*e);
            }
        }
        if seen.len() > capacity {
            return None;
        }
    }
    if n > start {
        groups.push(start..n);
    }
    Some(groups)
}

/// The distinct experts of tokens `tokens` (`ids` is `[n, top_k]`), in first-use order.
pub fn distinct_experts(ids: &[u32], top_k: usize, tokens: Range<usize>) -> Vec<u32> {
    let mut out = Vec::with_capacity(tokens.len() * top_k);
    for &e in &ids[tokens.start * top_k..tokens.end * top_k] {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

/// One expert of a group: its id in the layer and where the cache put it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupAccess {
    pub expert: u32,
    pub lookup: Lookup,
}

/// Looks up (and pins) every distinct expert of tokens `tokens` of layer `layer`, in first-use
/// order. `None` if the pool ran out of unpinned slots (the groups were cut for more room than
/// there is).
pub fn acquire_group(cache: &mut ExpertCache, layer: usize, ids: &[u32], top_k: usize, tokens: Range<usize>) -> Option<Vec<GroupAccess>> {
    distinct_experts(ids, top_k, tokens)
        .into_iter()
        .map(|expert| cache.acquire(ExpertKey { layer: layer as u32, expert }).map(|lookup| GroupAccess { expert, lookup }))
        .collect()
}

/// Runs one layer of one step through `cache` as the engine does: the step's tokens cut into
/// groups that fit the unpinned slots, and per group its experts acquired in first-use order,
/// `work(cache, tokens, accesses)` run (the engine reads the misses and computes; the
/// simulator does nothing), and the slots released, whether `work` failed or not.
pub fn run_layer<E: From<crate::EngineError>>(
    cache: &mut ExpertCache,
    layer: usize,
    ids: &[u32],
    top_k: usize,
    mut work: impl FnMut(&mut ExpertCache, Range<usize>, &[GroupAccess]) -> Result<(), E>,
) -> Result<(), E> {
    let capacity = cache.unpinned();
    let groups = token_groups(ids, top_k, capacity).ok_or_else(|| {
        crate::EngineError::invalid(format!("expert cache: a token needs {top_k} experts but only {capacity} slots are free"))
    })?;
    for tokens in groups {
        let accesses = acquire_group(cache, layer, ids, top_k, tokens.clone());
        let result = match accesses {
            Some(a) => work(cache, tokens, &a),
            None => Err(crate::EngineError::invalid("expert cache: more experts than free slots in a group").into()),
        };
        cache.release_all();
        result?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_maximal_runs_that_fit() {
        // 4 tokens, top-2: experts {0,1} {1,2} {3,4} {0,3}.
        let ids = [0, 1, 1, 2, 3, 4, 0, 3];
        assert_eq!(token_groups(&ids, 2, 8), Some(std::iter::once(0..4).collect()));
        assert_eq!(token_groups(&ids, 2, 3), Some(vec![0..2, 2..4]));
        assert_eq!(token_groups(&ids, 2, 2), Some(vec![0..1, 1..2, 2..3, 3..4]));
        assert_eq!(token_groups(&ids, 2, 1), None);
        assert_eq!(distinct_experts(&ids, 2, 0..4), vec![0, 1, 2, 3, 4]);
        assert_eq!(distinct_experts(&ids, 2, 2..4), vec![3, 4, 0]);
    }
}
