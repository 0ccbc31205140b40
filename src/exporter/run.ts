// Running the exporter until SIGTERM/SIGINT/SIGHUP: either an HTTP listener or a textfile writer.
// Either way a signal stops new work, lets what is in flight finish, and resolves (exit 0). SIGHUP
// ends it like SIGTERM (as it ends `reg` and `top`): a closed terminal stops it, and it has no
// configuration to reload. SIGUSR1 is ignored (src/lib/debugSignal.ts).

import { PermissionError, RdmactlError, UsageError } from '../lib/errors.js';
import { untilSignal } from '../lib/hold.js';
import { errorCode } from '../proc/procfs.js';
import { Scraper, type ScraperOptions } from './scrape.js';
import { startServer, type ListenTarget, type RunningServer, type ServerLimits } from './server.js';
import { checkSocketPath, DEFAULT_SOCKET_MODE, prepareUnixSocket } from './unixSocket.js';
import { startBackgroundTrace, type BackgroundTrace } from '../trace/background.js';
import { traceDrivers } from '../trace/sources.js';
import { TraceMetrics } from './traceMetrics.js';
import { closeTextfileDir, openTextfileDir, removeStaleTemporaries, writeTextfile, type TextfileDir } from './textfile.js';
import { counted } from '../lib/plural.js';

/**
 * The default port: the 9100–9999 exporter range of Prometheus's default port allocation list is
 * full and the list continues at 10000; see rdmactl(1), EXPORTER, for why this one.
 */
export const DEFAULT_PORT = 10062;
export const DEFAULT_HOST = '127.0.0.1';

/**
 * HOST:PORT, [IPv6]:PORT, :PORT or unix:PATH. All interfaces is never implied: :PORT means
 * 127.0.0.1, and 0.0.0.0 or [::] must be written out. A unix socket gets `socketMode` (see unixSocket.ts).
 */
export function parseListen(input: string, socketMode = DEFAULT_SOCKET_MODE): ListenTarget {
  if (input.startsWith('unix:')) {
    const path = input.slice('unix:'.length);
    checkSocketPath(path);
    return { path, mode: socketMode };
  }
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(input) ?? /^([^:[\]]*):(\d+)$/.exec(input);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new UsageError(`invalid --listen '${input}': expected HOST:PORT or unix:PATH, e.g. 127.0.0.1:${DEFAULT_PORT}, 0.0.0.0:${DEFAULT_PORT}, [::1]:${DEFAULT_PORT} or unix:/run/rdmactl/exporter.sock`);
  }
  return { host: match[1] === '' ? DEFAULT_HOST : match[1]!, port };
}

/** Whether only this machine can reach `host` (a loopback address or name). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host) || /^::ffff:127\./i.test(host);
}

/**
 * The one-line warning for a TCP address other machines can reach (0.0.0.0, [::], an interface's
 * address): the exposition names every process that pins or locks, its user and its memory. null
 * for loopback and unix sockets.
 */
export function exposureWarning(listen: ListenTarget): string | null {
  if ('path' in listen || isLoopback(listen.host)) return null;
  return `warning: serving on ${formatAddress(listen.host, listen.port)}: every process's name, pid, user and pinned/locked memory is readable by anyone who can reach this address, unauthenticated (see rdmactl(1), exporter)`;
}

