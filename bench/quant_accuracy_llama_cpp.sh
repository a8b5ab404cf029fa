#!/usr/bin/env bash
# Accuracy of Tidal's quantized formats next to llama.cpp's Q8_0 and Q4_0 on the same weights and
# the same token ids (issue 6's accuracy report): mean KL(P_ref || P_q) of next-token
# distributions, top-1 agreement with the reference, and PPL(Q)/PPL(ref).
#
# usage: bench/quant_accuracy_llama_cpp.sh [MODEL_DIR]   (default $ANCHORS/models/small)
#   MODEL_DIR holds hf/ (Tidal) and model-bf16.gguf or model-f16.gguf (llama.cpp, same values);
#   model-q8_0.gguf / model-q4_0.gguf are made with llama-quantize when missing.
# Env: THREADS (2), CTX (512), CHUNKS (40: 40 x 512 = 20480 tokens through each model, the second
#      half of each chunk scored), TEXT (a text file; default /usr/share/common-licenses/GPL-3, plain
#      English, ASCII, ~35k tokens with the anchors' char-level tokenizer),
#      FORMATS ("int8 int8:block1x32 w8a8 fp8 fp8:block128 nvfp4 mxfp4 nvfp4:a8";
#      int8:block1x32 has the scale granularity of Q8_0), EXCLUDE (unset: Tidal's default,
#      lm_head and embed_tokens kept as stored; "embed_tokens" also quantizes lm_head),
#      LM_HEAD_FORMATS ("int8 nvfp4"; "" for none): formats run a second time with lm_head quantized
#      too (rows "F +lm_head"), closer to llama.cpp's files, whose output.weight is Q8_0 in Q8_0 and
#      Q6_K in Q4_0 (and whose token_embd is quantized too: only gathered, one row per token),
#      SELF_CHECK (1: also score llama.cpp's base GGUF against its own saved logits, the floor its
#      16-bit storage of the reference log-probabilities puts under its KL and top-1 figures),
#      LLAMA_TYPES ("q8_0 q4_0": llama.cpp's quantized files to score; "q4_0" alone saves a pass
#      when only the 4-bit formats are compared),
#      OUT (a directory for the logs; default a new /tmp/quant_acc.XXXXXX), NICE (10).
#
# How the two sides line up:
#  - Token ids: llama-perplexity tokenizes TEXT and stores the ids it evaluates in its
#    --kl-divergence-base file; they are read back from there and given to bench_quant_accuracy
#    with --token-ids, so both sides score the very same ids (the script also reports whether
#    `tidal tokenize` gives the same ids, for information).
#  - Chunking: chunks of CTX tokens, each starting with BOS (llama-perplexity replaces the chunk's
#    first id with BOS; bench_quant_accuracy --bos-chunks does the same), fresh KV cache per chunk,
#    and only the logits at positions CTX/2 .. CTX-2 (predicting ids CTX/2+1 .. CTX-1) scored
#    (--skip CTX/2): (CTX/2 - 1) x CHUNKS positions on both sides.
#  - KL: sum_v p_ref(v) (ln p_ref(v) - ln p_q(v)), natural log, averaged over scored positions;
#    top-1: argmax p_ref == argmax p_q; PPL ratio: exp(mean NLL_q - mean NLL_ref).
#  - Reference: each side uses its own evaluation of the unquantized weights. llama.cpp's is the
#    BF16/F16 GGUF run by llama.cpp, its log-probabilities stored in 16 bits per vocab entry and
#    entries below ln p = -16 left out of the KL sum; Tidal's is its own BF16/F16 model in F32
#    arithmetic (F32 KV cache), in full precision. The two references' perplexities are printed
#    side by side as a cross-check; SELF_CHECK gives llama.cpp's storage floor.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ANCHORS=${ANCHORS:-${TMPDIR:-/tmp}/anchors}
shared=${TIDAL_SHARED:-$root/../shared}
model=$(realpath "${1:-$ANCHORS/models/small}")
threads=${THREADS:-2}; ctx=${CTX:-512}; chunks=${CHUNKS:-40}; nice_level=${NICE:-10}
text=${TEXT:-/usr/share/common-licenses/GPL-3}
formats=${FORMATS:-int8 int8:block1x32 w8a8 fp8 fp8:block128 nvfp4 mxfp4 nvfp4:a8}
self_check=${SELF_CHECK:-1}
lm_head_formats=${LM_HEAD_FORMATS-int8 nvfp4}
tidal=$root/build/release/tools/tidal/tidal
bench=$root/build/release/bench/bench_quant_accuracy
bin=$ANCHORS/llama.cpp/build/bin
out=${OUT:-$(mktemp -d /tmp/quant_acc.XXXXXX)}
mkdir -p "$out"
[ -x "$bench" ] && [ -x "$tidal" ] || {
  echo "build Tidal first: cmake --build build/release --target bench_quant_accuracy tidal" >&2; exit 1; }
