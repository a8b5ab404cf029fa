// Reference ids from Hugging Face tokenizers (Rust, via the @anush008/tokenizers Node binding).
// usage: NODE_PATH=<dir>/node_modules node reference_ids.js TOKENIZER_JSON CORPUS_JSON > OUT_JSON
// CORPUS_JSON is an array of strings; OUT_JSON is an array of {ids, text, text_skip}: the ids of
// encode(s, add_special_tokens=true), and decode(ids) without and with skip_special_tokens.
const fs = require('fs');
const { Tokenizer } = require('@anush008/tokenizers');

(async () => {
  const tokenizer = Tokenizer.fromFile(process.argv[2]);
  const corpus = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
  const out = [];
  for (const s of corpus) {
    const ids = (await tokenizer.encode(s, null, { addSpecialTokens: true })).getIds();
    out.push({
      ids,
      text: await tokenizer.decode(ids, false),
      text_skip: await tokenizer.decode(ids, true),
    });
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
