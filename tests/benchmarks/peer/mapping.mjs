// What both Node peers share, so that they do the gateway's job identically: the
// error shape and the upstream's codes, the DateTime and JSON scalars, the filter
// mapping and its checks, and the credential headers.
//
// Env: UPSTREAM_TZ (Asia/Kolkata).

import { GraphQLError, GraphQLScalarType, Kind, valueFromASTUntyped } from 'graphql';

const UPSTREAM_TZ = process.env.UPSTREAM_TZ ?? 'Asia/Kolkata';

// ---------------------------------------------------------------- errors

export function fail(message, code, { retryable = false, upstreamCode } = {}) {
  const extensions = { code, retryable };
  if (upstreamCode !== undefined) extensions.upstreamCode = upstreamCode;
  return new GraphQLError(message, { extensions });
}

export const badInput = (message) => fail(message, 'BAD_USER_INPUT');

const UPSTREAM_CODES = {
  1000: ['DeepCall refused the parameters', 'BAD_USER_INPUT', false],
  1047: ['DeepCall refused the request data', 'BAD_USER_INPUT', false],
  1014: ['DeepCall did not accept the credentials', 'UNAUTHENTICATED', false],
  1015: ['These credentials may not list call logs', 'FORBIDDEN', false],
  1009: ['DeepCall failed', 'UPSTREAM_ERROR', true],
  1010: ['DeepCall is unavailable', 'UPSTREAM_UNAVAILABLE', true],
};

export function parseReportCount(answer) {
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

export const DateTime = new GraphQLScalarType({
  name: 'DateTime',
  serialize: (value) => value,
  parseValue: parseDateTime,
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw badInput('DateTime must be a string');
    return parseDateTime(ast.value);
  },
});

export const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast, variables) => valueFromASTUntyped(ast, variables),
});

// ---------------------------------------------------------------- mapping

const MODELLED_KEYS = ['dtGte', 'dtLte', 'agtIds', 'campId', 'st'];
const given = (value) => value !== undefined && value !== null;

export function upstreamFilter(filter) {
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

export function checkPriorityFilter(value) {
  if (!given(value)) return undefined;
  if (value.length > 8192 || !BASE64.test(value)) throw badInput('priorityFilter must be base64');
  return value;
}

// ---------------------------------------------------------------- credentials

export function credentialFrom(headers) {
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