[ -x "$bin/llama-perplexity" ] || { echo "build llama.cpp first: $shared/anchors/build-llama-cpp.sh" >&2; exit 1; }
[ -d "$model/hf" ] || { echo "no $model/hf (Tidal's copy of the weights)" >&2; exit 1; }
[ -r "$text" ] || { echo "no readable text file $text" >&2; exit 1; }
base=
for b in "$model"/model-bf16.gguf "$model"/model-f16.gguf; do [ -f "$b" ] && { base=$b; break; }; done
[ -n "$base" ] || { echo "no model-bf16.gguf or model-f16.gguf in $model" >&2; exit 1; }
read -r -a llama_types <<<"${LLAMA_TYPES:-q8_0 q4_0}"
for q in "${llama_types[@]}"; do
  if [ ! -f "$model/model-$q.gguf" ]; then
    # (absolute paths: llama-quantize reads an argument starting with a digit as a type number)
    nice -n "$nice_level" "$bin/llama-quantize" "$base" "$model/model-$q.gguf" "${q^^}" "$threads" \
      >"$out/quantize-$q.log" 2>&1 || { echo "llama-quantize $q failed: $out/quantize-$q.log" >&2; exit 1; }
  fi
done
cp "$text" "$out/text.txt"

echo "model $model, text $text ($(wc -c <"$text") bytes, sha256 $(sha256sum "$text" | cut -c1-16)), ctx $ctx," \
  "$chunks chunks, $threads threads, logs in $out" >&2
# 1. llama.cpp: reference logits of the unquantized GGUF (this also stores the evaluated ids).
llama=(nice -n "$nice_level" "$bin/llama-perplexity" -t "$threads" -c "$ctx" --chunks "$chunks")
"${llama[@]}" -m "$base" -f "$out/text.txt" --kl-divergence-base "$out/base.kld" >"$out/llama-base.log" 2>&1 ||
  { echo "llama-perplexity (base) failed: $out/llama-base.log" >&2; exit 1; }
llama_ref_ppl=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$out/llama-base.log")

# 2. The ids llama.cpp evaluated: header "_logits_", n_ctx, n_vocab, n_chunk (int32), then ids.
python3 - "$out/base.kld" "$out/ids.txt" <<'EOF'
import struct, sys
with open(sys.argv[1], 'rb') as f:
    if f.read(8) != b'_logits_':
        sys.exit(sys.argv[1] + ': not a llama-perplexity logits file')
    n_ctx, n_vocab, n_chunk = struct.unpack('<Iii', f.read(12))
    ids = struct.unpack('<%di' % (n_ctx * n_chunk), f.read(4 * n_ctx * n_chunk))
with open(sys.argv[2], 'w') as f:
    f.write(' '.join(map(str, ids)) + '\n')
print('llama.cpp evaluated %d ids (%d chunks of %d), vocab %d' % (len(ids), n_chunk, n_ctx, n_vocab), file=sys.stderr)
EOF
n_ids=$(wc -w <"$out/ids.txt")

# 3. Does Tidal's own tokenizer give the same ids? (Information only: Tidal scores ids.txt.)
tok_check="not checked (tidal tokenize failed: $out/tidal-tokenize.log)"
if "$tidal" tokenize --model "$model/hf" --file "$out/text.txt" >"$out/tidal-ids.txt" 2>"$out/tidal-tokenize.log"; then
  tok_check=$(python3 - "$out/ids.txt" "$out/tidal-ids.txt" <<'EOF'
import sys
a = open(sys.argv[1]).read().split()
b = open(sys.argv[2]).read().split()[:len(a)]
diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
if diff is None and len(b) == len(a):
    print('identical to llama.cpp\'s on all %d ids' % len(a))
else:
    print('DIFFERENT from llama.cpp\'s (first difference at id #%s)' % (diff if diff is not None else len(b)))
EOF
)
fi

