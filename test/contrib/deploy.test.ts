// The shipped systemd unit and Kubernetes DaemonSet: systemd accepts the unit, the two capabilities
// it grants are what an unprivileged exporter needs to see another user's registrations (checked by
// running it with exactly those), and the DaemonSet asks for the same capabilities and port.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PORT } from '../../src/exporter/run.js';
import { BIN, ROOT, UNPRIVILEGED, unprivilegedUnavailable } from '../helpers/spawn.js';
import { rdmactlBin, holderSandbox } from '../held/helpers.js';
import { one, parseExposition } from '../exporter/helpers.js';

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
