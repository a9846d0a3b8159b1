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
import { GraphQLError, GraphQLScalarType, Kind, valueFromASTUntyped } from 'graphql';
import { CountCache, canonicalJson } from './counts.mjs';

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
const UPSTREAM_TZ = process.env.UPSTREAM_TZ ?? 'Asia/Kolkata';
const UPSTREAM_TIMEOUT_MS = Number(process.env.UPSTREAM_TIMEOUT_MS ?? 5000);
const counts = new CountCache({
  max: Number(process.env.CACHE_MAX ?? 10_000),
  ttlMs: Number(process.env.CACHE_TTL_MS ?? 15_000),
});

// ---------------------------------------------------------------- errors

function fail(message, code, { retryable = false, upstreamCode } = {}) {
  const extensions = { code, retryable };
  if (upstreamCode !== undefined) extensions.upstreamCode = upstreamCode;
  return new GraphQLError(message, { extensions });
}

const badInput = (message) => fail(message, 'BAD_USER_INPUT');

const UPSTREAM_CODES = {
  1000: ['DeepCall refused the parameters', 'BAD_USER_INPUT', false],
  1047: ['DeepCall refused the request data', 'BAD_USER_INPUT', false],
  1014: ['DeepCall did not accept the credentials', 'UNAUTHENTICATED', false],
  1015: ['These credentials may not list call logs', 'FORBIDDEN', false],
  1009: ['DeepCall failed', 'UPSTREAM_ERROR', true],
  1010: ['DeepCall is unavailable', 'UPSTREAM_UNAVAILABLE', true],
};

function parseReportCount(answer) {
  if (answer !== null && typeof answer === 'object') {
    if (answer.status === 'success' && Number.isInteger(answer.cnt) && answer.cnt >= 0) {
      if (answer.cnt > 2 ** 31 - 1) throw fail("DeepCall's count does not fit a GraphQL Int", 'UPSTREAM_BAD_RESPONSE');
      return answer.cnt;
    }
    if (answer.status === 'error' && Number.isInteger(answer.code)) {
      const [message, code, retryable] = UPSTREAM_CODES[answer.code] ?? ['DeepCall failed', 'UPSTREAM_ERROR', true];
      throw fail(message, code, { retryable, upstreamCode: answer.code });
    }
  }
  throw fail("DeepCall's answer had an unexpected shape", 'UPSTREAM_BAD_RESPONSE');
}

// ---------------------------------------------------------------- scalars

const DATETIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/;
const zoneFormat = new Intl.DateTimeFormat('en-US', {
  timeZone: UPSTREAM_TZ, hourCycle: 'h23',
  year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

// A DateTime is kept as {wall: ms of the naive wall-clock time in the upstream zone, fractional}.
function parseDateTime(value) {
  const m = typeof value === 'string' && value.length <= 64 ? DATETIME.exec(value) : null;
  if (!m) throw badInput(`DateTime must be ISO 8601 (2025-11-20T09:00:00+05:30) or 'YYYY-MM-DD HH:MM:SS'`);
  const [, y, mo, d, h, mi, s = '0', frac = '', offset] = m;
  let wall = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  if (Number.isNaN(wall)) throw badInput('DateTime is not a valid date');
  if (offset !== undefined) {
    let offsetMs = 0;
    if (offset !== 'Z') {
      const sign = offset[0] === '-' ? -1 : 1;
      const digits = offset.slice(1).replace(':', '');
      offsetMs = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0)) * 60_000;
    }
    const parts = Object.fromEntries(zoneFormat.formatToParts(new Date(wall - offsetMs)).map((p) => [p.type, p.value]));
    wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  }
  return { wall, fractional: /[1-9]/.test(frac) };
}

function upstreamTime({ wall, fractional }, roundUp) {
  const date = new Date(fractional && roundUp ? wall + 1000 : wall);
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

const DateTime = new GraphQLScalarType({
  name: 'DateTime',
  serialize: (value) => value,
  parseValue: parseDateTime,
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw badInput('DateTime must be a string');
    return parseDateTime(ast.value);
  },
});

const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast, variables) => valueFromASTUntyped(ast, variables),
});

// ---------------------------------------------------------------- mapping

const MODELLED_KEYS = ['dtGte', 'dtLte', 'agtIds', 'campId', 'st'];
const given = (value) => value !== undefined && value !== null;

function upstreamFilter(filter) {
  if (!given(filter)) return {};
  const out = {};
  if (given(filter.extra)) {
    const extra = filter.extra;
    if (typeof extra !== 'object' || Array.isArray(extra)) {
      throw badInput('filter.extra must be a JSON object of upstream filter keys');
    }
    const clashes = MODELLED_KEYS.filter((k) => k in extra);
    if (clashes.length) throw badInput(`filter.extra must not set ${clashes.join(', ')}: use the typed filter fields`);
    if (JSON.stringify(extra).length > 4096) throw badInput('filter.extra is longer than 4096 characters');
    Object.assign(out, extra);
  }
  if (given(filter.from)) out.dtGte = upstreamTime(filter.from, true);
  if (given(filter.to)) out.dtLte = upstreamTime(filter.to, false);
  if (given(filter.from) && given(filter.to) && filter.from.wall > filter.to.wall) {
    throw badInput('filter.from must not be after filter.to');
  }
  if (given(filter.agentIds)) out.agtIds = [...new Set(filter.agentIds)].sort();
  if (given(filter.campaignId)) out.campId = filter.campaignId;
  if (given(filter.statuses)) out.st = [...new Set(filter.statuses)].sort();
  return out;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function checkPriorityFilter(value) {
  if (!given(value)) return undefined;
  if (value.length > 8192 || !BASE64.test(value)) throw badInput('priorityFilter must be base64');
  return value;
}

// ---------------------------------------------------------------- credentials

function credentialFrom(headers) {
  const ssid = (headers['x-deepcall-ssid'] ?? '').trim();
  const userId = (headers['x-deepcall-user-id'] ?? '').trim();
  const token = (headers['x-deepcall-token'] ?? '').trim();
  if (!ssid && !userId && !token) {
    return fail('No credentials: send X-DeepCall-SSID, or X-DeepCall-User-Id with X-DeepCall-Token', 'UNAUTHENTICATED');
  }
  if (ssid && (userId || token)) return badInput('Send either X-DeepCall-SSID or X-DeepCall-User-Id with X-DeepCall-Token, not both');
  if (!ssid && !(userId && token)) return badInput('X-DeepCall-User-Id and X-DeepCall-Token must be sent together');
  return ssid ? { ssid } : { userId, token };
}

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
