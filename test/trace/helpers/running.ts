// A child process of a trace test, with its output gathered as it comes, and a wait for a condition
// on it: shared by the tests that run `rdmactl trace` beside the programs it traces.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function start(argv: string[], env?: NodeJS.ProcessEnv): Running {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'pipe', ...(env ? { env } : {}) });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

export async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
