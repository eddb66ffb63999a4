// Load test of lathe-serve with OpenAI's official Node.js client (npm
// `openai`, fetched by scripts/fetch-openai-client.sh), over loopback:
//   1. each prompt's greedy answer, requested alone (the reference);
//   2. every prompt again, streamed, all at once (completions and chat):
//      each answer must equal its solo one (no failed or mixed-up
//      responses), and its usage must match; time to first token and
//      inter-token latency are reported as p50 / p99;
//   3. malformed JSON, an oversize body, a prompt longer than the context,
//      an unknown field and an unknown model get their 4xx, a client that
//      hangs up mid-stream frees its sequence, and the server keeps serving.
// Bounded: --requests requests, and the whole run fails after --timeout s.
// Exit 77 (skipped under ctest) when the model or the client is missing.
//
// With --speculate SHAPE (or default) the server speculates (lathe-serve
// --speculate=SHAPE): the answers must be the same.
//
// node openai-load.mjs --serve BIN --compile BIN --model-dir DIR --client DIR
//                      [--requests N] [--max-tokens N] [--timeout S] [--speculate SHAPE]
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const requests = Number(args.requests ?? 48);
const maxTokens = Number(args['max-tokens'] ?? 48);
const timeoutSeconds = Number(args.timeout ?? 300);
const modelFile = join(args['model-dir'] ?? '', 'stories15M.bin');
const clientEntry = join(args.client ?? '', 'index.mjs');
if (!existsSync(modelFile) || !existsSync(clientEntry)) {
  console.log(`skipped: needs ${modelFile} (make model) and ${clientEntry} (scripts/fetch-openai-client.sh)`);
  process.exit(77);
}
const { default: OpenAI } = await import(pathToFileURL(clientEntry).href);

const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };
const work = mkdtempSync(join(tmpdir(), 'lathe-load-'));
let server;
const deadline = setTimeout(() => {
  console.error(`FAILED: the load test ran past ${timeoutSeconds} s`);
  server?.kill('SIGKILL');
  process.exit(1);
}, timeoutSeconds * 1000);

// The artifact, and the server on a free port.
const artifact = join(work, 'stories15M.lathe');
execFileSync(args.compile, [modelFile, '--tokenizer', join(args['model-dir'], 'tokenizer.bin'), '-o', artifact]);
server = spawn(args.serve, [artifact, '--port', '0', '--threads', '2', '--max-sequences', '8',
  '--max-waiting', String(requests + 8), '--max-body-bytes', '65536',
  ...(args.speculate ? [`--speculate=${args.speculate}`] : [])], { stdio: ['ignore', 'inherit', 'pipe'] });
let serverLog = '';
const port = await new Promise((resolve, reject) => {
  server.stderr.on('data', (d) => {
    serverLog += d;
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(serverLog);
    if (m) resolve(Number(m[1]));
  });
  server.on('exit', (code) => reject(new Error(`lathe-serve exited (${code}): ${serverLog}`)));
});
const base = `http://127.0.0.1:${port}`;
for (;;) {
  const r = await fetch(`${base}/health`);
  if (r.status === 200) break;
  check(r.status === 503, `/health while loading answered ${r.status}`);
  await new Promise((s) => setTimeout(s, 20));
}
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120000 });
const model = (await client.models.list()).data[0].id;

// Prompts of different lengths, half completions and half chat.
const subjects = ['a little dog', 'a red ball', 'a brave girl named Lily', 'an old tree', 'a tiny fish',
  'a big bear', 'a shy cat', 'a happy boy named Tom', 'a blue bird', 'a small boat', 'a kind king', 'a lost toy'];
const jobs = [];
for (let i = 0; jobs.length < requests; ++i) {
  const text = `Once upon a time, there was ${subjects[i % subjects.length]}` + (i >= subjects.length ? ' who liked to play' : '');
  jobs.push({ chat: i % 2 === 1, text });
}
const params = (job, stream) => ({
  model, max_tokens: maxTokens, temperature: 0, stream,
  ...(stream ? { stream_options: { include_usage: true } } : {}),
  ...(job.chat ? { messages: [{ role: 'user', content: job.text }] } : { prompt: job.text }),
});
const create = (job, stream) =>
  job.chat ? client.chat.completions.create(params(job, stream)) : client.completions.create(params(job, stream));

// 1. The solo answers, one request at a time.
const soloStarted = performance.now();
for (const job of jobs) {
  const r = await create(job, false);
  job.expected = job.chat ? r.choices[0].message.content : r.choices[0].text;
  job.usage = r.usage;
  check(job.expected.length > 0, `empty solo answer to "${job.text}"`);
}
const soloSeconds = (performance.now() - soloStarted) / 1000;

