// Many live subscribers in one process, for the live scenarios of tests/benchmarks.
//
//   node live_load.mjs --url http://127.0.0.1:PORT/graphql --transport ws|sse \
//                      --streams 5000 --questions 100 --every 5
//
// Stream i watches campaign 1 + i % questions, over its own connection (graphql-ws with
// `ws`, one socket each; graphql-sse in distinct connections mode), opened 100 at a time.
// Prints {"ready": n, "failed": f} once every stream has its first value (or 90 s passed).
// Then each line "bump" on stdin starts a watch: when every stream's value has changed
// (or 30 s passed) it prints {"arrivals": [[campaign, epoch ms], ...], "missing": m}.
import { createClient as createSse } from 'graphql-sse';
import { createClient as createWs } from 'graphql-ws';
import readline from 'node:readline';
import WebSocket from 'ws';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};
const url = option('--url');
const transport = option('--transport', 'ws');
const streams = Number(option('--streams', '1000'));
const questions = Number(option('--questions', '100'));
const every = Number(option('--every', '5'));
const headers = { 'X-DeepCall-SSID': 'bench-ssid' };

const values = new Array(streams).fill(undefined);
const baseline = new Array(streams).fill(undefined);
let watching = null; // {arrivals, left, timer}
let ready = 0;
let failed = 0;

const document = (campaign) =>
  `subscription Board { watch(every: ${every}) { n: callCount(filter: {campaignId: ${campaign}}) } }`;

function received(index, campaign, result) {
  const value = result?.data?.watch?.n;
  if (value === undefined || value === null) return;
  if (values[index] === undefined) {
    values[index] = value;
    if (++ready === streams) report();
    return;
  }
  values[index] = value;
  if (watching && watching.arrivals[index] === undefined && value !== baseline[index]) {
    watching.arrivals[index] = [campaign, Date.now()];
    if (--watching.left === 0) finish();
  }
}

function sink(index, campaign) {
  return {
    next: (result) => received(index, campaign, result),
    error: () => {
      failed++;
      if (ready + failed === streams) report();
    },
    complete: () => {},
  };
}

const sse = transport === 'sse' ? createSse({ url, headers, retryAttempts: 0 }) : null;
function open(index) {
  const campaign = 1 + (index % questions);
  const request = { query: document(campaign) };
  if (sse) {
    sse.subscribe(request, sink(index, campaign));
  } else {
    const client = createWs({
      url: url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: headers,
      retryAttempts: 0,
    });
    client.subscribe(request, sink(index, campaign));
  }
}

let reported = false;
function report() {
  if (reported) return;
  reported = true;
  console.log(JSON.stringify({ ready, failed }));
}
setTimeout(report, 90_000).unref();

for (let index = 0; index < streams; index += 100) {
  for (let n = index; n < Math.min(streams, index + 100); n++) open(n);
  await new Promise((resolve) => setTimeout(resolve, 50));
}

function finish() {
  if (!watching) return;
  clearTimeout(watching.timer);
  const arrivals = watching.arrivals.filter(Boolean);
  console.log(JSON.stringify({ arrivals, missing: streams - arrivals.length }));
  watching = null;
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'bump') return;
  for (let i = 0; i < streams; i++) baseline[i] = values[i];
  watching = { arrivals: new Array(streams), left: streams - failed, timer: setTimeout(finish, 30_000) };
});
