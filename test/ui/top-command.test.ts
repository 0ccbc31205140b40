// `rdmactl top` as a command: --json stream, the non-terminal refusal, option checks, and that only
// the dashboard loads ink/React (a module-resolution hook records what each run loads).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, rdmactl } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { BIN, ROOT, builtOrThrow, exited, runSync, startRdmactl } from '../helpers/spawn.js';

describe('top --json and the non-terminal case', () => {
  it('top --json --count 2 --interval 200ms prints 2 NDJSON snapshots with the keys of stat --json --interval', async () => {
    const started = performance.now();
    const top = await rdmactl('top', '--json', '--count', '2', '--interval', '200ms');
    const elapsed = performance.now() - started;
    expect(top.code, top.stderr).toBe(0);
    expect(top.stdout.endsWith('\n')).toBe(true);
    const lines = top.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    const snapshots = jsonLines(top.stdout);
    const stat = JSON.parse((await rdmactl('stat', '--json', '--interval', '200ms', '--count', '1')).stdout) as Record<string, unknown>;
    expect(Object.keys(stat).slice(0, 3)).toEqual(['host', 'schema', 'time']);
    for (const snapshot of snapshots) {
      expect(Object.keys(snapshot)).toEqual(Object.keys(stat));
      expect(Object.keys(snapshot['system'] as object)).toEqual(Object.keys(stat['system'] as object));
      const processes = snapshot['processes'] as Array<Record<string, unknown>>;
      const statProcesses = stat['processes'] as Array<Record<string, unknown>>;
      if (processes.length > 0 && statProcesses.length > 0) expect(Object.keys(processes[0]!)).toEqual(Object.keys(statProcesses[0]!));
    }
    // One snapshot per interval: the second comes about 200 ms after the first.
    expect(elapsed).toBeGreaterThanOrEqual(190);
    const at = snapshots.map((s) => Date.parse(s['scannedAt'] as string));
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(150);
  });

  it('top without a terminal exits 2 with a one-line hint to use top --json', async () => {
    const inProcess = await rdmactl('top');
    expect(inProcess.code).toBe(2);
    expect(inProcess.stdout).toBe('');
    expect(inProcess.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(inProcess.stderr).toContain('top --json');

    builtOrThrow();
    const real = runSync([process.execPath, BIN, 'top']);
    expect(real.status).toBe(2);
    expect(real.stdout).toBe('');
    expect(real.stderr).toMatch(/^rdmactl: top needs a terminal .*'rdmactl top --json'\n$/);
  });

  it('top --json --sort -KEY sorts descending, KEY and +KEY ascending (as stat --sort), by what the kernel counts', async () => {
    const processesOf = async (...args: string[]): Promise<Array<{ pid: number; uid: number; lockedBytes: number }>> => {
      const top = await rdmactl('top', '--json', '--count', '1', '--interval', '100ms', ...args);
      expect(top.code, top.stderr).toBe(0);
      return jsonLines(top.stdout)[0]!['processes'] as Array<{ pid: number; uid: number; lockedBytes: number }>;
    };
    // Two processes of ours that lock memory, so there is always something to order; the rest is whatever runs here.
    const holders = [await startRdmactl(['reg', '1M', '--backend', 'mlock', '--json']), await startRdmactl(['reg', '2M', '--backend', 'mlock', '--json'])];
    try {
      for (const [args, direction] of [[['--sort', '-pid'], 'descending'], [['--sort=+pid'], 'ascending'], [['-s', 'pid'], 'ascending']] as const) {
        const pids = (await processesOf(...args)).map((p) => p.pid);
        expect(pids, args.join(' ')).toEqual(expect.arrayContaining(holders.map((h) => h.child.pid)));
        expect(pids, args.join(' ')).toEqual([...pids].sort((a, b) => (direction === 'descending' ? b - a : a - b)));
      }
      // Any column of stat's, several of them, and --reverse, as stat --sort takes them.
      const byUserThenPid = await processesOf('--sort', 'uid,-pid');
      expect(byUserThenPid).toEqual([...byUserThenPid].sort((a, b) => a.uid - b.uid || b.pid - a.pid));
      const reversed = await processesOf('--sort', 'uid,-pid', '--reverse');
      expect(reversed).toEqual([...reversed].sort((a, b) => b.uid - a.uid || a.pid - b.pid));
      const rows = await processesOf('--sort', 'locked');
      const locked = rows.map((p) => p.lockedBytes);
      expect(locked).toEqual([...locked].sort((a, b) => a - b));
      // Our two in the order of their VmLck (1 MiB before 2 MiB), as /proc/PID/status has it.
      const [small, large] = holders.map((h) => rows.findIndex((p) => p.pid === h.child.pid));
      expect(statusKb(holders[0]!.child.pid!, 'VmLck')).toBeLessThan(statusKb(holders[1]!.child.pid!, 'VmLck'));
      expect(small).toBeLessThan(large!);
    } finally {
      for (const { child } of holders) {
        child.kill('SIGTERM');
        await exited(child);
      }
    }
  });

  it('bad --sort names what was wrong and the keys, as stat --sort does', async () => {
    for (const value of ['size', '-size', '--pid', '', 'pid,size']) {
      const result = await rdmactl('top', '--json', '--sort', value);
      const stat = await rdmactl('stat', '--json', '--sort', value);
      expect(result.code, value).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/^rdmactl: (unknown key '.*' for --sort: valid keys are pid, user, uid, comm, pinnedBytes, |invalid --sort '': give a comma list)/);
      expect(result.stderr, value).toBe(stat.stderr);
    }
  });

  it('bad --interval and --count are usage errors', async () => {
    for (const args of [['--interval', '50ms'], ['--interval', 'soon'], ['--count', '0'], ['--count', 'x'], ['--sort', 'size']]) {
      const result = await rdmactl('top', '--json', ...args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
    }
  });
});

describe('only the dashboard loads ink and React', () => {
  let dir: string;
  let hooks: string;
  beforeAll(() => {
    builtOrThrow();
    dir = mkdtempSync(join(tmpdir(), 'rdmactl-top-load-'));
    writeFileSync(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(process.env.RDMACTL_LOAD_LOG, result.url + '\\n');
  return result;
}
`);
    hooks = join(dir, 'register.mjs');
    // ES module loads go through the resolve hook; require() (bin/rdmactl requires bin/bundle-loader.cjs,
    // which runs the CommonJS bundle dist/rdmactl.cjs, and the bundle requires packages) through
    // Module._resolveFilename.
    writeFileSync(hooks, `import { register } from 'node:module';
import { createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
register(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});
const Module = createRequire(import.meta.url)('node:module');
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const file = resolveFilename.apply(this, args);
  if (isAbsolute(file)) appendFileSync(process.env.RDMACTL_LOAD_LOG, pathToFileURL(file).href + '\\n');
  return file;
};
`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function loaded(argv: string[], name: string): string[] {
    const log = join(dir, `${name}.log`);
    writeFileSync(log, '');
    const env = { ...process.env, NODE_OPTIONS: `--import=${pathToFileURL(hooks).href}`, RDMACTL_LOAD_LOG: log };
    const result = runSync(argv, { env });
    expect(result.status, result.stderr).toBe(0);
    return readFileSync(log, 'utf8').split('\n').filter(Boolean);
  }

  const dashboardModules = (urls: string[]) => urls.filter((u) => /\/node_modules\/(ink|react|react-reconciler|yoga-layout)\/|\/dist\/ui\/(dashboard|hooks)/.test(u));

  it('--version, stat --json and top --json do not load ink, React or the dashboard', () => {
    for (const [name, args] of [['version', ['--version']], ['stat', ['stat', '--json']], ['topjson', ['top', '--json', '--count', '1']]] as const) {
      const urls = loaded([process.execPath, BIN, ...args], name);
      expect(urls.some((u) => u.endsWith('/dist/program.js') || u.endsWith('/bin/bundle-loader.cjs')), `${name}: the hooks saw the program load`).toBe(true);
      expect(dashboardModules(urls), name).toEqual([]);
    }
  });

  it('the dashboard itself does load them (the check can see them)', () => {
    const script = runSync(['sh', '-c', 'command -v script']);
    if (script.status !== 0) {
      console.warn('SKIPPING the positive control of the load check: script(1) is missing (install util-linux)');
      return;
    }
    const urls = loaded(['script', '-qfec', `stty cols 100 rows 30; ${process.execPath} ${BIN} top --count 1`, '/dev/null'], 'dashboard');
    expect(dashboardModules(urls).length).toBeGreaterThan(0);
    expect(urls.some((u) => u.startsWith(pathToFileURL(ROOT).href))).toBe(true);
  });
});