# 4. llama.cpp Q8_0 / Q4_0 (LLAMA_TYPES; and the base itself) against the stored reference.
llama_rows=()
runs=("${llama_types[@]}"); [ "$self_check" = 1 ] && runs=(base "${runs[@]}")
for q in "${runs[@]}"; do
  m=$model/model-$q.gguf; [ "$q" = base ] && m=$base
  "${llama[@]}" -m "$m" --kl-divergence-base "$out/base.kld" --kl-divergence >"$out/llama-$q.log" 2>&1 ||
    { echo "llama-perplexity --kl-divergence ($q) failed: $out/llama-$q.log" >&2; exit 1; }
  llama_rows+=("$q")
done

# 5. Tidal on the same ids and chunking.
excl=(); [ -n "${EXCLUDE:-}" ] && excl=(--exclude "$EXCLUDE")
nice -n "$nice_level" "$bench" --model "$model/hf" --token-ids "$out/ids.txt" --ctx "$ctx" --skip $((ctx / 2)) \
  --bos-chunks --threads "$threads" --formats "$(echo "$formats" | tr ' ' ',')" "${excl[@]}" \
  >"$out/tidal.md" 2>"$out/tidal.log" || { echo "bench_quant_accuracy failed: $out/tidal.log" >&2; exit 1; }
if [ -n "$lm_head_formats" ]; then
  nice -n "$nice_level" "$bench" --model "$model/hf" --token-ids "$out/ids.txt" --ctx "$ctx" --skip $((ctx / 2)) \
    --bos-chunks --threads "$threads" --formats "$(echo "$lm_head_formats" | tr ' ' ',')" --exclude embed_tokens \
    >"$out/tidal-lm_head.md" 2>"$out/tidal-lm_head.log" ||
    { echo "bench_quant_accuracy (lm_head quantized) failed: $out/tidal-lm_head.log" >&2; exit 1; }
fi

# 6. One table.
python3 - "$out" "$base" "${llama_rows[@]}" <<'EOF'
import math, os, re, sys
out, base, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
def field(text, label):
    m = re.search(re.escape(label) + r'\s*:\s*([-0-9.]+)', text)
    return float(m.group(1)) if m else float('nan')
tidal_runs = [(open(os.path.join(out, f)).read(), suffix) for f, suffix in
              (('tidal.md', ''), ('tidal-lm_head.md', ' +lm_head')) if os.path.exists(os.path.join(out, f))]
print('| side | weights | mean KL | top-1 agree | PPL(Q)/PPL(ref) | reference (its PPL) |')
print('|---|---|---|---|---|---|')
gguf = os.path.basename(base).replace('model-', '').replace('.gguf', '').upper()
for q in rows:
    t = open(os.path.join(out, 'llama-%s.log' % q)).read()
    name = gguf + ' (vs its own saved logits)' if q == 'base' else q.upper()
    print('| llama.cpp | %s | %.2e | %.4f | %.5f | llama.cpp %s (%.3f) |' % (
        name, field(t, 'Mean    KLD'), field(t, 'Same top p') / 100, field(t, 'Mean PPL(Q)/PPL(base)'), gguf,
        field(t, 'Mean PPL(base)')))
for tidal, suffix in tidal_runs:
    ref_ppl = float(re.search(r'PPL \(ref ([0-9.]+)\)', tidal).group(1))
    for line in tidal.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 7 and cells[0] != 'format' and not cells[0].startswith('---'):
            print('| Tidal | %s%s (%s MiB/token) | %s | %s | %.5f | Tidal %s (%.3f) |' % (
                cells[0], suffix, cells[1], cells[2], cells[3], float(cells[6]) / ref_ppl, gguf, ref_ppl))
EOF
echo >&2
echo "tokens: $n_ids ids through each model, $(( (ctx / 2 - 1) * n_ids / ctx )) positions scored;" \
  "Tidal's tokenizer: $tok_check; llama.cpp reference PPL $llama_ref_ppl" >&2
head -1 "$out/tidal.md" >&2
