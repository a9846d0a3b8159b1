// The peer's per-process count cache: what the Python gateway's gateway/cache.py does,
// written the way a Node developer would with the usual library (lru-cache, which
// @apollo/server itself depends on).
//
// - Key: HMAC-SHA256 of the whole credential (never the credential in clear),
//   the canonical filter JSON, and priorityFilter.
// - Only successes are stored, for ttlMs; bounded to max entries (least recently used go).
// - Identical calls in flight are shared, within a request and across requests.

import { createHmac, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';

export class CountCache {
  constructor({ max = 10_000, ttlMs = 15_000, secret = randomBytes(32) } = {}) {
    this.secret = secret;
    this.entries = new LRUCache({ max, ttl: ttlMs, ttlAutopurge: false });
    this.inFlight = new Map();
  }

  /** The cache key for `credential` ({ssid} or {userId, token}) asking `filterJson`/`priorityFilter`. */
  key(credential, filterJson, priorityFilter) {
    const identity = JSON.stringify([credential.ssid ?? null, credential.userId ?? null, credential.token ?? null]);
    const principal = createHmac('sha256', this.secret).update(identity).digest('base64');
    return `${principal}\n${filterJson}\n${priorityFilter ?? ''}`;
  }

  /** The cached count for `key`, else one shared `fetch()` whose success is cached. */
  async getOrFetch(key, fetch) {
    const cached = this.entries.get(key);
    if (cached !== undefined) return cached;
    let flight = this.inFlight.get(key);
    if (flight === undefined) {
      flight = (async () => {
        try {
          const value = await fetch();
          this.entries.set(key, value);
          return value;
        } finally {
          this.inFlight.delete(key);
        }
      })();
      this.inFlight.set(key, flight);
    }
    return flight;
  }
}

/** JSON with object keys sorted at every level: equal filters give equal strings. */
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
