//! Embedding lookup: `out[t, :] = table[tokens[t], :]`, decoded to f32 (ids were checked
//! against the table when the arguments were made).

use gptoss_engine::EmbedArgs;

use crate::host::Host;
use crate::workspace::Workspace;

pub fn embed(a: EmbedArgs<Host>, _: &mut Workspace) {
    let d = a.table.cols;
    for (&id, out) in a.tokens.iter().zip(a.out.chunks_exact_mut(d)) {
        a.table.row_f32(id as usize, out);
    }
}
