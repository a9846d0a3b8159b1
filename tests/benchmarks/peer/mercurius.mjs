// The fastest Node peer we could set up for the same job: Mercurius 16 on Fastify,
// with graphql-jit compiling each document after its first use, and an undici pool
// to the upstream.
//
// The same schema (the repository's own schema.graphql), credential headers, filter
// mapping, checks and error codes as the Apollo peer (mapping.mjs), the same count
// cache and sharing of calls in flight (counts.mjs). Mercurius keeps parsed and
// validated documents in its own LRU (its default, 1,024 entries); graphql-jit helps
// a document it has seen before, not a new one.
//
// Usage: UPSTREAM_URL=http://127.0.0.1:9000 node mercurius.mjs --port 4001 [--host 127.0.0.1]
// Env: UPSTREAM_URL (required), UPSTREAM_TZ (Asia/Kolkata), CACHE_TTL_MS (15000),
//      CACHE_MAX (10000), UPSTREAM_TIMEOUT_MS (5000), UPSTREAM_CONNECTIONS (100).

import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import mercurius from 'mercurius';
import { Pool } from 'undici';
import { GraphQLError } from 'graphql';
import { CountCache, canonicalJson } from './counts.mjs';
import {
  DateTime,
  JSONScalar,
  checkPriorityFilter,
  credentialFrom,
  fail,
  parseReportCount,
  upstreamFilter,
} from './mapping.mjs';

const args = process.argv.slice(2);
function option(name, fallback) {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
}

const UPSTREAM_URL = process.env.UPSTREAM_URL;
if (!UPSTREAM_URL) {
  console.error('mercurius.mjs: set UPSTREAM_URL to the upstream base URL');
  process.exit(2);
}
const UPSTREAM_TIMEOUT_MS = Number(process.env.UPSTREAM_TIMEOUT_MS ?? 5000);
const upstream = new URL(UPSTREAM_URL);
const REPORT_COUNT = `${upstream.pathname.replace(/\/$/, '')}/api/v2/CallReport/reportCount`;
const pool = new Pool(upstream.origin, {
  connections: Number(process.env.UPSTREAM_CONNECTIONS ?? 100),
  keepAliveTimeout: 60_000,
});
const counts = new CountCache({
  max: Number(process.env.CACHE_MAX ?? 10_000),
  ttlMs: Number(process.env.CACHE_TTL_MS ?? 15_000),
});

async function reportCount(credential, filter, priorityFilter) {
  const body = credential.ssid ? { ssid: credential.ssid } : { userId: credential.userId, token: credential.token };
  if (Object.keys(filter).length) body.filter = filter;
  if (priorityFilter !== undefined) body.priorityFilter = priorityFilter;
  let answer;
  try {
    const response = await pool.request({
      path: REPORT_COUNT,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      headersTimeout: UPSTREAM_TIMEOUT_MS,
      bodyTimeout: UPSTREAM_TIMEOUT_MS,
    });
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw fail('DeepCall answered with an HTTP error', 'UPSTREAM_BAD_RESPONSE');
    }
    answer = await response.body.json();
  } catch (error) {
    if (error instanceof GraphQLError) throw error;
    if (error instanceof SyntaxError) throw fail("DeepCall's answer is not JSON", 'UPSTREAM_BAD_RESPONSE');
    if (error?.code === 'UND_ERR_HEADERS_TIMEOUT' || error?.code === 'UND_ERR_BODY_TIMEOUT') {
      throw fail('DeepCall did not answer in time', 'UPSTREAM_TIMEOUT', { retryable: true });
    }
    throw fail('DeepCall could not be reached', 'UPSTREAM_UNAVAILABLE', { retryable: true });
  }
  return parseReportCount(answer);
}

const schema = readFileSync(new URL('../../../schema.graphql', import.meta.url), 'utf8');

const resolvers = {
  DateTime,
  JSON: JSONScalar,
  Query: {
    callCount(_parent, { filter, priorityFilter }, { credential }) {
      if (credential instanceof GraphQLError) throw credential;
      const upstreamFilterValue = upstreamFilter(filter);
      const checked = checkPriorityFilter(priorityFilter);
      const key = counts.key(credential, canonicalJson(upstreamFilterValue), checked);
      return counts.getOrFetch(key, () => reportCount(credential, upstreamFilterValue, checked));
    },
  },
};

const app = Fastify({ logger: false });
app.register(mercurius, {
  schema,
  resolvers,
  jit: 1, // compile a document with graphql-jit once it has been run once
  graphiql: false,
  context: (request) => ({ credential: credentialFrom(request.headers) }),
});

await app.listen({ host: option('--host', '127.0.0.1'), port: Number(option('--port', '4001')) });
console.log(`peer (Mercurius 16 + graphql-jit + undici) listening on port ${option('--port', '4001')}`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => app.close().then(() => pool.close()).then(() => process.exit(0)));
}
