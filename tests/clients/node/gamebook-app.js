// The conformance suite's GameBook server: docs/instrumenting/node.md's gamebook-metrics.js (loaded from
// REDLINE_METRICS_JS) in a Node 20 process, with a control route the suite drives.
//   GET  /metrics                          prom-client's exposition
//   POST /traffic?rate=N&seconds=S&errors=F  N requests per second from now on, each taking S seconds,
//                                          a share F of them (0 to 1) answered 503
//   POST /pool?busy=N                      N of the render pool's 16 workers busy
//   POST /breaker?open=1|0                 the storage circuit breaker opens or closes
//   POST /cpu?workers=N                    N worker threads spin (about a core each); 0 stops them
//   POST /hold?mb=N                        N MB more held in touched buffers (resident); answers {rss}
//   POST /release                          the buffers dropped and collected (run node --expose-gc)
//   GET  /health                           200 while the process serves, but see /flap
//   POST /flap?every=N                     every Nth /health answers 503 (0: none)
const http = require('node:http');
const { Worker } = require('node:worker_threads');
const { register, observeHttp, setPool, setBreaker } = require(process.env.REDLINE_METRICS_JS);

setPool('render', { busy: 2, max: 16, queued: 0 });
setBreaker('storage', false);

let traffic = { rate: 0, seconds: 0.01, errors: 0 };
let flap = { every: 0, seen: 0 };
let owed = 0; // errors owed: a share F of N requests is exactly F * N of them, spread evenly
let spinners = [];
let held = [];

// Every 100 ms, a tenth of the configured requests per second.
setInterval(() => {
  for (let i = 0; i < traffic.rate / 10; i += 1) {
    owed += traffic.errors;
    const failed = owed >= 1;
    if (failed) owed -= 1;
    observeHttp({ method: 'GET', route: '/api/books', statusCode: failed ? 503 : 200, seconds: traffic.seconds });
  }
}, 100);

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'GET' && url.pathname === '/metrics') {
    res.setHeader('Content-Type', register.contentType);
    res.end(await register.metrics());
  } else if (req.method === 'POST' && url.pathname === '/pool') {
    setPool('render', { busy: Number(url.searchParams.get('busy') || 0), max: 16, queued: 0 });
    res.end('ok\n');
  } else if (req.method === 'POST' && url.pathname === '/breaker') {
    setBreaker('storage', url.searchParams.get('open') === '1');
    res.end('ok\n');
  } else if (req.method === 'GET' && url.pathname === '/health') {
    flap.seen += 1;
    res.statusCode = flap.every > 0 && flap.seen % flap.every === 0 ? 503 : 200;
    res.end(res.statusCode === 200 ? 'ok\n' : 'unavailable\n');
  } else if (req.method === 'POST' && url.pathname === '/flap') {
    flap = { every: Number(url.searchParams.get('every') || 0), seen: 0 };
    res.end('ok\n');
  } else if (req.method === 'POST' && url.pathname === '/cpu') {
    await Promise.all(spinners.map((worker) => worker.terminate()));
    spinners = [];
    for (let i = 0; i < Number(url.searchParams.get('workers') || 0); i += 1) {
      spinners.push(new Worker('for (;;) {}', { eval: true }));
    }
    res.end('ok\n');
  } else if (req.method === 'POST' && url.pathname === '/hold') {
    for (let i = 0; i < Number(url.searchParams.get('mb') || 0); i += 1) held.push(Buffer.alloc(1 << 20, 1));
    res.end(JSON.stringify({ rss: process.memoryUsage.rss() }));
  } else if (req.method === 'POST' && url.pathname === '/release') {
    held = [];
    global.gc();
    res.end(JSON.stringify({ rss: process.memoryUsage.rss() }));
  } else if (req.method === 'POST' && url.pathname === '/traffic') {
    traffic = {
      rate: Number(url.searchParams.get('rate') || 0),
      seconds: Number(url.searchParams.get('seconds') || 0.01),
      errors: Number(url.searchParams.get('errors') || 0),
    };
    res.end('ok\n');
  } else {
    res.statusCode = 404;
    res.end('not found\n');
  }
});
server.listen(Number(process.env.PORT), '127.0.0.1');
