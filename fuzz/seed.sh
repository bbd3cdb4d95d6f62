#!/usr/bin/env bash
# Seeds each fuzz target's corpus from tests/fixtures: every recorded body (its `# source:`
# line dropped; the .b64 one decoded), behind a first byte the targets read as parameters.
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../tests/fixtures
for target in sse_reader eventstream json_array tap_openai tap_anthropic tap_gemini tap_bedrock; do
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
        for target in sse_reader eventstream json_array tap_openai tap_anthropic tap_gemini tap_bedrock; do
            printf '%s%s' "$param" "$body" | xxd -r -p > "corpus/$target/$name.$param"
        done
    done
done
echo "seeded $(ls corpus/tap_openai | wc -l) inputs per target"
