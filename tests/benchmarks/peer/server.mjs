// The peer gateway: the same job as deepcall-gateway, written the way a competent
// Node developer would with Apollo Server 5 and @apollo/datasource-rest.
//
// Same schema (the repository's own schema.graphql, read at start-up), same credential headers forwarded in the upstream body, same
// filter mapping (from/to -> dtGte/dtLte, agentIds -> agtIds sorted and
// de-duplicated, campaignId -> campId, statuses -> st, extra merged), same
// per-process cache of successes (15 s, keyed by an HMAC of the credential and
// the canonical filter) and sharing of identical calls in flight (counts.mjs),
// same upstream error codes mapped to the same extensions.code.
//
// Production mode (NODE_ENV=production: no introspection, no stack traces), landing
// page off, Apollo's defaults otherwise (CSRF prevention, document cache, ...).
//
// Usage: UPSTREAM_URL=http://127.0.0.1:9000 node server.mjs --port 4000 [--host 127.0.0.1]
// Env: UPSTREAM_URL (required), UPSTREAM_TZ (Asia/Kolkata), CACHE_TTL_MS (15000),
//      CACHE_MAX (10000), UPSTREAM_TIMEOUT_MS (5000).

import { readFileSync } from 'node:fs';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { startStandaloneServer } from '@apollo/server/standalone';
import { RESTDataSource } from '@apollo/datasource-rest';
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
  console.error('server.mjs: set UPSTREAM_URL to the upstream base URL');
  process.exit(2);
}
const UPSTREAM_TIMEOUT_MS = Number(process.env.UPSTREAM_TIMEOUT_MS ?? 5000);
const counts = new CountCache({
  max: Number(process.env.CACHE_MAX ?? 10_000),
  ttlMs: Number(process.env.CACHE_TTL_MS ?? 15_000),
});

// ---------------------------------------------------------------- data source

class CallReportAPI extends RESTDataSource {
  baseURL = UPSTREAM_URL.replace(/\/?$/, '/');

  // RESTDataSource keys its HTTP cache on "METHOD url": a POST must key on its body too.
  cacheKeyFor(url, request) {
    return `${request.method ?? 'GET'} ${url} ${typeof request.body === 'string' ? request.body : ''}`;
  }

  /** The count for `credential` asking `filter`: cached per process, shared while in flight. */
  count(credential, filter, priorityFilter) {
    const key = counts.key(credential, canonicalJson(filter), priorityFilter);
    return counts.getOrFetch(key, () => this.reportCount(credential, filter, priorityFilter));
  }

  async reportCount(credential, filter, priorityFilter) {
    const body = credential.ssid ? { ssid: credential.ssid } : { userId: credential.userId, token: credential.token };
    if (Object.keys(filter).length) body.filter = filter;
    if (priorityFilter !== undefined) body.priorityFilter = priorityFilter;
    let answer;
    try {
      answer = await this.post('api/v2/CallReport/reportCount', {
        body,
        signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
      });
    } catch (error) {
      if (error instanceof GraphQLError) throw fail(`DeepCall answered with an HTTP error`, 'UPSTREAM_BAD_RESPONSE');
      if (error?.name === 'AbortError' || error?.name === 'TimeoutError') {
        throw fail('DeepCall did not answer in time', 'UPSTREAM_TIMEOUT', { retryable: true });
      }
      throw fail('DeepCall could not be reached', 'UPSTREAM_UNAVAILABLE', { retryable: true });
    }
    return parseReportCount(answer);
  }
}

// ---------------------------------------------------------------- server

const typeDefs = readFileSync(new URL('../../../schema.graphql', import.meta.url), 'utf8');

const resolvers = {
  DateTime,
  JSON: JSONScalar,
  Query: {
    callCount(_parent, { filter, priorityFilter }, { credential, dataSources }) {
      if (credential instanceof GraphQLError) throw credential;
      const upstream = upstreamFilter(filter);
      return dataSources.callReport.count(credential, upstream, checkPriorityFilter(priorityFilter));
    },
  },
};

const server = new ApolloServer({
  typeDefs,
  resolvers,
  plugins: [ApolloServerPluginLandingPageDisabled()],
});

const { url } = await startStandaloneServer(server, {
  listen: { host: option('--host', '127.0.0.1'), port: Number(option('--port', '4000')) },
  context: async ({ req }) => ({
    credential: credentialFrom(req.headers),
    dataSources: { callReport: new CallReportAPI({ cache: server.cache }) },
  }),
});
console.log(`peer (Apollo Server 5) listening on ${url}`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.stop().then(() => process.exit(0)));
}
