// The conformance suite's qerrors service: the documented instrumentation (docs/instrumenting/node.md,
// metrics.js, loaded from REDLINE_METRICS_JS) in a Node 20 process, with control routes the suite drives.
//   GET  /metrics                      prom-client's exposition
//   GET  /heap                         v8.getHeapStatistics() and process.memoryUsage(), as JSON
//   POST /traffic?hits=N&misses=M&seconds=S&cache=C&errors=F   lookups per second from now on (0 0:
//                                      idle), a share F of the requests (0 to 1) failing with a timeout
//   POST /hold?mb=N                    keep N more MB reachable on the V8 heap
//   POST /release                      drop what /hold keeps
const http = require('node:http');
const v8 = require('node:v8');
const { register, observeRequest } = require(process.env.REDLINE_METRICS_JS);

let traffic = { hits: 0, misses: 0, seconds: 0.01, cache: 'advice', errors: 0 };
let owed = 0; // errors owed: a share F of N requests is exactly F * N of them, spread evenly
const held = [];

// Every 100 ms, a tenth of the configured lookups per second.
setInterval(() => {
  for (const [count, hit] of [[traffic.hits, true], [traffic.misses, false]]) {
    for (let i = 0; i < count / 10; i += 1) {
      owed += traffic.errors;
      const errorType = owed >= 1 ? 'timeout' : undefined;
      if (errorType) owed -= 1;
      observeRequest({ seconds: traffic.seconds, cache: traffic.cache, hit, errorType });
    }
  }
}, 100);

function hold(mb) {
  // Arrays of small distinct numbers live on the V8 heap (unlike Buffers), 8 bytes per element.
  for (let i = 0; i < mb; i += 1) {
    const chunk = new Array(131072);
    for (let j = 0; j < chunk.length; j += 1) chunk[j] = j + 0.5;
    held.push(chunk);
  }
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  const query = Object.fromEntries(url.searchParams);
  if (req.method === 'GET' && url.pathname === '/metrics') {
    res.setHeader('Content-Type', register.contentType);
    res.end(await register.metrics());
  } else if (req.method === 'GET' && url.pathname === '/heap') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ v8: v8.getHeapStatistics(), memory: process.memoryUsage() }));
  } else if (req.method === 'POST' && url.pathname === '/traffic') {
    traffic = {
      hits: Number(query.hits || 0),
      misses: Number(query.misses || 0),
      seconds: Number(query.seconds || 0.01),
      cache: query.cache || 'advice',
      errors: Number(query.errors || 0),
    };
    res.end('ok\n');
  } else if (req.method === 'POST' && url.pathname === '/hold') {
    hold(Number(query.mb || 0));
    res.end(`${held.length}\n`);
  } else if (req.method === 'POST' && url.pathname === '/release') {
    held.length = 0;
    if (global.gc) global.gc();
    res.end('ok\n');
  } else {
    res.statusCode = 404;
    res.end('not found\n');
  }
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log(`listening ${server.address().port}`));
