//! An RFC 6962 (Certificate Transparency) Merkle tree over log entries: leaf and node
//! hashing with the 0x00 / 0x01 domain-separation prefixes, inclusion proofs and
//! consistency proofs, and their verification (the algorithms of RFC 9162 §2.1.3.2 and
//! §2.1.4.2).
//!
//! Pure functions over a slice of leaf hashes; no I/O. The server keeps every leaf hash
//! in memory and builds proofs on request in O(n) hashing; fine for registries of up to
//! a few million entries, beyond that a stored tree (tiles, as in Go's sumdb) is needed.

use sha2::{Digest as _, Sha256};

use crate::hash::Digest;

/// The hash of a leaf: SHA-256(0x00 || entry bytes).
pub fn leaf_hash(entry: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    Digest(h.finalize().into())
}

/// The hash of an inner node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Digest(h.finalize().into())
}

/// The root of an empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Digest {
    Digest::of(b"")
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]): the root hash of the tree whose leaves hash to `leaves`.
pub fn root(leaves: &[Digest]) -> Digest {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path proving that leaf `index` is in the tree of `leaves`.
/// `None` when `index` is out of range.
pub fn inclusion_proof(index: usize, leaves: &[Digest]) -> Option<Vec<Digest>> {
    if index >= leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    path(index, leaves, &mut proof);
    Some(proof)
}

fn path(m: usize, leaves: &[Digest], out: &mut Vec<Digest>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// PROOF(m, D[n]): proves that the tree of the first `old_size` leaves is a prefix of
/// the tree of `leaves`. `None` when `old_size > leaves.len()`. Empty when the sizes are
/// equal or `old_size` is 0 (every tree extends the empty tree).
pub fn consistency_proof(old_size: usize, leaves: &[Digest]) -> Option<Vec<Digest>> {
    if old_size > leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    if old_size > 0 && old_size < leaves.len() {
        subproof(old_size, leaves, true, &mut proof);
    }
    Some(proof)
}

fn subproof(m: usize, leaves: &[Digest], complete: bool, out: &mut Vec<Digest>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Check that `leaf` is leaf number `index` of the tree of `size` leaves with root
/// `root`, given the audit path `proof`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Digest,
    proof: &[Digest],
    root: &Digest,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// Check that the tree of `old_size` leaves with root `old_root` is a prefix of the tree
/// of `new_size` leaves with root `new_root`, given `proof`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Digest,
    new_root: &Digest,
    proof: &[Digest],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    // When the old tree is a complete subtree, its root is the first node of the path.
    let mut nodes: Vec<Digest> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        nodes.push(*old_root);
    }
    nodes.extend_from_slice(proof);
    let Some((first, rest)) = nodes.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    f_r == *old_root && s_r == *new_root && s_n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    /// A second, obviously correct root: hash levels pairwise, promoting an odd last node.
    /// RFC 6962's split-at-power-of-two tree has the same shape.
    fn root_by_levels(level: &[Digest]) -> Digest {
        if level.is_empty() {
            return empty_root();
        }
        let mut level = level.to_vec();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|c| match c {
                    [l, r] => node_hash(l, r),
                    [one] => *one,
                    _ => unreachable!("chunks(2)"),
                })
                .collect();
        }
        level[0]
    }

    #[test]
    fn rfc6962_known_vectors() {
        // From the Certificate Transparency test data (certificate-transparency-go,
        // merkle/testonly): the empty root, and the root of the one-leaf tree over "".
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn root_matches_level_by_level_hashing() {
        for n in 0..70 {
            let l = leaves(n);
            assert_eq!(root(&l), root_by_levels(&l), "n={n}");
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_tampering_fails() {
        for n in 1..40usize {
            let l = leaves(n);
            let r = root(&l);
            for (i, leaf) in l.iter().enumerate() {
                let proof = inclusion_proof(i, &l).expect("in range");
                assert!(
                    verify_inclusion(i as u64, n as u64, leaf, &proof, &r),
                    "{i}/{n}"
                );
                // Wrong index, wrong leaf, wrong root, altered or shortened path.
                assert!(!verify_inclusion(
                    i as u64,
                    n as u64,
                    &leaf_hash(b"x"),
                    &proof,
                    &r
                ));
                assert!(!verify_inclusion(
                    i as u64,
                    n as u64,
                    leaf,
                    &proof,
                    &leaf_hash(b"x")
                ));
                if n > 1 {
                    assert!(!verify_inclusion(
                        ((i + 1) % n) as u64,
                        n as u64,
                        leaf,
                        &proof,
                        &r
                    ));
                    let mut bad = proof.clone();
                    bad[0] = leaf_hash(b"evil");
                    assert!(!verify_inclusion(i as u64, n as u64, leaf, &bad, &r));
                    assert!(!verify_inclusion(i as u64, n as u64, leaf, &proof[1..], &r));
                }
            }
            assert!(inclusion_proof(n, &l).is_none());
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_forks_fail() {
        for n in 1..40usize {
            let l = leaves(n);
            let new_root = root(&l);
            for m in 0..=n {
                let old_root = root(&l[..m]);
                let proof = consistency_proof(m, &l).expect("m <= n");
                assert!(
                    verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof),
                    "{m}->{n}"
                );
                if m == 0 {
                    continue;
                }
                // A fork: the old tree had a different entry, so its root differs.
                let mut forked = l[..m].to_vec();
                forked[m - 1] = leaf_hash(b"forked");
                let forked_root = root(&forked);
                assert!(
                    !verify_consistency(m as u64, n as u64, &forked_root, &new_root, &proof),
                    "fork {m}->{n}"
                );
                if !proof.is_empty() {
                    let mut bad = proof.clone();
                    let last = bad.len() - 1;
                    bad[last] = leaf_hash(b"evil");
                    assert!(!verify_consistency(
                        m as u64, n as u64, &old_root, &new_root, &bad
                    ));
                }
            }
            assert!(consistency_proof(n + 1, &l).is_none());
        }
    }

    #[test]
    fn rewritten_history_fails_consistency() {
        let old = leaves(5);
        let mut new = leaves(9);
        new[2] = leaf_hash(b"rewritten");
        let proof = consistency_proof(5, &new).expect("5 <= 9");
        assert!(!verify_consistency(5, 9, &root(&old), &root(&new), &proof));
    }
}
