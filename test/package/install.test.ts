// What a new user does: pack rdmactl, install the tarball globally (into a temporary prefix), run it,
// read its man page, find its completion scripts, keep a registration with `reg --detach` and release it. `npm install` fetches the dependencies from the
// registry, so this test needs the network; without it, it skips and says why.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCRIPT_PATHS, SHELLS } from '../../src/completion/index.js';
import { ROOT, builtOrThrow } from '../helpers/spawn.js';
import { networkFailure, packCheckout, runCommand as run } from '../helpers/pack.js';
import { becomeSubreaper, reap, running } from '../held/helpers.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const manMissing = spawnSync('man', ['--version']).error ? 'man is not installed (apt-get install man-db)' : null;
if (manMissing) console.warn(`SKIPPING the man page checks of the packed install: ${manMissing}`);

describe('npm pack + npm install -g of the tarball', () => {
  let work: string;
  let prefix: string;
  let installError: string | null = null;
  let installWarnings: string[] = [];

  beforeAll(() => {
    builtOrThrow();
    for (const shell of SHELLS) {
      if (!existsSync(join(ROOT, SCRIPT_PATHS[shell]))) throw new Error(`${SCRIPT_PATHS[shell]} is missing: run \`npm run build\``);
    }
    work = mkdtempSync(join(tmpdir(), 'rdmactl-pack-test-'));
    prefix = join(work, 'prefix');
    const tarball = packCheckout(work);
    const install = run(['npm', 'install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { timeout: 600_000, cwd: work });
    if (install.status !== 0) {
      installError = networkFailure(install.stderr);
      if (installError === null) throw new Error(`npm install -g of the tarball failed: ${install.stderr}`);
      console.warn(`SKIPPING the packed-install checks: ${installError}`);
    }
    installWarnings = install.stderr.split('\n').filter((line) => /ERESOLVE|peer dep|overriding peer|conflicting peer/i.test(line));
  }, 660_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const bin = (): string => join(prefix, 'bin', 'rdmactl');

  it('installs without a peer-dependency warning (ERESOLVE)', (ctx) => {
    if (installError) return ctx.skip(installError);
    expect(installWarnings).toEqual([]);
  });

  it('installs a working rdmactl: --version and stat --json', (ctx) => {
    if (installError) return ctx.skip(installError);
    const version = run([bin(), '--version'], { cwd: work });
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe(pkg.version);
    const stat = run([bin(), 'stat', '--json'], { cwd: work });
    expect(stat.status, stat.stderr).toBe(0);
    const doc = JSON.parse(stat.stdout) as { system: { memTotalBytes: number }; scannedProcesses: number };
    const memTotalKb = Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
    expect(doc.system.memTotalBytes).toBe(memTotalKb * 1024);
    expect(doc.scannedProcesses).toBeGreaterThan(1);
  });

  it.skipIf(manMissing !== null)(`installs rdmactl(1) where man finds it${manMissing ? ` (skipped: ${manMissing})` : ''}`, (ctx) => {
    if (installError) return ctx.skip(installError);
    const env = { ...process.env, MANPATH: join(prefix, 'share', 'man') };
    const where = run(['man', '-w', 'rdmactl'], { env, cwd: work });
    expect(where.status, where.stderr).toBe(0);
    // npm links PREFIX/share/man/man1/rdmactl.1 to the package's page; man reports the link's target.
    const linked = join(prefix, 'share', 'man', 'man1', 'rdmactl.1');
    expect(existsSync(linked), linked).toBe(true);
    expect(realpathSync(where.stdout.trim())).toBe(realpathSync(linked));
    const page = run(['man', '-P', 'cat', 'rdmactl'], { env: { ...env, MANWIDTH: '100', MAN_KEEP_FORMATTING: '' }, cwd: work });
    expect(page.status, page.stderr).toBe(0);
    expect(page.stdout).toMatch(/^NAME\n\s+rdmactl/m);
    expect(page.stdout).toMatch(/^COMPLETION$/m);
  });

  it('reg --detach runs the installed holder program; ls shows it; dereg releases it', async (ctx) => {
    if (installError) return ctx.skip(installError);
    becomeSubreaper(); // the holder outlives its starter: reap it here, not as a zombie of PID 1
    const runtime = mkdtempSync(join(tmpdir(), 'rdmactl-pack-held-'));
    const env = { ...process.env, XDG_RUNTIME_DIR: runtime };
    let pid: number | null = null;
    try {
      const made = run([bin(), 'reg', '1M', '--backend', 'uring', '--detach', '--json'], { env, cwd: work });
      expect(made.status, made.stderr).toBe(0);
      const record = JSON.parse(made.stdout) as { id: string; pid: number };
      pid = record.pid;
      const installed = realpathSync(join(prefix, 'lib', 'node_modules', pkg.name));
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      expect(argv[1]).toBe(join(installed, 'dist', 'held', 'holderMain.cjs')); // the bundle the build made, shipped
      expect(Number(/^VmPin:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1])).toBe(1024);
      const listed = run([bin(), 'ls', '--source', 'held', '--json'], { env, cwd: work });
      expect(listed.status, listed.stderr).toBe(0);
      expect((JSON.parse(listed.stdout) as { registrations: Array<{ pid: number; handle: string }> }).registrations).toEqual([
        expect.objectContaining({ pid, handle: record.id }),
      ]);
      const released = run([bin(), 'dereg', record.id], { env, cwd: work });
      expect(released.status, released.stderr).toBe(0);
      expect(await reap(pid)).toMatchObject({ exitCode: 0 });
      pid = null;
    } finally {
      if (pid !== null && running(pid)) process.kill(pid, 'SIGKILL');
      if (pid !== null) await reap(pid).catch(() => null);
      rmSync(runtime, { recursive: true, force: true });
    }
  });

  it('ships the completion scripts at the conventional paths, as the installed rdmactl prints them', (ctx) => {
    if (installError) return ctx.skip(installError);
    const installed = join(prefix, 'lib', 'node_modules', pkg.name);
    for (const shell of SHELLS) {
      const file = join(installed, SCRIPT_PATHS[shell]);
      expect(existsSync(file), file).toBe(true);
      const printed = run([bin(), 'completion', shell], { cwd: work });
      expect(printed.status, printed.stderr).toBe(0);
      expect(readFileSync(file, 'utf8')).toBe(printed.stdout);
    }
  });
});
