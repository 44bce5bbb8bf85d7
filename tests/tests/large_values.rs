//! A 64 MB bytea streams through pgvisor in both directions unchanged.

use std::time::Instant;

use pgvisor_tests::{connect, shared_cluster, start_proxy, unique_name};
use sha2::{Digest, Sha256};

const SIZE: usize = 64 * 1024 * 1024;

/// Incompressible bytes (xorshift), so neither TOAST compression nor luck hides a corruption.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytea_of_64_mb_round_trips_through_the_proxy() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let table = unique_name("blob");
    let blob = incompressible(SIZE);
    let expected_hash = Sha256::digest(&blob).to_vec();

    let proxied = connect(&proxy.endpoint()).await.unwrap();
    proxied
        .batch_execute(&format!(
            "create table {table} (id int, b bytea); alter table {table} alter b set storage external"
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let inserted = proxied.execute(&format!("insert into {table} values (1, $1)"), &[&blob]).await.unwrap();
    assert_eq!(inserted, 1);
    let insert_time = started.elapsed();

    // What the server stored, seen directly: the bytes the client sent.
    let direct = connect(&cluster.endpoint()).await.unwrap();
    let row = direct.query_one(&format!("select length(b), sha256(b) from {table}"), &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0) as usize, SIZE);
    assert_eq!(row.get::<_, Vec<u8>>(1), expected_hash, "the stored value differs from the one sent");

    // And back through the proxy: one 64 MB DataRow.
    let started = Instant::now();
    let back: Vec<u8> = proxied.query_one(&format!("select b from {table}"), &[]).await.unwrap().get(0);
    let select_time = started.elapsed();
    assert_eq!(back.len(), SIZE);
    // Byte equality with the hashed original (hashing 64 MB again is slow in a debug build).
    assert!(back == blob, "the value read back differs");
    eprintln!("64 MB bytea through the proxy: insert {insert_time:?}, select {select_time:?}");
    direct.batch_execute(&format!("drop table {table}")).await.unwrap();
}