// 2. All of them at once, streamed.
const ttft = [], itl = [];
const started = performance.now();
await Promise.all(jobs.map(async (job, i) => {
  try {
    const t0 = performance.now();
    let last = null, text = '', usage = null, finish = null;
    for await (const chunk of await create(job, true)) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      const piece = job.chat ? (choice.delta.content ?? '') : choice.text;
      if (piece) {
        const now = performance.now();
        if (last === null) ttft.push(now - t0); else itl.push(now - last);
        last = now;
        text += piece;
      }
      finish = choice.finish_reason ?? finish;
    }
    check(text === job.expected, `request ${i} ("${job.text}") streamed ${JSON.stringify(text)} alone ${JSON.stringify(job.expected)}`);
    check(usage && usage.completion_tokens === job.usage.completion_tokens &&
          usage.prompt_tokens === job.usage.prompt_tokens, `request ${i}: usage ${JSON.stringify(usage)} vs ${JSON.stringify(job.usage)}`);
    check(finish === 'stop' || finish === 'length', `request ${i}: finish_reason ${finish}`);
  } catch (e) {
    check(false, `request ${i} failed: ${e}`);
  }
}));
const seconds = (performance.now() - started) / 1000;

// 3. Bad requests get 4xx; then the server still serves.
const post = (path, body, headers = { 'Content-Type': 'application/json' }) =>
  fetch(`${base}${path}`, { method: 'POST', body, headers });
const expectStatus = async (what, response, status) => {
  const r = await response;
  const body = await r.json().catch(() => null);
  check(r.status === status && body?.error?.message, `${what}: ${r.status} ${JSON.stringify(body)}`);
};
await expectStatus('malformed JSON', post('/v1/completions', '{"model": "x", "prompt": '), 400);
await expectStatus('oversize body', post('/v1/completions', JSON.stringify({ model, prompt: 'a'.repeat(70000) })), 413);
await expectStatus('prompt over the context', post('/v1/completions', JSON.stringify({ model, prompt: ' dog'.repeat(400) })), 400);
await expectStatus('unknown model', post('/v1/completions', JSON.stringify({ model: 'gpt-4', prompt: 'Hi' })), 404);
try {
  await client.completions.create({ model, prompt: 'Hi', max_tokens: 2, frobnicate: true });
  check(false, 'an unknown field was accepted');
} catch (e) {
  check(e.status === 400 && /frobnicate/.test(e.message), `unknown field: ${e}`);
}
// A client that hangs up after its first chunk.
const abort = new AbortController();
try {
  const stream = await client.completions.create({ model, prompt: 'The sun', max_tokens: 200, temperature: 1, seed: 3, stream: true },
    { signal: abort.signal });
  for await (const _ of stream) { abort.abort(); }
} catch { /* aborted */ }
const metric = async (name) => Number(new RegExp(`\\n${name} ([0-9.e+-]+)\\n`).exec(await (await fetch(`${base}/metrics`)).text())?.[1]);
for (let waited = 0; (await metric('lathe_requests_running')) !== 0 && waited < 5000; waited += 20)
  await new Promise((s) => setTimeout(s, 20));
check((await metric('lathe_requests_running')) === 0, 'the hung-up request still runs');
check((await metric('lathe_kv_cache_blocks_used')) === 0, 'the hung-up request still holds KV blocks');
const after = await create(jobs[0], false);
check((after.choices[0].text ?? after.choices[0].message?.content) === jobs[0].expected, 'the server answers differently after the errors');

// The report.
const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };
const tokens = jobs.reduce((n, j) => n + j.usage.completion_tokens, 0);
console.log(`lathe-serve load test: ${jobs.length} concurrent streamed requests (${jobs.filter((j) => j.chat).length} chat), ` +
  `${maxTokens} max tokens each, ${tokens} tokens in ${seconds.toFixed(2)} s (${(tokens / seconds).toFixed(0)} tokens/s)`);
console.log(`one request at a time: ${tokens} tokens in ${soloSeconds.toFixed(2)} s (${(tokens / soloSeconds).toFixed(0)} tokens/s)` +
  (args.speculate ? `, speculating over ${args.speculate} trees` : ''));
console.log(`time to first token: p50 ${pct(ttft, 0.5).toFixed(1)} ms, p99 ${pct(ttft, 0.99).toFixed(1)} ms`);
console.log(`inter-token latency: p50 ${pct(itl, 0.5).toFixed(2)} ms, p99 ${pct(itl, 0.99).toFixed(2)} ms`);

server.kill('SIGTERM');
const code = await new Promise((resolve) => server.on('exit', resolve));
check(code === 0, `lathe-serve exited with ${code} on SIGTERM`);
clearTimeout(deadline);
rmSync(work, { recursive: true, force: true });
if (failures.length) {
  console.error(`FAILED (${failures.length}):\n  ` + failures.slice(0, 20).join('\n  '));
  process.exit(1);
}
console.log('PASSED');
