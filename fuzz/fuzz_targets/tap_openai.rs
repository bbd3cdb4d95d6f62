//! The OpenAI chat, legacy completions, Responses, embeddings, image/audio and Realtime extractors, fed through `UsageTap` in every framing: never panic, and learn the same
//! however the body is chunked (see `tailmeter_fuzz::tap_is_chunking_invariant`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailmeter::usage::Dialect;

const DIALECTS: &[Dialect] = &[
    Dialect::OpenAiChat,
    Dialect::OpenAiCompletions,
    Dialect::OpenAiResponses,
    Dialect::OpenAiEmbeddings,
    Dialect::OpenAiMedia,
    Dialect::OpenAiRealtime,
];

fuzz_target!(|input: &[u8]| tailmeter_fuzz::tap_is_chunking_invariant(DIALECTS, input));
