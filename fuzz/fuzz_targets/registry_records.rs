//! The registry client's checks on arbitrary input: log records and signed tree heads
//! parse and verify without panicking, and Merkle proofs built from the input's leaves
//! verify while any tampered proof does not.
#![no_main]
use std::sync::OnceLock;

use atoll_registry::Digest;
use atoll_registry::log::{KeyChange, LogEntry, SignedTreeHead};
use atoll_registry::merkle;
use atoll_registry::sign::{KeyPair, PublicKey};
use libfuzzer_sys::fuzz_target;

/// `d` with one bit flipped: a digest that is surely not `d`.
fn flipped(d: &Digest, bit: u8) -> Digest {
    let mut bytes = d.0;
    bytes[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
    Digest(bytes)
}

fn server_key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| {
        KeyPair::from_seed_hex(&"7".repeat(64))
            .expect("a fixed seed")
            .public()
    })
}

fuzz_target!(|data: &[u8]| {
    // Records and tree heads as a hostile server would send them.
    if let Ok(entry) = LogEntry::from_bytes(data) {
        let _ = match &entry {
            LogEntry::Claim(r) => r.verify().map(|_| ()),
            LogEntry::Release(r) => r.verify().map(|_| ()),
            LogEntry::Yank(r) => r.verify().map(|_| ()),
            LogEntry::KeyGrant(r) => r.verify(KeyChange::Grant).map(|_| ()),
            LogEntry::KeyRevoke(r) => r.verify(KeyChange::Revoke).map(|_| ()),
        };
        // The leaf bytes are the bytes received, hashed as they are.
        let _ = LogEntry::leaf_hash(data);
    }
    if let Ok(head) = serde_json::from_slice::<SignedTreeHead>(data) {
        let _ = head.verify(server_key());
    }

    // Merkle proofs over leaves cut from the input.
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(shape % 24) + 1;
    let leaves: Vec<Digest> = (0..n)
        .map(|i| merkle::leaf_hash(rest.get(i..).unwrap_or_default()))
        .collect();
    let root = merkle::root(&leaves);
    let pick = rest.first().copied().unwrap_or(0);
    let index = usize::from(pick) % n;
    let proof = merkle::inclusion_proof(index, &leaves).expect("index < size");
    let (i, size) = (index as u64, n as u64);
    assert!(merkle::verify_inclusion(
        i,
        size,
        &leaves[index],
        &proof,
        &root
    ));
    // Tampering with any part fails.
    if !proof.is_empty() {
        let mut bad = proof.clone();
        let at = usize::from(pick) % bad.len();
        bad[at] = flipped(&bad[at], pick);
        assert!(!merkle::verify_inclusion(
            i,
            size,
            &leaves[index],
            &bad,
            &root
        ));
        assert!(!merkle::verify_inclusion(
            i,
            size,
            &leaves[index],
            &proof[1..],
            &root
        ));
    }
    let other = flipped(&leaves[index], pick);
    assert!(!merkle::verify_inclusion(i, size, &other, &proof, &root));
    assert!(!merkle::verify_inclusion(
        size,
        size,
        &leaves[index],
        &proof,
        &root
    ));

    let old = usize::from(rest.get(1).copied().unwrap_or(0)) % n + 1;
    let old_root = merkle::root(&leaves[..old]);
    let consistency = merkle::consistency_proof(old, &leaves).expect("old <= size");
    let (o, s) = (old as u64, n as u64);
    assert!(merkle::verify_consistency(
        o,
        s,
        &old_root,
        &root,
        &consistency
    ));
    if old < n {
        let wrong_old = flipped(&old_root, pick);
        assert!(!merkle::verify_consistency(
            o,
            s,
            &wrong_old,
            &root,
            &consistency
        ));
        if !consistency.is_empty() {
            let mut bad = consistency.clone();
            let at = usize::from(pick) % bad.len();
            bad[at] = flipped(&bad[at], pick);
            assert!(!merkle::verify_consistency(o, s, &old_root, &root, &bad));
        }
    }
    // Proofs straight from the input: answered, never a panic.
    let arbitrary: Vec<Digest> = rest.chunks(7).map(merkle::leaf_hash).collect();
    let _ = merkle::verify_inclusion(i, size, &leaves[index], &arbitrary, &root);
    let _ = merkle::verify_consistency(o, s, &old_root, &root, &arbitrary);
    let _ = merkle::verify_consistency(u64::from(pick), s, &old_root, &root, &arbitrary);
});
