//! Decode + filter: NDJSON bytes to `events` batches, and a DataFusion predicate over them.
//! Throughput is in input bytes. Speed comparisons with other tools live in scripts/bench.sh.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datafusion::physical_plan::memory::MemoryStream;
use rehydrate::event::{self, BatchDecoder};
use rehydrate::filter::{self, FilterSpec};

/// The sample store, repeated to about 10 MB.
fn input() -> Vec<u8> {
    let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/events.ndjson")).unwrap();
    let mut out = Vec::with_capacity(11 << 20);
    while out.len() < 10 << 20 {
        out.extend_from_slice(&sample);
    }
    out
}

fn decode(input: &[u8]) -> Vec<arrow::array::RecordBatch> {
    let mut batches = Vec::new();
    let mut d = BatchDecoder::new(None, 8192);
    for (i, line) in input.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        d.push(line, "bench.ndjson", i as u64 + 1).unwrap();
        if d.len() == 8192 {
            batches.push(d.finish());
        }
    }
    batches.push(d.finish());
    batches
}

fn bench(c: &mut Criterion) {
    let input = input();
    let mut group = c.benchmark_group("events");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(10);

    group.bench_function("decode_ndjson", |b| b.iter(|| decode(&input)));

    let batches = decode(&input);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (name, predicate) in [
        (
            "filter_envelope",
            "source = 'com.shop.orders' AND detail_type = 'OrderPlaced'",
        ),
        (
            "filter_nested_detail",
            "detail->'customer'->'address'->>'city' = 'München'",
        ),
        ("filter_detail_number", "json_get_float(detail, 'total') > 250"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let ctx = filter::session(8192).unwrap();
                    let stream = MemoryStream::try_new(batches.clone(), event::source_schema(), None).unwrap();
                    let spec = FilterSpec {
                        where_: Some(predicate.into()),
                        ..Default::default()
                    };
                    let selection = filter::select(&ctx, Box::pin(stream), &spec, None).await.unwrap();
                    let out = selection.df.collect().await.unwrap();
                    out.iter().map(|b| b.num_rows()).sum::<usize>()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
