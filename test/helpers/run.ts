// Run rdmactl in-process (like a shell would, minus the process) and capture what it prints.
import { run } from '../../src/cli.js';
import type { Context } from '../../src/lib/context.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function rdmactl(...args: string[]): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const ctx: Context = {
    stdout: { write: (t) => { stdout += t; } },
    stderr: { write: (t) => { stderr += t; } },
    env: { ...process.env, RDMACTL_DEBUG: '' },
    stdoutIsTty: false,
  };
  const code = await run(args, ctx);
  return { code, stdout, stderr };
}

/** The JSON documents printed one per line. */
export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
}
