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
  await check('errors map to client error classes and name the field (param)', async () => {
    const fail = async (fn) => { try { await fn(); } catch (e) { return e; } throw new Error('request succeeded'); };
    const expectErr = (e, cls, status, param) => {
      assert(e instanceof cls, `expected ${cls.name}, got ${e && e.constructor && e.constructor.name}: ${e}`);
      assert(e.status === status, `status ${e.status}, want ${status}`);
      assert(e.param === param, `param ${JSON.stringify(e.param)}, want ${JSON.stringify(param)} (${e.message})`);
      assert(typeof e.type === 'string' && e.type.length > 0, 'no error type');
    };
    expectErr(await fail(() => client.completions.create({ model: 'tiny', prompt: 'x', temperature: -1 })),
              OpenAI.BadRequestError, 400, 'temperature');
    expectErr(await fail(() => client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 0 })),
              OpenAI.BadRequestError, 400, 'max_tokens');
    expectErr(await fail(() => client.completions.create({ model: 'tiny', prompt: [1, 2, 100000] })),
              OpenAI.BadRequestError, 400, 'prompt[2]');
    expectErr(await fail(() => client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 5 }] })),
              OpenAI.BadRequestError, 400, 'messages[1].content');
    expectErr(await fail(() => client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'a' }], top_logprobs: 2 })),
              OpenAI.BadRequestError, 400, 'top_logprobs');
    // A streaming request that is invalid fails before any event, with the same class.
    expectErr(await fail(async () => { for await (const _ of await client.completions.create({ model: 'tiny', prompt: 'x', n: 0, stream: true })) {} }),
              OpenAI.BadRequestError, 400, 'n');
    const e404 = await fail(() => client.completions.create({ model: 'nope', prompt: 'x' }));
    expectErr(e404, OpenAI.NotFoundError, 404, 'model');
    const bad = new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 });
    const e401 = await fail(() => bad.models.list());
    assert(e401 instanceof OpenAI.AuthenticationError, 'expected AuthenticationError, got ' + e401);
    assert(e401.type === 'authentication_error', 'type ' + e401.type);
    const e413 = await fail(() => client.completions.create({ model: 'tiny', prompt: 'x'.repeat(9 << 20) }));
    assert(e413 instanceof OpenAI.APIError && e413.status === 413, 'expected a 413 APIError, got ' + e413);
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
