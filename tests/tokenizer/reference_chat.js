// Reference chat-template renders from @huggingface/jinja.
// usage: NODE_PATH=<dir>/node_modules node reference_chat.js CASES_JSON > OUT_JSON
// CASES_JSON: [{"template": "...", "context": {...}}]; OUT_JSON: [{"text": "..."} | {"error": "..."}]
// in the same order. The context is passed to Template.render as is.
const fs = require('fs');
const { Template } = require('@huggingface/jinja');

const cases = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const compiled = new Map();
const out = cases.map(({ template, context }) => {
  try {
    if (!compiled.has(template)) compiled.set(template, new Template(template));
    return { text: compiled.get(template).render(context) };
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(out));
