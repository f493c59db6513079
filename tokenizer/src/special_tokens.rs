//! Special tokens: control strings such as `<|start|>` that map to one id each and are never
//! produced by merging. They are recognised in text only when the caller allows it.

use crate::error::{Result, TokenizerError};
use rustc_hash::FxHashMap as HashMap;

/// o200k_harmony's special tokens (ids 199998..=201087) as (name, id), as openai/tiktoken
/// defines them. Every id in the range has a name; ids without a role are `<|reserved_N|>`.
pub fn harmony_special_tokens() -> Vec<(String, u32)> {
    let mut tokens = Vec::with_capacity(1091);
    for id in 199_998..=201_087u32 {
        let name = match id {
            199_998 => "<|startoftext|>",
            199_999 => "<|endoftext|>",
            200_002 => "<|return|>",
            200_003 => "<|constrain|>",
            200_005 => "<|channel|>",
            200_006 => "<|start|>",
            200_007 => "<|end|>",
            200_008 => "<|message|>",
            200_012 => "<|call|>",
            _ => {
                // o200k_base's `<|endofprompt|>` survives as a second name for 200018. It is
                // listed first, so the id decodes as `<|reserved_200018|>`, as in tiktoken.
                if id == 200_018 {
                    tokens.push(("<|endofprompt|>".to_owned(), id));
                }
                tokens.push((format!("<|reserved_{id}|>"), id));
                continue;
            }
        };
        tokens.push((name.to_owned(), id));
    }
    tokens
}

/// Names ↔ ids of the special tokens, and a matcher that finds them in text.
pub(crate) struct SpecialTokens {
    id_by_name: HashMap<Box<str>, u32>,
    /// The name an id decodes to: the last name listed for it.
    name_by_id: HashMap<u32, Box<str>>,
    /// The first name listed for each id: the one a file with one name per id keeps.
    first_name_by_id: HashMap<u32, Box<str>>,
    /// Byte values that start some special token.
    first_bytes: [bool; 256],
    /// Byte values that end some special token: only such ends are looked up.
    last_bytes: [bool; 256],
    /// The only first byte, when all tokens share one (the usual `<`): lets the scan use memchr.
    single_first_byte: Option<u8>,
    /// Length of the longest name, bounding how far a match can reach.
    longest: usize,
}

impl SpecialTokens {
    /// `tokens` in order; a later name for an id becomes the name the id decodes to.
    pub(crate) fn new(tokens: impl IntoIterator<Item = (String, u32)>) -> Result<Self> {
        let mut id_by_name = HashMap::default();
        let mut name_by_id = HashMap::default();
        let mut first_name_by_id = HashMap::default();
        let mut first_bytes = [false; 256];
        let mut last_bytes = [false; 256];
        let mut longest = 0;
        for (name, id) in tokens {
            let Some(&first) = name.as_bytes().first() else {
                return Err(TokenizerError::EmptySpecialToken(name));
            };
            first_bytes[usize::from(first)] = true;
            last_bytes[usize::from(name.as_bytes()[name.len() - 1])] = true;
            longest = longest.max(name.len());
            let name: Box<str> = name.into();
            id_by_name.insert(name.clone(), id);
            first_name_by_id.entry(id).or_insert_with(|| name.clone());
            name_by_id.insert(id, name);
        }
        let mut starts = first_bytes.iter().enumerate().filter(|&(_, &s)| s);
        let single_first_byte = match (starts.next(), starts.next()) {
            (Some((byte, _)), None) => Some(byte as u8),
            _ => None,
        };
        Ok(Self { id_by_name, name_by_id, first_name_by_id, first_bytes, last_bytes, single_first_byte, longest })
    }

    pub(crate) fn id(&self, name: &str) -> Option<u32> {
        self.id_by_name.get(name).copied()
    }

    pub(crate) fn name(&self, id: u32) -> Option<&str> {
        self.name_by_id.get(&id).map(|name| &**name)
    }

    /// (name, id) pairs, sorted by id then name.
    pub(crate) fn entries(&self) -> Vec<(&str, u32)> {
        let mut entries: Vec<(&str, u32)> = self.id_by_name.iter().map(|(name, &id)| (&**name, id)).collect();
        entries.sort_unstable_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        entries
    }

    /// (first name listed, id) for each id, sorted by id.
    pub(crate) fn first_names(&self) -> Vec<(&str, u32)> {
        let mut entries: Vec<(&str, u32)> = self.first_name_by_id.iter().map(|(&id, name)| (&**name, id)).collect();
        entries.sort_unstable_by_key(|e| e.1);
        entries
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.name_by_id.keys().copied()
    }

    /// The leftmost special token in `text[from..]` (longest on a tie): (start, end, id).
    pub(crate) fn find(&self, text: &str, from: usize) -> Option<(usize, usize, u32)> {
        let bytes = text.as_bytes();
        let mut at = from;
        while at < bytes.len() {
            let start = match self.single_first_byte {
                Some(byte) => at + memchr::memchr(byte, &bytes[at..])?,
                None => at + bytes[at..].iter().position(|&b| self.first_bytes[usize::from(b)])?,
            };
            if let Some((end, id)) = self.longest_at(text, start) {
                return Some((start, end, id));
            }
            at = start + 1;
        }
        None
    }

    fn longest_at(&self, text: &str, start: usize) -> Option<(usize, u32)> {
        let bytes = text.as_bytes();
        let limit = (start + self.longest).min(bytes.len());
        (start + 1..=limit)
            .rev()
            .filter(|&end| self.last_bytes[usize::from(bytes[end - 1])])
            .find_map(|end| Some((end, self.id(text.get(start..end)?)?)))
    }
}
