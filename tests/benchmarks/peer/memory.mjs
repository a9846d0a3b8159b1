// Bytes per cached key in the peer's count cache (counts.mjs), for comparison with
// tests/benchmarks/memory_per_key.py. Prints one JSON object.
//
//   node --expose-gc memory.mjs [keys=100000]

import { CountCache, canonicalJson } from './counts.mjs';

const keys = Number(process.argv[2] ?? 100_000);
const gc = globalThis.gc ?? (() => {});

async function fill(cache, n) {
  const credential = { ssid: 'bench-ssid' };
  for (let i = 0; i < n; i++) {
    const key = cache.key(credential, canonicalJson({ campId: 1_000_000 + i }), undefined);
    await cache.getOrFetch(key, async () => 100_000 + i);
  }
}

const cache = new CountCache({ max: 2 * keys, ttlMs: 15_000 });
await fill(new CountCache({ max: 16 }), 16);
gc();
gc();
const before = process.memoryUsage();
await fill(cache, keys);
gc();
gc();
const after = process.memoryUsage();
const entries = cache.entries.size;
console.log(JSON.stringify({
  keys,
  entries,
  heap_bytes_per_key: (after.heapUsed - before.heapUsed) / Math.max(1, entries),
  rss_bytes_per_key: (after.rss - before.rss) / Math.max(1, entries),
}));