/** How a listen target is named in messages: HOST:PORT, [IPv6]:PORT or unix:PATH. */
export function describeListen(listen: ListenTarget): string {
  return 'path' in listen ? `unix:${listen.path}` : formatAddress(listen.host, listen.port);
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The listen failure as rdmactl reports it: in use → 1, not permitted → 4, bad host → 2. */
export function listenError(err: unknown, where: string): RdmactlError {
  const code = errorCode(err);
  const unix = where.startsWith('unix:');
  if (code === 'EADDRINUSE') return new RdmactlError(`cannot listen on ${where}: the address is in use (is another exporter running?)`, 1, [unix ? 'choose another socket path with --listen unix:PATH' : 'choose another port with --listen HOST:PORT']);
  if (code === 'EACCES' || code === 'EPERM') return new PermissionError(`cannot listen on ${where}: permission denied`, [unix ? 'the socket\'s directory must be writable by this user' : 'ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a higher port with --listen HOST:PORT']);
  if (code === 'EADDRNOTAVAIL') return new RdmactlError(`cannot listen on ${where}: no such address on this machine`, 1, ['give one of this machine\'s addresses, or 0.0.0.0 for all']);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new UsageError(`invalid --listen host in ${where}: not found`);
  return new RdmactlError(`cannot listen on ${where}: ${err instanceof Error ? err.message : String(err)}`);
}

/** exporter --trace: a trace session for the exporter's lifetime, feeding the rdmactl_registration* counters. */
export interface TraceCounterOptions {
  /** One-line notes for stderr: leftovers of killed runs removed, events the kernel dropped. */
  onNote?: (message: string) => void;
}

/**
 * Starts tracing into `scraper`'s registry and resolves once it is on. When tracing cannot start,
 * throws why (exit 3: no tracefs or no source; exit 4: not root): the exporter then refuses to start
 * rather than serve without the counters it was asked for.
 */
async function startTraceCounters(scraper: Scraper, options: TraceCounterOptions): Promise<BackgroundTrace> {
  const metrics = new TraceMetrics(scraper.registry);
  const trace = startBackgroundTrace({
    drivers: traceDrivers(),
    vmPin: false,
    onRecord: (record) => metrics.observe(record.event),
    onLoss: (lost) => {
      metrics.lost(lost);
      options.onNote?.(`trace: the kernel dropped ${counted(lost, 'event', 'events')} so far (its buffer was full); rdmactl_trace_lost_events_total counts them`);
    },
    onCleanup: (report) => {
      if (report.instances.length + report.probes.length > 0) options.onNote?.(`trace: removed ${report.instances.length} instance(s) and ${report.probes.length} probe(s) left by a run that was killed`);
    },
  });
  try {
    await trace.started;
  } catch (err) {
    // The session's own reason, its exit code kept (3 unsupported, 4 permission).
    if (err instanceof RdmactlError) throw new RdmactlError(`--trace: tracing is unavailable: ${err.message}`, err.exitCode, err.hints, { cause: err });
    throw err;
  }
  return trace;
}

/** A session that fails while the exporter runs ends the exporter with its error: counters that silently stop are worse. */
function traceFailure(trace: BackgroundTrace | null): Promise<never> {
  if (trace === null) return new Promise<never>(() => undefined);
  return trace.ended.then(
    () => { throw new RdmactlError('--trace: the trace session ended on its own'); },
    (err: unknown) => { throw new RdmactlError(`--trace: tracing failed: ${err instanceof Error ? err.message : String(err)}`, 1, [], { cause: err }); },
  );
}

export interface ServeOptions extends ScraperOptions {
  listen: ListenTarget;
  /** exporter --trace. */
  trace?: TraceCounterOptions;
  limits?: ServerLimits;
  /** Called once listening, with the address actually bound (port 0 picks a free one), or unix:PATH. */
  onListening?: (url: string) => void;
  onError?: (err: unknown) => void;
}

/** Serve /metrics until SIGTERM/SIGINT/SIGHUP. */
export async function serve(options: ServeOptions): Promise<void> {
  const scraper = new Scraper({ keepHeap: true, runtimeMetrics: 'all', ...options });
  const where = describeListen(options.listen);
  if ('path' in options.listen) await prepareUnixSocket(options.listen.path);
  const signals = untilSignal(); // SIGINT, SIGTERM and SIGHUP
  // Traced before listening: nothing is served when --trace cannot run. The signals above are
  // caught already, so none can end the process between the instance's creation and its removal.
  let trace: BackgroundTrace | null = null;
  try {
    if (options.trace) trace = await startTraceCounters(scraper, options.trace);
  } catch (err) {
    signals.dispose();
    scraper.close();
    throw err;
  }
  let running: RunningServer;
  try {
    running = await startServer(scraper, options.listen, {
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.onError ? { onError: options.onError } : {}),
    });
  } catch (err) {
    await trace?.stop();
    signals.dispose();
    scraper.close();
    throw listenError(err, where);
  }
  const bound = running.address;
  options.onListening?.(typeof bound === 'string' ? `unix:${bound} (GET /metrics)` : `http://${formatAddress(bound.address, bound.port)}/metrics`);
  try {
    await Promise.race([signals.signalled, traceFailure(trace)]);
  } finally {
    // The trace first: its instance is removed whatever happens to the server's shutdown.
    await trace?.stop();
    signals.dispose();
    // A hung rdma would keep the process alive until its timeout: killed now.
    scraper.close();
    await running.close();
  }
}

