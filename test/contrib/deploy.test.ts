// The shipped systemd unit and Kubernetes DaemonSet: systemd accepts the unit, the two capabilities
// it grants are what an unprivileged exporter needs to see another user's registrations (checked by
// running it with exactly those), and the DaemonSet asks for the same capabilities and port. The
// Containerfile's steps are run as far as this machine allows: its npm pack and npm install -g in a
// temporary prefix, then its ENTRYPOINT; the apt-get step and the image build say why they did not run.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_PORT } from '../../src/exporter/run.js';
import { BIN, ROOT, UNPRIVILEGED, unprivilegedUnavailable } from '../helpers/spawn.js';
import { rdmactlBin, holderSandbox } from '../held/helpers.js';
import { one, parseExposition } from '../exporter/helpers.js';
import { networkFailure, runCommand } from '../helpers/pack.js';

const UNIT = `${ROOT}contrib/systemd/rdmactl-exporter.service`;
const DAEMONSET = `${ROOT}contrib/kubernetes/rdmactl-exporter.daemonset.yaml`;
const noAnalyze = spawnSync('systemd-analyze', ['--version']).error ? 'systemd-analyze is not installed (apt-get install systemd)' : null;
const noYaml = spawnSync('python3', ['-c', 'import yaml']).status !== 0 ? 'python3 with PyYAML is not installed (apt-get install python3-yaml)' : null;
const noUnprivileged = unprivilegedUnavailable();
for (const reason of [noAnalyze, noYaml, noUnprivileged]) if (reason) console.warn(`SKIPPED a deployment check: ${reason}`);

const unit = readFileSync(UNIT, 'utf8');
function unitValues(key: string): string[] {
  return [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
}
/** CAP_SYS_PTRACE → sys_ptrace (setpriv's spelling). */
const unitCaps = unitValues('AmbientCapabilities').join(' ').split(/\s+/).filter(Boolean);

describe('contrib/systemd/rdmactl-exporter.service', () => {
  const { runtime, holders, dirs } = holderSandbox();

  it('systemd-analyze verify accepts it (ExecStart pointed at this checkout)', { skip: noAnalyze !== null }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-unit-test-'));
    dirs.push(dir);
    const copy = join(dir, 'rdmactl-exporter.service');
    writeFileSync(copy, unit.replace('/usr/bin/rdmactl', BIN));
    const result = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' });
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
  });

  it('is hardened: no write access, its own user, only the capabilities it grants', () => {
    expect(unitValues('ProtectSystem')).toEqual(['strict']);
    expect(unitValues('ReadWritePaths')).toEqual([]);
    expect(unitValues('DynamicUser')).toEqual(['yes']);
    expect(unitValues('NoNewPrivileges')).toEqual(['yes']);
    expect(unitCaps.sort()).toEqual(['CAP_DAC_READ_SEARCH', 'CAP_SYS_PTRACE']);
    expect(unitValues('CapabilityBoundingSet').join(' ').split(/\s+/).sort()).toEqual(unitCaps);
    expect(unitValues('Environment')).toContain(`RDMACTL_LISTEN=127.0.0.1:${DEFAULT_PORT}`);
  });

  it('with exactly those capabilities, uid 65534 sees root\'s io_uring registration; without them it does not', { skip: noUnprivileged !== null }, () => {
    const held = JSON.parse(rdmactlBin(['reg', '2M', '--backend', 'uring', '--detach', '--json'], runtime.env).stdout) as { pid: number };
    holders.push(held.pid);
    const caps = unitCaps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
    const withCaps = UNPRIVILEGED.map((a) => (a === '--inh-caps=-all' ? `--inh-caps=-all,${caps}` : a)).concat(`--ambient-caps=-all,${caps}`);
    const scrape = (prefix: string[]) => {
      const result = rdmactlBin(['stat', '--format', 'prometheus'], runtime.env, prefix);
      expect(result.status, result.stderr).toBe(0);
      return parseExposition(result.stdout);
    };
    expect(one(scrape(withCaps), 'rdmactl_process_io_uring_bytes', { pid: String(held.pid) })).toBe(2 * 1024 * 1024);
    expect(one(scrape(UNPRIVILEGED), 'rdmactl_process_io_uring_bytes', { pid: String(held.pid) })).toBe(0);
  });
});

