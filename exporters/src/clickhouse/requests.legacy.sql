CREATE TABLE IF NOT EXISTS requests
(
    ts DateTime,
    request_id String,
    trace_id String,
    identity String,
    login String,
    tags Array(String),
    node String,
    src_ip String,
    provider String,
    model String,
    response_model String,
    endpoint String,
    stream UInt8,
    status UInt16,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    cost_usd Float64,
    duration_ms Float64,
    ttft_ms Nullable(Float64),
    usage_source String,
    user_agent String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (toDate(ts), identity, request_id);
