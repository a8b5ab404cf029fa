// Drives `tidal serve` with the official OpenAI Node client. Prints one line per check and
// "N passed, M failed"; exits non-zero on any failure.
const OpenAI = require('openai');
const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
let passed = 0, failed = 0;
async function check(name, fn) {
  try { await fn(); console.log('ok   ' + name); passed++; }
  catch (e) { console.log('FAIL ' + name + ': ' + (e && e.stack || e)); failed++; }
}
function assert(c, msg) { if (!c) throw new Error(msg || 'assertion failed'); }

(async () => {
  await check('models.list', async () => {
    const m = await client.models.list();
    assert(m.data.length === 1 && m.data[0].id === 'tiny', JSON.stringify(m.data));
  });
  await check('completions + logprobs', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 7, temperature: 0, logprobs: 3, ignore_eos: true });
    assert(r.choices[0].logprobs.token_logprobs.length === 7);
    assert(r.choices[0].logprobs.top_logprobs[0] && Object.keys(r.choices[0].logprobs.top_logprobs[0]).length >= 1);
    assert(r.usage.completion_tokens === 7, JSON.stringify(r.usage));
  });
  await check('completions n > 1', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'abc', max_tokens: 4, n: 3, seed: 5 });
    assert(r.choices.length === 3);
  });
  await check('streaming equals whole', async () => {
    const whole = await client.completions.create({ model: 'tiny', prompt: 'stream me', max_tokens: 12, temperature: 0, ignore_eos: true });
    const stream = await client.completions.create({ model: 'tiny', prompt: 'stream me', max_tokens: 12, temperature: 0, ignore_eos: true, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    assert(text === whole.choices[0].text, JSON.stringify([text, whole.choices[0].text]));
  });
  await check('stop sequence', async () => {
    const whole = await client.completions.create({ model: 'tiny', prompt: 'xyz', max_tokens: 16, temperature: 0, ignore_eos: true });
    const t = whole.choices[0].text;
    assert(t.length > 4, 'text too short: ' + JSON.stringify(t));
    const stop = t.slice(2, 4);
    const r = await client.completions.create({ model: 'tiny', prompt: 'xyz', max_tokens: 16, temperature: 0, ignore_eos: true, stop: [stop] });
    assert(r.choices[0].text === t.slice(0, t.indexOf(stop)), JSON.stringify([r.choices[0].text, t, stop]));
    assert(r.choices[0].finish_reason === 'stop');
  });
  await check('chat + streaming chat', async () => {
    const msgs = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi!' }];
    const r = await client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2 });
    assert(r.choices[0].message.role === 'assistant');
    assert(r.choices[0].logprobs.content.length >= 1);
    const s = await client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 6, temperature: 0, stream: true });
    let text = '';
    for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
    assert(text === (r.choices[0].message.content ?? ''), JSON.stringify([text, r.choices[0].message.content]));
  });
  await check('tools accepted (random model may or may not call them)', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, max_tokens: 8 });
    assert(['stop', 'length', 'tool_calls'].includes(r.choices[0].finish_reason));
  });
  await check('errors map to client error classes', async () => {
    let e1; try { await client.completions.create({ model: 'tiny', prompt: 'x', temperature: -1 }); } catch (e) { e1 = e; }
    assert(e1 instanceof OpenAI.BadRequestError, 'expected BadRequestError, got ' + e1);
    let e2; try { await client.completions.create({ model: 'nope', prompt: 'x' }); } catch (e) { e2 = e; }
    assert(e2 instanceof OpenAI.NotFoundError, 'expected NotFoundError, got ' + e2);
    const bad = new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 });
    let e3; try { await bad.models.list(); } catch (e) { e3 = e; }
    assert(e3 instanceof OpenAI.AuthenticationError, 'expected AuthenticationError, got ' + e3);
  });
  await check('200 concurrent streams complete with the right token counts', async () => {
    const N = 200, T = 8;
    const runs = Array.from({ length: N }, async (_, i) => {
      const s = await client.completions.create({ model: 'tiny', prompt: [i % 500 + 1, 2, 3], max_tokens: T, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
      let usage = null;
      for await (const c of s) if (c.usage) usage = c.usage;
      assert(usage && usage.completion_tokens === T, 'stream ' + i + ' usage ' + JSON.stringify(usage));
    });
    await Promise.all(runs);
    const h = await fetch(baseURL.replace('/v1', '/health'));
    assert(h.status === 200);
  });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
