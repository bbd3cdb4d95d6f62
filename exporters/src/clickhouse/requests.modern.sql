CREATE TABLE IF NOT EXISTS requests
(
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    request_id String CODEC(ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    identity LowCardinality(String),
    login LowCardinality(String),
    tags Array(LowCardinality(String)),
    node LowCardinality(String),
    src_ip LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    response_model LowCardinality(String),
    endpoint LowCardinality(String),
    stream UInt8,
    status UInt16,
    input_tokens UInt64 CODEC(T64, ZSTD(1)),
    output_tokens UInt64 CODEC(T64, ZSTD(1)),
    cache_read_tokens UInt64 CODEC(T64, ZSTD(1)),
    cache_write_tokens UInt64 CODEC(T64, ZSTD(1)),
    reasoning_tokens UInt64 CODEC(T64, ZSTD(1)),
    cost_usd Float64 CODEC(Gorilla, ZSTD(1)),
    duration_ms Float64 CODEC(Gorilla, ZSTD(1)),
    ttft_ms Nullable(Float64),
    usage_source LowCardinality(String),
    user_agent LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (toDate(ts), identity, request_id)
TTL toDateTime(ts) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;
