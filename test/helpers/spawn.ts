// Run the built rdmactl (or node code) as a real child process, optionally without privileges.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = `${ROOT}bin/rdmactl`;

/** Prefix that drops to nobody without CAP_IPC_LOCK, so RLIMIT_MEMLOCK is enforced. */
export const UNPRIVILEGED = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'];

/** Why an unprivileged run cannot happen here, or null when it can. */
export function unprivilegedUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'tests must run as root to drop to uid 65534 with setpriv';
  const probe = spawnSync(UNPRIVILEGED[0]!, [...UNPRIVILEGED.slice(1), process.execPath, '-e', `require('fs').accessSync(${JSON.stringify(`${ROOT}dist/main.js`)})`]);
  if (probe.error) return `setpriv is not available (${probe.error.message}); install util-linux`;
  if (probe.status !== 0) return `uid 65534 cannot read this checkout (${ROOT}); clone it somewhere world-readable`;
  return null;
}

export function builtOrThrow(): void {
  try { accessSync(`${ROOT}dist/main.js`, constants.R_OK); } catch { throw new Error('dist/ is missing: run `npm run build` (npm test does it)'); }
}

export interface SyncResult { status: number | null; stdout: string; stderr: string }

export function runSync(argv: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): SyncResult {
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: options.env ?? process.env, input: options.input, timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Start the real rdmactl; resolves with the child and its first stdout line (e.g. the `registered` record). */
export function startRdmactl(args: string[], prefix: string[] = []): Promise<{ child: ChildProcessWithoutNullStreams; firstLine: string; rest: () => string; stderr: () => string }> {
  const argv = [...prefix, process.execPath, BIN, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'pipe' });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        child.stdout.off('data', onData);
        const firstLine = out.slice(0, nl);
        let rest = out.slice(nl + 1);
        child.stdout.on('data', (more: Buffer) => { rest += more.toString(); });
        resolve({ child, firstLine, rest: () => rest, stderr: () => err });
      }
    };
    child.stdout.on('data', onData);
    child.on('exit', (code) => reject(new Error(`rdmactl exited (${code}) before printing a line: ${err}`)));
  });
}

export function exited(child: ChildProcessWithoutNullStreams): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/**
 * Whether the kernel charges an io_uring ring's own pages, measured without rdmactl's probe: as uid
 * 65534 under an 8 KiB RLIMIT_MEMLOCK, `reg 8K --backend uring` fits exactly unless the ring's pages
 * are charged too. null when that cannot run here (the reason is unprivilegedUnavailable()'s).
 */
export function measuredRingsCharged(): boolean | null {
  if (unprivilegedUnavailable() !== null) return null;
  const r = runSync(['/bin/sh', '-c', 'ulimit -l 8 && exec "$@"', 'sh', ...UNPRIVILEGED, process.execPath, BIN, 'reg', '8K', '--backend', 'uring', '--for', '1ms', '--json'],
    { env: { ...process.env, XDG_RUNTIME_DIR: '' } });
  if (r.status === 0) return false;
  if (/ENOMEM|RLIMIT_MEMLOCK/.test(r.stderr)) return true;
  throw new Error(`reg 8K --backend uring as uid 65534 under an 8 KiB limit failed for another reason (exit ${r.status}): ${r.stderr}`);
}
