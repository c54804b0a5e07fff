//! Record encryption cost: seal (encrypt) and open (decrypt) of 1 KiB and 64 KiB records
//! under a subject's data key, with the associated data every record carries.
//! `cargo bench -p phi-vault --bench crypto` (or `scripts/bench`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use phi_vault::crypto::{self, Binding, DataKey};
use uuid::Uuid;

fn records(c: &mut Criterion) {
    let key = DataKey::generate().expect("key");
    let (subject, record) = (Uuid::new_v4(), Uuid::new_v4());
    let binding = || Binding { subject, record, category: "intake_conversation", field: "content" };
    let mut group = c.benchmark_group("record");
    for size in [1024usize, 64 * 1024] {
        let plaintext: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let (nonce, ciphertext) = crypto::seal(&key, binding(), &plaintext).expect("seal");
        group.throughput(Throughput::Bytes(size as u64));
        let label = format!("{} KiB", size / 1024);
        group.bench_with_input(BenchmarkId::new("seal", &label), &plaintext, |b, p| {
            b.iter(|| crypto::seal(&key, binding(), std::hint::black_box(p)).expect("seal"))
        });
        group.bench_with_input(BenchmarkId::new("open", &label), &ciphertext, |b, ct| {
            b.iter(|| crypto::open(&key, binding(), &nonce, std::hint::black_box(ct)).expect("open"))
        });
    }
    group.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
