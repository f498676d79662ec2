//! Count the vowels of the input (Extism's own example plugin, returning the count as
//! text instead of JSON so both sides do the same work).
use extism_pdk::*;

#[plugin_fn]
pub fn count_vowels(input: String) -> FnResult<String> {
    let n = input.chars().filter(|c| "aeiouAEIOU".contains(*c)).count();
    Ok(n.to_string())
}
