//! The ledger's Merkle tree checked against an independent RFC 6962 implementation (ct-merkle):
//! the same roots, the same inclusion proofs and the same consistency proofs for every size and
//! index up to 70 leaves.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use loghost::hash::Hash;
use loghost::ledger::merkle;

fn flat(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

#[test]
fn roots_and_proofs_match_ct_merkle() {
    let lines: Vec<Vec<u8>> = (0..70)
        .map(|i| format!("{{\"kind\":\"event\",\"seq\":{i}}}").into_bytes())
        .collect();
    let leaves: Vec<Hash> = lines.iter().map(|l| merkle::leaf_hash(l)).collect();
    let mut theirs: MemoryBackedTree<sha2_011::Sha256, Vec<u8>> = MemoryBackedTree::new();
    let mut frontier = merkle::Frontier::new();
    for n in 1..=lines.len() {
        theirs.push(lines[n - 1].clone());
        frontier.push(leaves[n - 1]);
        let ours = merkle::root(&leaves[..n]);
        assert_eq!(theirs.root().as_bytes().as_slice(), &ours.0, "root of {n}");
        assert_eq!(frontier.root(), ours, "frontier root of {n}");
        for i in 0..n {
            let p = merkle::inclusion_proof(&leaves[..n], i as u64).expect("in range");
            assert_eq!(
                theirs.prove_inclusion(i).as_bytes(),
                flat(&p).as_slice(),
                "inclusion of {i} in {n}"
            );
        }
        for m in 1..n {
            let p = merkle::consistency_proof(&leaves[..n], m as u64).expect("m < n");
            assert_eq!(
                theirs.prove_consistency(n - m).as_bytes(),
                flat(&p).as_slice(),
                "consistency {m} -> {n}"
            );
        }
    }
}
