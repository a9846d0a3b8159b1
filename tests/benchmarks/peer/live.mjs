// The live peers: a subscription that makes a query live, done the way these servers'
// users do it: each subscriber's own resolver polls the upstream every `every` seconds.
//
//   yoga:      GraphQL Yoga 5 on node:http, GraphQL over SSE (its default for subscriptions)
//   mercurius: Fastify 5 + Mercurius 16, subscriptions over the WebSocket (graphql-transport-ws)
//
// The same document as ours: subscription { watch(every: 5) { n: callCount(filter: {campaignId: N}) } }
// Each event executes callCount afresh (a call to the stub per subscriber per interval); the
// credential comes from X-DeepCall-SSID (SSE) or connection_init's payload (WebSocket).
//
// Usage: UPSTREAM_URL=http://127.0.0.1:9000 node live.mjs --kind yoga|mercurius --port 4010

import http from 'node:http';
import Fastify from 'fastify';
import mercurius from 'mercurius';
import { createSchema, createYoga } from 'graphql-yoga';
import { Pool } from 'undici';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};
const kind = option('--kind', 'yoga');
const port = Number(option('--port', '4010'));
const upstream = new URL(process.env.UPSTREAM_URL);
const pool = new Pool(upstream.origin, { connections: 100, keepAliveTimeout: 60_000 });

const typeDefs = /* GraphQL */ `
  input CallFilterInput { campaignId: Int }
  type Query { callCount(filter: CallFilterInput): Int }
  type Subscription { watch(every: Int = 30): Query! }
`;

async function reportCount(ssid, filter) {
  const body = { ssid, filter: filter?.campaignId === undefined ? {} : { campId: filter.campaignId } };
  const answer = await pool.request({
    method: 'POST',
    path: '/api/v2/CallReport/reportCount',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const parsed = await answer.body.json();
  if (parsed.status !== 'success') throw new Error(`upstream ${parsed.code}`);
  return parsed.cnt;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function* ticks(every) {
  // The root of each event; callCount under it asks the upstream again.
  for (;;) {
    yield { watch: {} };
    await sleep(every * 1000);
  }
}

const ssidOf = (context) =>
  context.request?.headers.get?.('x-deepcall-ssid') ??
  context.reply?.request?.headers['x-deepcall-ssid'] ??
  context._connectionInit?.['X-DeepCall-SSID'] ??
  context.ssid ??
  'bench-ssid';

const resolvers = {
  Query: { callCount: (_root, { filter }, context) => reportCount(ssidOf(context), filter) },
  Subscription: { watch: { subscribe: (_root, { every }) => ticks(every) } },
};

if (kind === 'yoga') {
  const yoga = createYoga({ schema: createSchema({ typeDefs, resolvers }), logging: false, landingPage: false });
  http.createServer(yoga).listen(port, '127.0.0.1', () => console.log(`live yoga listening on ${port}`));
} else {
  const app = Fastify({ logger: false });
  app.register(mercurius, {
    schema: typeDefs,
    resolvers,
    subscription: {
      onConnect: ({ payload }) => ({ ssid: payload?.['X-DeepCall-SSID'] ?? 'bench-ssid' }),
    },
  });
  await app.listen({ port, host: '127.0.0.1' });
  console.log(`live mercurius listening on ${port}`);
}

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
