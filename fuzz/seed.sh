#!/usr/bin/env bash
# Seeds each fuzz target's corpus (idempotent: files are named by what they hold).
# - The parser targets: every recorded body of tests/fixtures (its `# source:` line dropped; the
#   .b64 one decoded), behind a first byte the targets read as parameters.
# - config: every tailmeter.toml the project ships or tests (deploy/, the ```toml blocks of
#   README.md and docs/, the raw-string configs of proxy/src/config's tests, the e2e harness's).
# - include_usage: chat request bodies as the SDKs and clients send them (first byte even: the
#   rewriter) and the recorded streams (first byte odd: the stripper, with a chunk size).
# - request_coding: those bodies in gzip, deflate and (with Python's zstandard) zstd, each behind
#   the first byte that names its coding and a limit of 16 KiB.
set -euo pipefail
cd "$(dirname "$0")"
repo=..
fixtures=$repo/tests/fixtures
parsers=(sse_reader eventstream json_array tap_openai tap_anthropic tap_gemini tap_bedrock)
for target in "${parsers[@]}" config include_usage request_coding form; do
    mkdir -p "corpus/$target"
done
for path in "$fixtures"/*; do
    name=$(basename "$path")
    case "$name" in
        *.md | tailscale) continue ;;
        *.b64) body=$(tail -n +2 "$path" | base64 -d | od -An -tx1 | tr -d ' \n') ;;
        *) if head -c 9 "$path" | grep -q '^# source:'; then
               body=$(tail -n +2 "$path" | od -An -tx1 | tr -d ' \n')
           else
               body=$(od -An -tx1 < "$path" | tr -d ' \n')
           fi ;;
    esac
    for param in 00 05 2a; do
        for target in "${parsers[@]}"; do
            printf '%s%s' "$param" "$body" | xxd -r -p > "corpus/$target/$name.$param"
        done
    done
    # The stripper reads streams: odd first bytes (chunk sizes 1, 6 and 64).
    case "$name" in
        *.sse) for param in 01 0b 7f; do
                   printf '%s%s' "$param" "$body" | xxd -r -p > "corpus/include_usage/$name.$param"
               done ;;
    esac
done

python3 - "$repo" <<'EOF'
import json, re, sys
from pathlib import Path

repo = Path(sys.argv[1])
configs = {}
for path in sorted(repo.glob("deploy/**/*.toml")):
    configs[f"deploy-{path.parent.name}"] = path.read_text()
for path in [repo / "README.md", *sorted(repo.glob("docs/**/*.md"))]:
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", path.read_text(), re.S)):
        configs[f"doc-{path.stem}-{i}"] = block
# The ConfigMap's file: the indented block under `tailmeter.toml: |`.
configmap = (repo / "deploy/kubernetes/configmap.yaml").read_text()
if match := re.search(r"tailmeter\.toml: \|\n((?:    .*\n|\n)+)", configmap):
    configs["deploy-kubernetes"] = re.sub(r"^    ", "", match.group(1), flags=re.M)
for path in sorted(repo.glob("proxy/src/config/tests*.rs")) + sorted(repo.glob("proxy/src/config/tests/*.rs")):
    for i, text in enumerate(re.findall(r'r#"(.*?)"#', path.read_text(), re.S)):
        if "[" in text:
            configs[f"test-{path.stem}-{i}"] = text
sys.path.insert(0, str(repo / "tests/python"))
from harness import config as cfg  # noqa: E402
sim = "http://127.0.0.1:9"
for name, providers in [("standard", cfg.standard_providers(sim)), ("metering", cfg.metering_providers(sim))]:
    extra = cfg.sections(events={"dir": "/tmp/events", "batch_rows": 10}, clickhouse={"url": sim, "database": "tm"})
    configs[f"harness-{name}"] = cfg.render(cfg.TailmeterConfig("127.0.0.1:1", "127.0.0.1:2", providers, extra=extra))
# The config target checks that `${FUZZ_SECRET}` used as a key or password never shows.
secret = re.sub(r'^api_key = .*$', 'api_key = "${FUZZ_SECRET}"', configs["harness-standard"], flags=re.M)
configs["secret"] = secret.replace('database = "tm"', 'database = "tm"\npassword = "${FUZZ_SECRET}"')
for name, text in configs.items():
    (Path("corpus/config") / name).write_text(text)

# Chat request bodies as sent by the openai SDK (compact), by hand (spaced), and the edge cases
# the rewriter's scanner walks: options present, null, empty, false; escapes; nesting.
chat = {"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"}
bodies = [
    {**chat, "stream": True},
    {"model": "gpt-4o", "stream": True, "messages": [{"role": "system", "content": "be \"brief\"\n"}], "temperature": 0.2},
    {**chat, "stream": True, "stream_options": None},
    {**chat, "stream": True, "stream_options": {}},
    {**chat, "stream": True, "stream_options": {"include_usage": False}},
    {**chat, "stream": True, "stream_options": {"include_obfuscation": False}},
    {**chat, "stream": True, "stream_options": {"include_usage": True}},
    {**chat, "stream": False},
    {**chat, "stream": True, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]},
    {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": "\u00e9\u4e2d"}]}], "stream": True},
]
texts = [json.dumps(b, separators=(",", ":")) for b in bodies]
texts += [json.dumps(b, indent=2) for b in bodies[:5]]
texts += [
    '{"stre\\u0061m":true,"model":"gpt-4o"}',
    ' \n{ "stream" : true , "stream_options" : { "include_usage" : null } } \n',
    '{"stream":true,"stream":true}',
    '[true,null]',
]
for i, text in enumerate(texts):
    (Path("corpus/include_usage") / f"body-{i}").write_bytes(b"\x00" + text.encode())

# The first byte: the coding in its low two bits (0 gzip, 1 deflate, 3 zstd), a 16 KiB limit above.
import gzip, zlib
coders = {0: gzip.compress, 1: zlib.compress}
try:
    import zstandard
    coders[3] = zstandard.ZstdCompressor(level=3).compress
except ImportError:
    pass
for i, text in enumerate(texts):
    for coding, compress in coders.items():
        first = bytes([(4 << 2) | coding])
        (Path("corpus/request_coding") / f"body-{i}.{coding}").write_bytes(first + compress(text.encode()))
EOF
# form: forms as the OpenAI SDK (httpx) and Open WebUI (aiohttp) write them, behind the first
# byte that gives the boundary's length (8) and the boundary.
form_part() { printf -- '--%s\r\nContent-Disposition: form-data; name="%s"%s\r\n\r\n%s\r\n' "$@"; }
{ printf '\x07b0undary'; form_part b0undary model '' openai/gpt-4o-transcribe
  form_part b0undary file '; filename="a.wav"' 'RIFF..--b0undar'; form_part b0undary stream '' true
  printf -- '--b0undary--\r\n'; } > corpus/form/sdk
{ printf '\x07aiohttp1'; form_part aiohttp1 model '' whisper-1; printf -- '--aiohttp1--\r\n'; } > corpus/form/aiohttp
echo "seeded $(ls corpus/tap_openai | wc -l) inputs per parser target," \
    "$(ls corpus/config | wc -l) config, $(ls corpus/include_usage | wc -l) include_usage," \
    "$(ls corpus/request_coding | wc -l) request_coding, $(ls corpus/form | wc -l) form"