export interface TextfileOptions extends ScraperOptions {
  dir: string;
  /** exporter --textfile DIR --trace. */
  trace?: TraceCounterOptions;
  intervalMs: number;
  onWritten?: (path: string) => void;
  onError?: (err: unknown) => void;
}

/** Write DIR/rdmactl.prom now and every interval until SIGTERM/SIGINT/SIGHUP. The first failure is fatal. */
export async function writeTextfiles(options: TextfileOptions): Promise<void> {
  const dir = openTextfileDir(options.dir);
  try {
    // A run killed mid-write (SIGKILL, power loss) left its temporary file: ours to remove.
    removeStaleTemporaries(dir);
    await writeUntilSignal(dir, options);
  } finally {
    closeTextfileDir(dir);
  }
}

async function writeUntilSignal(dir: TextfileDir, options: TextfileOptions): Promise<void> {
  // nodejs_* only: node_exporter serves its own process_* series beside this file (metrics.ts).
  const scraper = new Scraper({ keepHeap: true, runtimeMetrics: 'nodejs', ...options });
  const signals = untilSignal(); // SIGINT, SIGTERM and SIGHUP
  let stop = false;
  void signals.signalled.then(() => {
    stop = true;
  });
  let trace: BackgroundTrace | null = null;
  let failure: unknown = null;
  try {
    if (options.trace) trace = await startTraceCounters(scraper, options.trace);
    const traceFailed = traceFailure(trace).catch((err: unknown) => {
      failure = err;
      stop = true;
    });
    let first = true;
    while (!stop) {
      try {
        const exposition = await scraper.collectNow();
        if (stop) break;
        // Not inside `onWritten?.(…)`: an optional call skips evaluating its arguments.
        const written = writeTextfile(dir, exposition.text);
        options.onWritten?.(written);
      } catch (err) {
        // A directory we cannot write at the start is a setup error; later failures are reported and retried.
        if (first) throw err;
        options.onError?.(err);
      }
      first = false;
      // The timer keeps the process alive between writes; a signal clears it.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([signals.signalled, traceFailed, new Promise((resolve) => { timer = setTimeout(resolve, options.intervalMs); })]);
      clearTimeout(timer);
    }
    if (failure !== null) throw failure;
  } finally {
    await trace?.stop();
    signals.dispose();
    scraper.close();
  }
}

/**
 * One exposition of the whole machine, for `stat --format prometheus`: without the process_* and
 * nodejs_* series (of a process that ends with the command), and with the MR table as rdma gives it
 * (waited for, up to its timeout).
 */
export async function exposeOnce(options: ScraperOptions): Promise<string> {
  const scraper = new Scraper({ runtimeMetrics: 'none', ...options, mrTable: { waitMs: Infinity, ...options.mrTable } });
  try {
    return (await scraper.collectNow()).text;
  } finally {
    scraper.close();
  }
}
