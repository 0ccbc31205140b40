// The HTTP side: node:http, read-only. GET (or HEAD) /metrics serves the exposition (OpenMetrics or
// Prometheus text, gzipped when the scraper accepts it: negotiate.ts), / a page with a link to it;
// any other path is 404 and any other method 405. Requests with a body, long URLs and
// oversized headers are refused; clients that send their request too slowly are cut off.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzip } from 'node:zlib';
import { acceptsGzip, negotiateFormat } from './negotiate.js';
import type { Exposition, Scraper } from './scrape.js';

export interface ServerLimits {
  /** Longest request target accepted (414 beyond). */
  maxUrlBytes: number;
  /** Largest total of request headers (431 beyond; Node's own parser enforces it). */
  maxHeaderBytes: number;
  /** A new connection must deliver its whole request head within this (408, or closed if it sent nothing). */
  headersTimeoutMs: number;
  /** A kept-alive connection waiting for its next request is closed after this. */
  keepAliveTimeoutMs: number;
  /** A response the client stops reading (no byte of it leaves for this long) ends its connection. */
  writeTimeoutMs: number;
  /**
   * Connections kept open while waiting for a request: beyond this many, the ones that have waited
   * longest (at least shedAfterMs) are closed. Connections being answered are never closed for room.
   */
  keepConnections: number;
  /** A connection younger than this is not closed for room below maxConnections: it has time to send its request. */
  shedAfterMs: number;
  /** Open connections at most: a new one closes the oldest waiting connection, or itself when none waits. */
  maxConnections: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxUrlBytes: 1024,
  maxHeaderBytes: 8 * 1024,
  headersTimeoutMs: 5_000,
  keepAliveTimeoutMs: 5_000,
  writeTimeoutMs: 30_000,
  keepConnections: 64,
  shedAfterMs: 500,
  maxConnections: 256,
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

/** Each exposition is compressed once (in the thread pool), however many scrapers share it. */
const gzipped = new WeakMap<Exposition, Promise<Buffer>>();

function gzipOf(exposition: Exposition): Promise<Buffer> {
  let body = gzipped.get(exposition);
  if (!body) {
    body = new Promise((resolve, reject) => gzip(exposition.text, (err, result) => (err ? reject(err) : resolve(result))));
    gzipped.set(exposition, body);
  }
  return body;
}

/** The body as the client asked for it, with the headers that say so. */
async function encode(exposition: Exposition, gzipBody: boolean): Promise<{ body: Buffer | string; headers: Record<string, string | number> }> {
  // The body depends on both request headers: caches must key on them.
  const headers: Record<string, string | number> = { 'Content-Type': exposition.contentType, Vary: 'Accept, Accept-Encoding' };
  if (!gzipBody) return { body: exposition.text, headers: { ...headers, 'Content-Length': Buffer.byteLength(exposition.text) } };
  const body = await gzipOf(exposition);
  return { body, headers: { ...headers, 'Content-Encoding': 'gzip', 'Content-Length': body.length } };
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
    const format = negotiateFormat(req.headers['accept']);
    const gzipBody = acceptsGzip(req.headers['accept-encoding']);
    scraper.scrape(format).then((exposition) => encode(exposition, gzipBody)).then(({ body, headers }) => {
      if (res.destroyed) return;
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    }, (err: unknown) => {
      onError(err);
      if (!res.destroyed) reply(res, 500, `collection failed: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  };
}

const REQUEST_TIMEOUT_RESPONSE = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

/** One open connection: waiting for a request, or answering `answering` of them (pipelining can queue several). */
interface Tracked {
  answering: number;
  /** When it opened, or when its last response finished. */
  waitingSince: number;
  /** socket.bytesRead then: whether it has sent part of a request since. */
  bytesReadThen: number;
  /** Counts waits, so a deadline that fires after the connection moved on is ignored. */
  wait: number;
  timer: NodeJS.Timeout | null;
}

/**
 * Every open connection and what it is doing, so that local clients cannot starve the scrapes:
 *  - a connection waiting for its request gets headersTimeoutMs (keepAliveTimeoutMs between requests);
 *  - beyond keepConnections, the connections that have waited longest are closed to make room (never
 *    one being answered, and below maxConnections none younger than shedAfterMs), so idle or
 *    dribbling connections held open by anyone cannot keep a scrape out;
 *  - a request whose head has arrived is never timed out while its response is computed, however
 *    slow the collection; once written, the client must keep taking it (writeTimeoutMs).
 * Node's own headers/request timeouts are off: they run from a timer, so after the event loop was
 * busy with a collection they blamed clients whose requests sat unread in the socket (408). Here a
 * deadline that fires gives the connection one pass of I/O first (setImmediate runs after the poll
 * phase) and only then judges it.
 */
class ConnectionGuard {
  private readonly connections = new Map<Socket, Tracked>();
  /** Waiting connections, longest waiting first (a Map keeps insertion order). */
  private readonly waiting = new Map<Socket, Tracked>();
  private sweepQueued = false;
  closing = false;

  constructor(private readonly limits: ServerLimits) {}

  get size(): number {
    return this.connections.size;
  }

  opened(socket: Socket): void {
    const tracked: Tracked = { answering: 0, waitingSince: 0, bytesReadThen: 0, wait: 0, timer: null };
    this.connections.set(socket, tracked);
    socket.once('close', () => this.closed(socket));
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.startWaiting(socket, tracked, this.limits.headersTimeoutMs);
    if (this.connections.size > this.limits.maxConnections) {
      // Full: the longest-waiting connection goes now, whatever its age; with none waiting, this one.
      const oldest = this.oldestWaiting(Infinity, socket);
      (oldest ?? socket).destroy();
    }
    if (this.connections.size > this.limits.keepConnections) this.queueSweep();
  }

  requested(socket: Socket, res: ServerResponse): void {
    const tracked = this.connections.get(socket);
    if (!tracked) return;
    this.stopWaiting(socket, tracked);
    tracked.answering++;
    // The response is complete in memory (end() was called): from now on the client must read it.
    res.once('prefinish', () => {
      if (!socket.destroyed) socket.setTimeout(this.limits.writeTimeoutMs);
    });
    res.once('close', () => {
      tracked.answering = Math.max(0, tracked.answering - 1);
      if (tracked.answering > 0 || socket.destroyed) return;
      socket.setTimeout(0);
      // Node ends the connection after a `Connection: close` response (then it is no longer writable).
      if (socket.writable && !this.closing) this.startWaiting(socket, tracked, this.limits.keepAliveTimeoutMs);
      else if (this.closing) socket.destroy();
    });
  }

  /** The socket's inactivity timeout: only armed while a written response is being sent. */
  timedOut(socket: Socket): void {
    const before = socket.bytesWritten;
    setImmediate(() => {
      if (socket.destroyed) return;
      if (socket.bytesWritten === before && socket.writableLength > 0) socket.destroy();
      else if (this.connections.get(socket)?.answering) socket.setTimeout(this.limits.writeTimeoutMs);
    });
  }

  /** Closes every connection waiting for a request; the ones being answered end after their response. */
  close(): void {
    this.closing = true;
    for (const socket of [...this.waiting.keys()]) socket.destroy();
  }

  private closed(socket: Socket): void {
    const tracked = this.connections.get(socket);
    if (!tracked) return;
    this.stopWaiting(socket, tracked);
    this.connections.delete(socket);
  }

  private startWaiting(socket: Socket, tracked: Tracked, timeoutMs: number): void {
    tracked.waitingSince = performance.now();
    tracked.bytesReadThen = socket.bytesRead;
    const wait = ++tracked.wait;
    this.waiting.delete(socket);
    this.waiting.set(socket, tracked);
    tracked.timer = setTimeout(() => {
      tracked.timer = null;
      // Judged after one pass of I/O: a request that arrived while the loop was busy is read first.
      setImmediate(() => {
        if (tracked.wait !== wait || !this.waiting.has(socket)) return;
        if (socket.bytesRead > tracked.bytesReadThen && socket.writable) {
          socket.end(REQUEST_TIMEOUT_RESPONSE, () => socket.destroy());
          this.stopWaiting(socket, tracked);
        } else {
          socket.destroy();
        }
      });
    }, timeoutMs);
    tracked.timer.unref();
  }

  private stopWaiting(socket: Socket, tracked: Tracked): void {
    tracked.wait++;
    if (tracked.timer !== null) clearTimeout(tracked.timer);
    tracked.timer = null;
    this.waiting.delete(socket);
  }

  /** The connection that has waited longest, at least `minAgeMs`; never `except`. */
  private oldestWaiting(minAgeMs: number, except?: Socket): Socket | null {
    const now = performance.now();
    for (const [socket, tracked] of this.waiting) {
      if (socket === except) continue;
      // In order of waitingSince: once one is too young, so are the rest.
      if (minAgeMs !== Infinity && now - tracked.waitingSince < minAgeMs) return null;
      return socket;
    }
    return null;
  }

  /**
   * Closes waiting connections, longest waiting first, down to keepConnections. Run after the next
   * poll phase: the connections just accepted have had their request read, if it was sent with them.
   */
  private queueSweep(): void {
    if (this.sweepQueued) return;
    this.sweepQueued = true;
    setImmediate(() => setImmediate(() => {
      this.sweepQueued = false;
      while (this.connections.size > this.limits.keepConnections) {
        const victim = this.oldestWaiting(this.limits.shedAfterMs);
        if (victim === null) break;
        this.stopWaiting(victim, this.connections.get(victim)!);
        victim.destroy();
      }
    }));
  }
}

export interface RunningServer {
  server: Server;
  /** What it listens on: host and port, or the unix socket's path. */
  address: AddressInfo | string;
  /** Open connections now. */
  connections(): number;
  /** Stop listening, let in-flight scrapes finish, close idle connections; resolves when all are closed. */
  close(): Promise<void>;
}

/**
 * Where to listen: a TCP host and port, or a unix socket bound with exactly `mode` (the caller has
 * checked its directory and cleared a stale socket: unixSocket.ts prepareUnixSocket).
 */
export type ListenTarget = { host: string; port: number } | { path: string; mode: number };

/** Listen on host:port or a unix socket. Rejects with the listen error (EADDRINUSE, EACCES, EADDRNOTAVAIL…). */
export function startServer(scraper: Scraper, target: ListenTarget, options: { limits?: ServerLimits; onError?: (err: unknown) => void } = {}): Promise<RunningServer> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const guard = new ConnectionGuard(limits);
  const respond = handler(scraper, limits, options.onError ?? (() => undefined), () => guard.closing);
  const server = createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    // All three are the guard's (see ConnectionGuard); Node's checker then has nothing to do, so it
    // wakes once an hour instead of every few seconds.
    headersTimeout: 0,
    requestTimeout: 0,
    keepAliveTimeout: 0,
    connectionsCheckingInterval: 3_600_000,
  }, (req, res) => {
    guard.requested(req.socket, res);
    respond(req, res);
  });
  server.on('connection', (socket: Socket) => guard.opened(socket));
  // A listener here keeps Node from destroying the socket itself: the guard decides.
  server.on('timeout', (socket: Socket) => guard.timedOut(socket));
  // Malformed requests and oversized headers: Node answers 400/431 where it still can.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const listening = () => {
      server.off('error', reject);
      server.on('error', (err) => options.onError?.(err));
      const address = server.address() as AddressInfo | string;
      resolve({
        server,
        address,
        connections: () => guard.size,
        close: () => new Promise<void>((done) => {
          guard.close();
          server.close(() => done());
          // Busy connections finish their response first; a client that never reads its response is
          // cut off after the write timeout.
          setTimeout(() => server.closeAllConnections(), limits.writeTimeoutMs).unref();
        }),
      });
    };
    if ('path' in target) {
      // bind(2) runs inside listen(), synchronously: the socket is created with this umask, so its
      // mode is `mode` from the start. Only this call sees it (the exporter runs nothing else now).
      const umask = process.umask(0o777 & ~target.mode);
      try {
        server.listen({ path: target.path, exclusive: true }, listening);
      } finally {
        process.umask(umask);
      }
    } else {
      server.listen({ host: target.host, port: target.port, exclusive: true }, listening);
    }
  });
}
