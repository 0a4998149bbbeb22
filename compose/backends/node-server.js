// The Node.js backend of the lab: Node's own `http` server with its real
// defaults (keepAliveTimeout 5000 ms in Node 18), answering 200 "ok".
//
//   node /opt/connlab/backends/node-server.js
//   CONNLAB_NODE_KEEPALIVE_MS=360000 node ...   # the "fixed" variant
//   PORT=8080 (default)
'use strict';
const http = require('http');

const port = Number(process.env.PORT || 8080);
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '2' });
    res.end('ok');
  });
});

const override = process.env.CONNLAB_NODE_KEEPALIVE_MS;
if (override) {
  server.keepAliveTimeout = Number(override);
  // headersTimeout must stay above keepAliveTimeout or Node closes first.
  server.headersTimeout = Math.max(server.headersTimeout, server.keepAliveTimeout + 1000);
}

process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
process.on('SIGINT', () => process.exit(0));

server.listen(port, '0.0.0.0', () => {
  console.error(
    `node-server: ready port=${port} node=${process.version} ` +
      `keepAliveTimeout=${server.keepAliveTimeout} headersTimeout=${server.headersTimeout}`
  );
});
