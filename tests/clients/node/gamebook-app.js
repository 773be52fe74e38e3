// The conformance suite's GameBook server: docs/instrumenting/node.md's gamebook-metrics.js (loaded from
// REDLINE_METRICS_JS) in a Node 20 process, with a control route the suite drives.
//   GET  /metrics                          prom-client's exposition
//   POST /traffic?rate=N&seconds=S         N requests per second from now on, each taking S seconds
//   POST /pool?busy=N                      N of the render pool's 16 workers busy
//   POST /breaker?open=1|0                 the storage circuit breaker opens or closes
const http = require('node:http');
const { register, observeHttp, setPool, setBreaker } = require(process.env.REDLINE_METRICS_JS);

setPool('render', { busy: 2, max: 16, queued: 0 });
setBreaker('storage', false);

let traffic = { rate: 0, seconds: 0.01 };

// Every 100 ms, a tenth of the configured requests per second.
setInterval(() => {
  for (let i = 0; i < traffic.rate / 10; i += 1) {
    observeHttp({ method: 'GET', route: '/api/books', statusCode: 200, seconds: traffic.seconds });
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
  } else if (req.method === 'POST' && url.pathname === '/traffic') {
    traffic = { rate: Number(url.searchParams.get('rate') || 0), seconds: Number(url.searchParams.get('seconds') || 0.01) };
    res.end('ok\n');
  } else {
    res.statusCode = 404;
    res.end('not found\n');
  }
});
server.listen(Number(process.env.PORT), '127.0.0.1');
