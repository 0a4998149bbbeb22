// The client role on Node's own `http` client with a keep-alive `http.Agent`
// (the Node.js of the lab image, Debian bookworm's nodejs): one agent shared
// by the workers, at the Agent's defaults unless a flag sets an option (each
// flag is the `new http.Agent({...})` option's name). `keepAlive` is on: the
// role is the pooled caller (Node 18's globalAgent has it off; the lab
// measures that too, `--keep-alive false`). A free socket has no idle timeout
// unless `timeout` is set.
//
// stdout gets connlab-client's lines (one JSON record per request; the lab
// computes the summary), each failed record with `library_error`: the
// error's `code` and message as a service logs them ("ECONNRESET: read
// ECONNRESET", "ECONNRESET: socket hang up").
//
//   node node-agent-client.js --target envoy:10000 --requests 6 --gaps-ms 0,5500
'use strict';
const http = require('http');

const TAG_HEADER = 'x-connlab';
// connlab::client::MAX_RUN: a request still waiting then is `unfinished`.
const MAX_RUN_MS = 600000;

function parseArgs(argv) {
  const opts = { path: '/', connections: 1, gapsMs: [], keepAlive: true };
  const agent = {};
  const num = (flag, v) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n)) throw new Error(`${flag} needs a number, got ${v}`);
    return n;
  };
  for (let i = 2; i < argv.length; i += 2) {
    const [flag, v] = [argv[i], argv[i + 1]];
    switch (flag) {
      case '--target': opts.target = v; break;
      case '--path': opts.path = v; break;
      case '--connections': opts.connections = num(flag, v); break;
      case '--requests': opts.requests = num(flag, v); break;
      case '--gaps-ms': opts.gapsMs = v.split(',').filter(Boolean).map((g) => num(flag, g)); break;
      case '--keep-alive': opts.keepAlive = v === 'true'; break;
      // http.Agent options, their own names.
      case '--keep-alive-msecs': agent.keepAliveMsecs = num(flag, v); break;
      case '--max-sockets': agent.maxSockets = num(flag, v); break;
      case '--max-free-sockets': agent.maxFreeSockets = num(flag, v); break;
      case '--timeout-ms': agent.timeout = num(flag, v); break;
      case '--scheduling': agent.scheduling = v; break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  if (!opts.target || !opts.requests) throw new Error('--target and --requests are required');
  return { opts, agent };
}

// The lab's error class of a Node client error. "socket hang up" (code
// ECONNRESET, no syscall) is Node's name for a socket closed (FIN) before a
// response began: EOF. With a syscall it is the kernel's ECONNRESET: reset.
function classify(err) {
  switch (err.code) {
    case 'ECONNRESET':
      return err.syscall ? { kind: 'reset' } : { kind: 'eof' };
    case 'EPIPE':
    case 'ECONNABORTED':
      return { kind: 'reset' };
    case 'ECONNREFUSED':
      return { kind: 'connect', errno: 111 };
    case 'EADDRNOTAVAIL':
      return { kind: 'connect', errno: 99 };
    case 'EHOSTUNREACH':
      return { kind: 'connect', errno: 113 };
    case 'ETIMEDOUT':
    case 'ERR_CONNLAB_TIMEOUT':
      return { kind: 'timeout' };
    default:
      return { kind: 'protocol' };
  }
}

function main() {
  let parsed;
  try {
    parsed = parseArgs(process.argv);
  } catch (e) {
    console.error(`node-agent-client: ${e.message}`);
    process.exit(2);
  }
  const { opts, agent: agentOptions } = parsed;
  const agent = new http.Agent({ keepAlive: opts.keepAlive, ...agentOptions });
  const [host, port] = [opts.target.slice(0, opts.target.lastIndexOf(':')),
    Number(opts.target.slice(opts.target.lastIndexOf(':') + 1))];
  console.error(`node-agent-client: node ${process.version}, agent keepAlive=${agent.keepAlive} ` +
    `keepAliveMsecs=${agent.keepAliveMsecs} maxSockets=${agent.maxSockets} ` +
    `maxFreeSockets=${agent.maxFreeSockets} scheduling=${agent.scheduling} ` +
    `timeout=${agent.options.timeout}, ${opts.connections} worker(s) -> ${opts.target}${opts.path}`);
  const started = process.hrtime.bigint();
  const ms = () => Math.round(Number(process.hrtime.bigint() - started) / 1000) / 1000;

  function once(worker, seq) {
    return new Promise((resolve) => {
      const record = { type: 'request', worker, seq, start_ms: ms(), end_ms: 0, status: null,
        error: null, local: null, reused: false, tag: null };
      let done = false;
      const finish = (err) => {
        if (done) return;
        done = true;
        record.end_ms = ms();
        if (err) {
          record.error = classify(err);
          record.library_error = `${err.code}: ${err.message}`;
        }
        resolve(record);
      };
      const req = http.get({ host, port, path: opts.path, agent }, (res) => {
        record.status = res.statusCode;
        record.tag = res.headers[TAG_HEADER] ?? null;
        res.resume();
        res.on('end', () => finish());
        res.on('error', finish);
      });
      req.on('socket', (socket) => {
        // reusedSocket: Node's own flag for a request sent on a pooled socket.
        record.reused = req.reusedSocket;
        const local = () => { record.local = `${socket.localAddress}:${socket.localPort}`; };
        if (socket.connecting) socket.once('connect', local); else local();
      });
      req.on('error', finish);
      const left = MAX_RUN_MS - ms();
      req.setTimeout(Math.max(1, left), () => {
        record.error = { kind: 'unfinished' };
        done = true;
        record.end_ms = ms();
        req.destroy();
        resolve(record);
      });
    });
  }

  async function worker(id) {
    for (let seq = 0; seq < opts.requests; seq++) {
      const gaps = opts.gapsMs;
      if (gaps.length) await new Promise((r) => setTimeout(r, gaps[seq % gaps.length]));
      if (ms() >= MAX_RUN_MS) return;
      const record = await once(id, seq);
      process.stdout.write(JSON.stringify(record) + '\n');
      if (record.library_error) {
        console.error(`node-agent-client: request ${seq}: ${record.library_error}`);
      }
    }
  }

  Promise.all([...Array(opts.connections).keys()].map(worker)).then(() => {
    agent.destroy();
  });
}

main();
