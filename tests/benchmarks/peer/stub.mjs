// The benchmark's upstream: a minimal, cheap stand-in for DeepCall's reportCount.
//
// It is deliberately not the gateway's simulator (a Starlette app over SQLite):
// on a 2-core machine the upstream must cost little CPU and cost the same for
// both gateways, so it is plain node:http and does no counting work at all.
//
//   POST /api/v2/CallReport/reportCount   {"code":200,"status":"success","cnt":N}
//        N is a hash of the body, so the same question always gets the same count.
//        A body without ssid or userId+token gets the upstream's 1000 error shape.
//   GET  /stats    {"requests": N, "connections": C, "latencyMs": L}: reportCount calls,
//                  and connections that carried one, since start (or reset)
//   POST /reset    zero the counters
//   POST /config   {"latencyMs": L}: delay every reportCount answer by L ms from now on
//   POST /bump     every count moves by one from now on (live scenarios); the time it did
//   GET  /live     {"generation": G, "bumpedAt": ms, "seen": {campId: ms}}: when each
//                  campaign's count was first answered with the latest generation
//
// Usage: node stub.mjs --port 9000 [--host 127.0.0.1] [--latency-ms 0]
//                      [--tls-port 9443 --tls-cert cert.pem --tls-key key.pem]
// With --tls-port the same handler (and counters) also answers over HTTPS there.

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const args = process.argv.slice(2);
function option(name, fallback) {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
}

const host = option('--host', '127.0.0.1');
const port = Number(option('--port', '9000'));
let latencyMs = Number(option('--latency-ms', '0'));
let requests = 0;
let connections = 0;
let generation = 0;
let bumpedAt = 0;
let seen = {};

const REPORT_COUNT = '/api/v2/CallReport/reportCount';
const JSON_HEADERS = { 'content-type': 'application/json' };
const INVALID_PARAMETERS = '{"status":"error","message":"Invalid parameters","code":1000}';
const INVALID_REQUEST_DATA = '{"status":"error","message":"Invalid Request Data","code":1047}';

// FNV-1a over the UTF-16 code units of the body: deterministic and cheap.
function countFor(body) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < body.length; i++) {
    hash ^= body.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % 100000;
}

function answer(body) {
  let payload;
  try {
    payload = JSON.parse(body);
  } catch {
    return INVALID_REQUEST_DATA;
  }
  if (payload === null || typeof payload !== 'object') return INVALID_REQUEST_DATA;
  const session = typeof payload.ssid === 'string' && payload.ssid !== '';
  const user = typeof payload.userId === 'string' && typeof payload.token === 'string';
  if (session === user) return INVALID_PARAMETERS;
  if (generation > 0) {
    const campaign = payload.filter?.campId;
    if (campaign !== undefined && !(campaign in seen)) seen[campaign] = Date.now();
  }
  return `{"code":200,"status":"success","cnt":${(countFor(body) + generation) % 100000}}`;
}

function readBody(req, then) {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => then(Buffer.concat(chunks).toString('utf8')));
}

function handle(req, res) {
  const url = req.url;
  if (req.method === 'POST' && (url === REPORT_COUNT || url === REPORT_COUNT + '/')) {
    requests++;
    if (!req.socket.countedByStub) {
      req.socket.countedByStub = true;
      connections++;
    }
    readBody(req, (body) => {
      const out = answer(body);
      if (latencyMs > 0) {
        setTimeout(() => res.writeHead(200, JSON_HEADERS).end(out), latencyMs);
      } else {
        res.writeHead(200, JSON_HEADERS).end(out);
      }
    });
    return;
  }
  if (req.method === 'GET' && url === '/stats') {
    res.writeHead(200, JSON_HEADERS).end(JSON.stringify({ requests, connections, latencyMs }));
    return;
  }
  if (req.method === 'POST' && url === '/bump') {
    req.resume();
    generation++;
    bumpedAt = Date.now();
    seen = {};
    res.writeHead(200, JSON_HEADERS).end(JSON.stringify({ generation, bumpedAt }));
    return;
  }
  if (req.method === 'GET' && url === '/live') {
    res.writeHead(200, JSON_HEADERS).end(JSON.stringify({ generation, bumpedAt, seen }));
    return;
  }
  if (req.method === 'POST' && url === '/reset') {
    req.resume();
    requests = 0;
    connections = 0;
    res.writeHead(200, JSON_HEADERS).end(JSON.stringify({ requests, connections }));
    return;
  }
  if (req.method === 'POST' && url === '/config') {
    readBody(req, (body) => {
      try {
        const wanted = Number(JSON.parse(body).latencyMs);
        if (!Number.isFinite(wanted) || wanted < 0) throw new Error('latencyMs');
        latencyMs = wanted;
        res.writeHead(200, JSON_HEADERS).end(JSON.stringify({ latencyMs }));
      } catch {
        res.writeHead(400, JSON_HEADERS).end('{"error":"send {\\"latencyMs\\": N}"}');
      }
    });
    return;
  }
  req.resume();
  res.writeHead(404, JSON_HEADERS).end('{"error":"not found"}');
}

const servers = [http.createServer(handle)];
const tlsPort = option('--tls-port', '');
if (tlsPort) {
  const tls = { cert: fs.readFileSync(option('--tls-cert')), key: fs.readFileSync(option('--tls-key')) };
  servers.push(https.createServer(tls, handle));
}
servers.forEach((server, index) => {
  // Both gateways keep upstream connections alive; never be the side that drops them.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  const [scheme, listenPort] = index === 0 ? ['http', port] : ['https', Number(tlsPort)];
  server.listen(listenPort, host, () => {
    console.log(`stub listening on ${scheme}://${host}:${listenPort} (latency ${latencyMs} ms)`);
  });
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    let open = servers.length;
    for (const server of servers) {
      server.close(() => (--open === 0 ? process.exit(0) : undefined));
      server.closeAllConnections();
    }
  });
}
