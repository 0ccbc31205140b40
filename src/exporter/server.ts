// The HTTP side: node:http, read-only. GET (or HEAD) /metrics serves the exposition, / a page with a
// link to it; any other path is 404 and any other method 405. Requests with a body, long URLs and
// oversized headers are refused; clients that send their request too slowly are cut off.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Scraper } from './scrape.js';

export interface ServerLimits {
  /** Longest request target accepted (414 beyond). */
  maxUrlBytes: number;
  /** Largest total of request headers (431 beyond; Node's own parser enforces it). */
  maxHeaderBytes: number;
  /** The whole request head must arrive within this (408 otherwise). */
  headersTimeoutMs: number;
  /** A request must complete within this. */
  requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections beyond this are closed at once (Prometheus needs one per scrape). */
  maxConnections: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxUrlBytes: 1024,
  maxHeaderBytes: 8 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 64,
};

const INDEX_PAGE = `<!DOCTYPE html>
<html><head><title>rdmactl exporter</title></head>
<body><h1>rdmactl exporter</h1>
<p>Pinned and locked memory, RLIMIT_MEMLOCK headroom and RDMA registrations of this machine.</p>
<p><a href="/metrics">Metrics</a></p>
</body></html>
`;

function reply(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function handler(scraper: Scraper, limits: ServerLimits, onError: (err: unknown) => void, closing: () => boolean = () => false) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    // While shutting down, every response ends its connection, so close() is not held open by keep-alive.
    if (closing()) res.shouldKeepAlive = false;
    const url = req.url ?? '/';
    if (Buffer.byteLength(url) > limits.maxUrlBytes) {
      reply(res, 414, 'URI too long\n', { Connection: 'close' });
      return;
    }
    // A GET carries no body: one announced is refused before a byte of it is read.
    const length = req.headers['content-length'];
    if ((length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined) {
      reply(res, 413, 'requests to this exporter carry no body\n', { Connection: 'close' });
      return;
    }
    const path = url.split('?')[0];
    if (path !== '/metrics' && path !== '/') {
      reply(res, 404, 'not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(res, 405, 'method not allowed: only GET and HEAD\n', { Allow: 'GET, HEAD' });
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(INDEX_PAGE) });
      res.end(req.method === 'HEAD' ? undefined : INDEX_PAGE);
      return;
    }
    scraper.scrape().then((exposition) => {
      if (res.destroyed) return;
      res.writeHead(200, { 'Content-Type': exposition.contentType, 'Content-Length': Buffer.byteLength(exposition.text) });
      res.end(req.method === 'HEAD' ? undefined : exposition.text);
    }, (err: unknown) => {
      onError(err);
      if (!res.destroyed) reply(res, 500, `collection failed: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  };
}

export interface RunningServer {
  server: Server;
  address: AddressInfo;
  /** Stop listening, let in-flight scrapes finish, close idle connections; resolves when all are closed. */
  close(): Promise<void>;
}

/** Listen on host:port. Rejects with the listen error (EADDRINUSE, EACCES, EADDRNOTAVAIL…). */
export function startServer(scraper: Scraper, host: string, port: number, options: { limits?: ServerLimits; onError?: (err: unknown) => void } = {}): Promise<RunningServer> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  let closing = false;
  const server = createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often Node checks the two timeouts above: the default 30 s would let slow clients linger;
    // every second cost ~15 ms of CPU a minute on an idle exporter (a quarter of its budget at a 15 s
    // scrape interval). Half the headers timeout: a slow client is cut within 1.5× the timeout.
    connectionsCheckingInterval: Math.min(5000, limits.headersTimeoutMs / 2),
  }, handler(scraper, limits, options.onError ?? (() => undefined), () => closing));
  server.maxConnections = limits.maxConnections;
  // A connection that stalls after its request (a client that never reads the response) goes too.
  server.setTimeout(limits.requestTimeoutMs, (socket) => socket.destroy());
  // Malformed requests and oversized headers: Node answers 400/431 where it still can.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      server.on('error', (err) => options.onError?.(err));
      const address = server.address() as AddressInfo;
      resolve({
        server,
        address,
        close: () => new Promise<void>((done) => {
          closing = true;
          server.close(() => done());
          // Idle keep-alive connections would hold close() open; busy ones finish their response first,
          // and a client that never reads its response is cut off after the request timeout.
          server.closeIdleConnections();
          setTimeout(() => server.closeAllConnections(), limits.requestTimeoutMs).unref();
        }),
      });
    });
  });
}
