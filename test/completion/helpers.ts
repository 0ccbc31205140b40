// Shared set-up for the completion tests: the scripts as `rdmactl completion SHELL` prints them, a
// PATH on which `rdmactl` is the built binary (the scripts ask it for live values, like an installed
// copy), a live process to complete as a pid, and a held registration to complete as a dereg id.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { makeProgram } from '../../src/program.js';
import type { Context } from '../../src/lib/context.js';
import { BIN, builtOrThrow } from '../helpers/spawn.js';
import { becomeSubreaper, killAndReap, rdmactlBin, running, tempRuntime } from '../held/helpers.js';

/** Whether SHELL can run here; the reason to skip (printed loudly) when not. */
export function shellMissing(shell: string, pkg = shell): string | null {
  const probe = spawnSync(shell, ['-c', 'exit 0']);
  if (probe.error || probe.status !== 0) return `${shell} is not installed (apt-get install ${pkg})`;
  return null;
}

/** The program with every command, read by the tests independently of the completion code. */
export async function fullProgram(): Promise<Command> {
  const quiet = { write: () => {} };
  const ctx: Context = { stdout: quiet, stderr: quiet, env: {}, stdoutIsTty: false, euid: process.geteuid?.() ?? 0 };
  return makeProgram(ctx);
}

export function commandOf(program: Command, name: string): Command {
  const command = program.commands.find((c) => c.name() === name);
  if (!command) throw new Error(`no command ${name}`);
  return command;
}

/** Choices of `--long` of `command`, as commander checks them. */
export function choicesOf(command: Command, long: string): readonly string[] {
  const option = command.options.find((o) => o.long === long);
  if (!option?.argChoices) throw new Error(`${command.name()} ${long} has no choices`);
  return option.argChoices;
}

export interface Fixture {
  dir: string;
  /** Environment for the shells: rdmactl on PATH, a private XDG_RUNTIME_DIR. */
  env: NodeJS.ProcessEnv;
  script(shell: 'bash' | 'zsh' | 'fish'): string;
  /** A live process of the test (a `sleep`), and its comm as /proc says. */
  sleeper: { pid: number; comm: string };
  /** A registration held by `rdmactl reg 1M --backend mlock --detach`. */
  held: { id: string; pid: number };
  /** Releases the held registration with `rdmactl dereg`; true if it was released. */
  dereg(): boolean;
  cleanup(): Promise<void>;
}

export async function setUp(): Promise<Fixture> {
  builtOrThrow();
  becomeSubreaper();
  const dir = mkdtempSync(join(tmpdir(), 'rdmactl-completion-test-'));
  symlinkSync(BIN, join(dir, 'rdmactl'));
  const runtime = tempRuntime();
  const env: NodeJS.ProcessEnv = { ...runtime.env, PATH: `${dir}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, HOME: dir, RDMACTL_DEBUG: '' };
  const scripts = new Map<string, string>();
  const holders = new Set<number>();
  let sleeper: ChildProcess | null = null;
  const cleanup = async (): Promise<void> => {
    if (sleeper && sleeper.exitCode === null) sleeper.kill('SIGKILL');
    await killAndReap(holders);
    runtime.cleanup();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const shell of ['bash', 'zsh', 'fish'] as const) {
      const result = rdmactlBin(['completion', shell], env);
      if (result.status !== 0) throw new Error(`rdmactl completion ${shell}: ${result.stderr}`);
      const path = join(dir, shell === 'zsh' ? '_rdmactl' : `rdmactl.${shell}`);
      writeFileSync(path, result.stdout);
      scripts.set(shell, path);
    }
    sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    const pid = sleeper.pid!;
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const reg = rdmactlBin(['reg', '1M', '--backend', 'mlock', '--detach', '--json'], env);
    if (reg.status !== 0) throw new Error(`reg --detach failed: ${reg.stderr}`);
    const record = JSON.parse(reg.stdout.trim().split('\n')[0]!) as { id: string; pid: number };
    holders.add(record.pid);
    if (!running(record.pid)) throw new Error(`holder ${record.pid} is not running`);
    return {
      dir,
      env,
      script: (shell) => scripts.get(shell)!,
      sleeper: { pid, comm },
      held: { id: record.id, pid: record.pid },
      dereg: () => rdmactlBin(['dereg', record.id], env).status === 0,
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