describe('contrib/kubernetes/rdmactl-exporter.daemonset.yaml', () => {
  it('runs with hostPID, a read-only root, the unit\'s two capabilities and the default port', { skip: noYaml !== null }, () => {
    const result = spawnSync('python3', ['-c', 'import json,sys,yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))', DAEMONSET], { encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    const docs = JSON.parse(result.stdout) as Array<Record<string, any>>;
    const daemonSet = docs.find((d) => d['kind'] === 'DaemonSet')!;
    const pod = daemonSet['spec']['template']['spec'];
    expect(pod['hostPID']).toBe(true);
    const container = pod['containers'][0];
    expect(container['securityContext']['readOnlyRootFilesystem']).toBe(true);
    expect(container['securityContext']['allowPrivilegeEscalation']).toBe(false);
    expect(container['securityContext']['capabilities']['drop']).toEqual(['ALL']);
    expect([...container['securityContext']['capabilities']['add']].sort()).toEqual(unitCaps.map((c) => c.replace(/^CAP_/, '')).sort());
    expect(container['ports'][0]['containerPort']).toBe(DEFAULT_PORT);
    expect(container['args']).toContain(`0.0.0.0:${DEFAULT_PORT}`);
  });
});

// ---- contrib/kubernetes/Containerfile -------------------------------------------------------------

const CONTAINERFILE = `${ROOT}contrib/kubernetes/Containerfile`;

interface Instruction { keyword: string; args: string }
interface Stage { from: string; name: string | null; steps: Instruction[] }

/** The Containerfile's stages and instructions: comments dropped, `\` continuations joined. */
function parseContainerfile(text: string): Stage[] {
  const logical = text.split('\n').filter((line) => !/^\s*#/.test(line)).join('\n').replace(/\\\n/g, ' ');
  const stages: Stage[] = [];
  for (const line of logical.split('\n')) {
    const m = /^\s*([A-Za-z]+)\s+(.*?)\s*$/.exec(line);
    if (!m) continue;
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!.replace(/\s+/g, ' ');
    if (keyword === 'FROM') {
      const from = /^(\S+)(?: AS (\S+))?$/i.exec(args)!;
      stages.push({ from: from[1]!, name: from[2] ?? null, steps: [] });
    } else {
      stages.at(-1)!.steps.push({ keyword, args });
    }
  }
  return stages;
}

/** A container engine that can build here, or why there is none. */
function containerEngine(): { argv: string[] } | { missing: string } {
  for (const engine of ['podman', 'buildah', 'docker']) {
    const probe = spawnSync(engine, ['info'], { encoding: 'utf8', timeout: 30_000 });
    if (probe.error) continue;
    if (probe.status === 0) return { argv: engine === 'buildah' ? ['buildah', 'bud'] : [engine, 'build'] };
    return { missing: `${engine} is installed but cannot build here: ${(probe.stderr.trim().split('\n').at(-1) ?? '').trim()}` };
  }
  return { missing: 'no container engine (podman, buildah or docker) is installed' };
}

describe('contrib/kubernetes/Containerfile', () => {
  const stages = parseContainerfile(readFileSync(CONTAINERFILE, 'utf8'));
  const packStage = stages.find((s) => s.steps.some((step) => step.keyword === 'RUN' && /\bnpm pack\b/.test(step.args)));
  const final = stages.at(-1)!;
  const dirs: string[] = [];
  afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }); });

  it('builds from this checkout: a stage packs it, the image installs that tarball, never a registry version', () => {
    expect(stages.length).toBe(2);
    expect(packStage?.name).toBeTruthy();
    expect(packStage!.steps.map((s) => `${s.keyword} ${s.args}`)).toContain('COPY . .');
    const copied = final.steps.find((s) => s.keyword === 'COPY' && s.args.startsWith(`--from=${packStage!.name} `));
    expect(copied, 'the final stage copies the packed tarball from the pack stage').toBeDefined();
    const installs = final.steps.filter((s) => s.keyword === 'RUN' && /\bnpm install -g\b/.test(s.args));
    expect(installs).toHaveLength(1);
    const [, into] = copied!.args.split(' ').slice(1);
    expect(installs[0]!.args).toContain(`${into}rdmactl-*.tgz`);
    for (const stage of stages) for (const step of stage.steps) expect(step.args).not.toMatch(/\brdmactl@/);
    expect(JSON.parse(final.steps.find((s) => s.keyword === 'ENTRYPOINT')!.args)).toEqual(['rdmactl', 'exporter']);
    expect(JSON.parse(final.steps.find((s) => s.keyword === 'CMD')!.args)).toEqual(['--listen', `0.0.0.0:${DEFAULT_PORT}`]);
    // The context is the checkout: what the pack stage rebuilds stays out of it.
    const ignored = readFileSync(`${ROOT}.dockerignore`, 'utf8').split('\n').map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist']));
  });

  it('its npm pack and npm install -g steps, run in a temporary prefix, install an rdmactl whose ENTRYPOINT answers', (ctx) => {
    // Paths inside the image are mapped into a temporary directory; npm's global prefix and cache
    // (which the step cleans) are temporary too.
    const work = mkdtempSync(join(tmpdir(), 'rdmactl-containerfile-test-'));
    dirs.push(work);
    const inImage = (text: string, map: ReadonlyArray<[string, string]>): string => map.reduce((t, [from, to]) => t.split(from).join(to), text);
    const copied = final.steps.find((s) => s.keyword === 'COPY' && s.args.startsWith('--from='))!;
    const [, fromDir, intoDir] = copied.args.split(' ');
    const map: Array<[string, string]> = [[intoDir!.replace(/\/$/, ''), join(work, 'into')], [fromDir!.replace(/\/$/, ''), join(work, 'pkg')]];
    const env = { ...process.env, npm_config_prefix: join(work, 'prefix'), npm_config_cache: join(work, 'cache') };
    const sh = (script: string, cwd: string) => runCommand(['sh', '-ec', script], { cwd, env, timeout: 600_000 });

    // Pack stage: npm ci would install and build afresh; this checkout is built already (npm run build),
    // so only its npm pack runs, on the checkout as the context holds it.
    console.warn('NOT RUN here: the pack stage\'s `npm ci` (it would reinstall this checkout\'s node_modules; `npm run build` made dist/)');
    const packRun = packStage!.steps.find((s) => s.keyword === 'RUN' && /\bnpm pack\b/.test(s.args))!;
    const packSteps = packRun.args.split(' && ').filter((part) => !/^npm ci\b/.test(part));
    const packed = sh(inImage(packSteps.join(' && '), map), ROOT);
    expect(packed.status, packed.stderr).toBe(0);
    const tarballs = readdirSync(join(work, 'pkg')).filter((f) => /^rdmactl-.*\.tgz$/.test(f));
    expect(tarballs).toHaveLength(1);

    // Final stage: the COPY, then the RUN that installs; apt-get would change this machine.
    for (const step of final.steps.filter((s) => s.keyword === 'RUN' && /\bapt-get\b/.test(s.args))) {
      console.warn(`NOT RUN here (it would change this machine): RUN ${step.args}`);
    }
    mkdirSync(join(work, 'into'));
    writeFileSync(join(work, 'into', tarballs[0]!), readFileSync(join(work, 'pkg', tarballs[0]!)));
    const install = final.steps.find((s) => s.keyword === 'RUN' && /\bnpm install -g\b/.test(s.args))!;
    const installed = sh(inImage(install.args, map), work);
    if (installed.status !== 0) {
      const offline = networkFailure(installed.stderr);
      if (offline === null) throw new Error(`the Containerfile's npm install -g failed: ${installed.stderr}`);
      console.warn(`SKIPPING the rest of the Containerfile run: ${offline}`);
      return ctx.skip(offline);
    }
    expect(existsSync(join(work, 'into')), 'the step removes the copied tarball').toBe(false);
    const bin = join(work, 'prefix', 'bin');
    const entrypoint = JSON.parse(final.steps.find((s) => s.keyword === 'ENTRYPOINT')!.args) as string[];
    const version = runCommand([join(bin, entrypoint[0]!), '--version'], { cwd: work });
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }).version);
    const help = runCommand([join(bin, entrypoint[0]!), ...entrypoint.slice(1), '--help'], { cwd: work });
    expect(help.status, help.stderr).toBe(0);
    const cmd = JSON.parse(final.steps.find((s) => s.keyword === 'CMD')!.args) as string[];
    for (const option of cmd.filter((a) => a.startsWith('--'))) expect(help.stdout).toContain(option);
  }, 660_000);

  it('builds as an image (podman, buildah or docker)', (ctx) => {
    const engine = containerEngine();
    if ('missing' in engine) {
      console.warn(`SKIPPING the image build of contrib/kubernetes/Containerfile: ${engine.missing}`);
      return ctx.skip(engine.missing);
    }
    const tag = `localhost/rdmactl-containerfile-test:${process.pid}`;
    const built = runCommand([...engine.argv, '-t', tag, '-f', CONTAINERFILE, ROOT], { timeout: 1_800_000 });
    expect(built.status, built.stderr).toBe(0);
  }, 1_860_000);
});
