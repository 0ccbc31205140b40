// Run rdmactl in-process (like a shell would, minus the process) and capture what it prints.
import { run } from '../../src/cli.js';
import type { Context } from '../../src/lib/context.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Pretend stdout is a terminal (default: not, as in a pipeline). */
  tty?: boolean;
  /** Variables added to the environment. */
  env?: NodeJS.ProcessEnv;
}

export async function rdmactlWith(options: RunOptions, ...args: string[]): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const ctx: Context = {
    stdout: { write: (t) => { stdout += t; } },
    stderr: { write: (t) => { stderr += t; } },
    env: { ...process.env, RDMACTL_DEBUG: '', ...options.env },
    stdoutIsTty: options.tty ?? false,
    euid: process.geteuid?.() ?? 0,
  };
  const code = await run(args, ctx);
  return { code, stdout, stderr };
}

export function rdmactl(...args: string[]): Promise<RunResult> {
  return rdmactlWith({}, ...args);
}

/** The JSON documents printed one per line. */
export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
}
