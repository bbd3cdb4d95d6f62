//! Throughput of the request body's check and read ([`tailmeter::body::parse_fields`]): every
//! proxied JSON body is checked whole (UTF-8, one well-formed object, nesting) and its `model`
//! and `stream` found before the request can be routed, so on a large prompt this is time the
//! provider waits for. Inputs: the benchmark's 1 MiB prompt (`tests/bench`, workload d: English
//! prose), the same size of text that is mostly not ASCII (CJK and emoji), and the small chat
//! request of workload a. Time is the bench thread's CPU time, as in `usage.rs`.
//!
//! A body that arrives in pieces is checked as they come ([`TopLevelScan::advance`]): the
//! `pieces` group times the whole check done that way, 64 KiB at a time as Pingora reads a body,
//! and the `after_last_piece` group the part left once the last piece is in, which is what the
//! request waits for.
//!
//! Run: `cargo bench -p tailmeter --bench request_body`.

mod cpu_time;

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use tailmeter::body::{parse_fields, parse_scanned, TopLevelScan};

use cpu_time::ThreadCpuTime;

/// A chat request whose second message is `text`, repeated to make the body about 1 MiB.
fn big_prompt(text: &str) -> Vec<u8> {
    let content = text.repeat((1 << 20) / text.len());
    let body = serde_json::json!({
        "messages": [
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "user", "content": content},
        ],
        "model": "gpt-4o",
    });
    serde_json::to_vec(&body).expect("a JSON value serializes")
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "prose_1mib",
            big_prompt(
                "The quick brown fox jumps over the lazy dog while the committee reviews the \
                 quarterly figures, line by line, before lunch. ",
            ),
        ),
        (
            "not_ascii_1mib",
            big_prompt("委員会は昼食前に四半期の数字を一行ずつ確認します。🦊 Le café est prêt. "),
        ),
        (
            "chat_small",
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"What is the capital of France?"}]}"#
                .to_vec(),
        ),
    ]
}

fn parse(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("request_body");
    for (label, body) in inputs() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &body, |b, body| {
            b.iter(|| parse_fields(black_box(body)).map(|fields| fields.stream))
        });
    }
    group.finish();
}

/// Pingora's body reads: 64 KiB at most each.
const PIECE: usize = 64 * 1024;

/// The scan advanced over each piece of `body` as it would arrive, but the last.
fn all_but_the_last_piece(body: &[u8]) -> TopLevelScan {
    let mut scan = TopLevelScan::default();
    for end in (PIECE..body.len()).step_by(PIECE) {
        scan.advance(&body[..end]);
    }
    scan
}

fn in_pieces(c: &mut Criterion<ThreadCpuTime>) {
    for (group, measure_all) in [("pieces", true), ("after_last_piece", false)] {
        let mut group = c.benchmark_group(group);
        for (label, body) in inputs().into_iter().filter(|(_, b)| b.len() > PIECE) {
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(BenchmarkId::from_parameter(label), &body, |b, body| {
                if measure_all {
                    b.iter(|| {
                        let scan = all_but_the_last_piece(black_box(body));
                        parse_scanned(body, scan).map(|fields| fields.stream)
                    })
                } else {
                    b.iter_batched(
                        || all_but_the_last_piece(body),
                        |scan| parse_scanned(black_box(body), scan).map(|fields| fields.stream),
                        BatchSize::SmallInput,
                    )
                }
            });
        }
        group.finish();
    }
}

cpu_time_main!(parse, in_pieces);
