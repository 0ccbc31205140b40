// The shipped Grafana dashboard: its structure (variables, ids, grid, one datasource variable and no
// hard-coded uid), every expression accepted by promtool, and every panel's query run through a real
// Prometheus that scrapes a real exporter while this test holds pinned and locked memory, some of it
// in memory cgroups of its own. Variables are substituted as Grafana would; each panel must return
// data, except where this machine lacks what the panel shows (an RDMA device, the rdma controller):
// then the query must still be valid and the data check is skipped, saying why.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExporterMetrics } from '../../src/exporter/metrics.js';
import { memoryCgroupPlacement, removeCgroups, startInCgroup } from '../helpers/cgroup.js';
import { statusKb } from '../helpers/proc.js';
import { ROOT, builtOrThrow, exited, startRdmactl } from '../helpers/spawn.js';
import { becomeSubreaper, killAndReap, rdmactlBin, tempRuntime } from '../held/helpers.js';
import { httpGet, missingBinary, promtool, startExporter, startPrometheus, until, type Started } from '../exporter/helpers.js';

const DASHBOARD = `${ROOT}contrib/grafana/rdmactl.json`;
const MiB = 1024 * 1024;
/**
 * RLIMIT_MEMLOCK (soft and hard) given to the detached holder, so its headroom is finite whatever the
 * shell's is; lowering a hard limit needs no privilege, so it is kept small.
 */
const HOLDER_MEMLOCK = 6 * MiB;

interface DatasourceRef { type: string; uid: string }
interface Target { refId: string; expr: string; datasource?: DatasourceRef }
interface GridPos { x: number; y: number; w: number; h: number }
interface Panel { id: number; type: string; title: string; gridPos: GridPos; datasource?: DatasourceRef; targets?: Target[] }
interface Variable { name: string; type: string; query: string; datasource?: DatasourceRef; multi?: boolean; includeAll?: boolean }
interface Dashboard { schemaVersion: number; uid: string; title: string; templating: { list: Variable[] }; panels: Panel[] }

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const contentPanels = dashboard.panels.filter((p) => p.type !== 'row');
const VARIABLE_DATASOURCE: DatasourceRef = { type: 'prometheus', uid: '${datasource}' };

/** The dashboard's variables as Grafana substitutes them for one job and one instance. */
interface Substitution { job: string; instance: string }

/** Grafana's regex formatting of a multi-value variable: regex metacharacters escaped, inside a PromQL string. */
function regexValue(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\/g, '\\\\');
}

/** `expr` with every variable replaced by a concrete value (Grafana's defaults for a 1 h range). */
function substitute(expr: string, values: Substitution): string {
  const out = expr
    .replace(/\$__rate_interval\b|\$\{__rate_interval\}/g, '1m')
    .replace(/\$__interval\b|\$\{__interval\}/g, '15s')
    .replace(/\$__range\b|\$\{__range\}/g, '1h')
    .replace(/\$job\b|\$\{job\}/g, regexValue(values.job))
    .replace(/\$instance\b|\$\{instance\}/g, regexValue(values.instance));
  if (out.includes('$')) throw new Error(`a variable this test does not know is left in: ${out}`);
  return out;
}

const PLACEHOLDER: Substitution = { job: 'rdmactl', instance: '127.0.0.1:10062' };

// What some panels need that a machine may lack; each reason is read here, not from rdmactl.
const infinibandDevices = existsSync('/sys/class/infiniband') ? readdirSync('/sys/class/infiniband') : [];
const noDevice = infinibandDevices.length === 0 ? 'this machine has no RDMA device (/sys/class/infiniband is empty or missing)' : null;
const rdmaController = /- cgroup \S+ \S*\brdma\b/m.test(readFileSync('/proc/self/mountinfo', 'utf8'))
  || (existsSync('/sys/fs/cgroup/cgroup.controllers') && /\brdma\b/.test(readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8')));
const noRdmaCgroup = noDevice !== null ? `rdma.current and rdma.max list devices only: ${noDevice}`
  : !rdmaController ? 'no rdma cgroup controller is mounted on this machine'
  : 'this test places no holder in an rdma-limited cgroup (the lab\'s cgroup-rdma test does)';
const [kernelMajor, kernelMinor] = release().split('.').map(Number) as [number, number];
const noCopyOnFork = noDevice !== null && (kernelMajor < 5 || (kernelMajor === 5 && kernelMinor < 9))
  ? `copy-on-fork is known only from an RDMA device or Linux >= 5.9; this is Linux ${release()} and ${noDevice}` : null;
const noKernelPins = /^nr_foll_pin_acquired /m.test(readFileSync('/proc/vmstat', 'utf8')) ? null : '/proc/vmstat has no nr_foll_pin_acquired (Linux < 5.7)';
const placement = memoryCgroupPlacement();
const noTestCgroups = placement.skipReason === null ? null : `no test cgroups with unit, pod and memory.max: ${placement.skipReason}`;

/** Why this machine cannot give `expr` data, or null when it must. */
function missingData(expr: string): string | null {
  if (/rdmactl_device_/.test(expr)) return noDevice;
  if (/rdmactl_cgroup_rdma_/.test(expr)) return noRdmaCgroup;
  if (/rdmactl_copy_on_fork/.test(expr)) return noCopyOnFork;
  if (/rdmactl_kernel_pinned_bytes/.test(expr)) return noKernelPins;
  if (/unit!=""|pod!=""|rdmactl_cgroup_memory_max_bytes/.test(expr)) return noTestCgroups;
  return null;
}

const noPrometheus = missingBinary('prometheus', 'prometheus');
const noPromtool = missingBinary('promtool', 'prometheus');
if (noPrometheus) console.warn(`SKIPPED the dashboard's queries against a real Prometheus: ${noPrometheus}`);
if (noPromtool) console.warn(`SKIPPED promtool check of the dashboard's expressions: ${noPromtool}`);

describe('contrib/grafana/rdmactl.json: structure', () => {
  it('is a Grafana dashboard of schemaVersion >= 39 with a uid, a title and at most 25 panels besides rows', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toMatch(/^[a-z0-9-]+$/);
    expect(dashboard.title).toContain('rdmactl');
    expect(contentPanels.length).toBeGreaterThan(10);
    expect(contentPanels.length).toBeLessThanOrEqual(25);
  });

  it('has a prometheus datasource variable and job/instance variables from label_values through it', () => {
    const byName = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(byName.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const job = byName.get('job');
    const instance = byName.get('instance');
    for (const variable of [job, instance]) {
      expect(variable).toMatchObject({ type: 'query', datasource: VARIABLE_DATASOURCE, multi: true, includeAll: true });
      expect(variable!.query).toMatch(/^label_values\(rdmactl_\w+(\{[^}]*\})?, \w+\)$/);
    }
    expect(job!.query).toMatch(/, job\)$/);
    expect(instance!.query).toMatch(/^label_values\(rdmactl_\w+\{job=~"\$job"\}, instance\)$/);
  });

  it('panel ids are unique; every panel has a grid position inside 24 columns, none overlapping', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { title, gridPos: g } of dashboard.panels) {
      for (const n of [g.x, g.y, g.w, g.h]) expect(Number.isInteger(n), title).toBe(true);
      expect(g.x >= 0 && g.w > 0 && g.h > 0 && g.x + g.w <= 24, title).toBe(true);
    }
    for (const [i, a] of dashboard.panels.entries()) {
      for (const b of dashboard.panels.slice(i + 1)) {
        const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w
          && a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
        expect(overlap, `${a.title} / ${b.title}`).toBe(false);
      }
    }
  });

  it('rows only lay out; every other panel queries through $datasource and has targets with expr filtered by $job and $instance', () => {
    for (const panel of dashboard.panels.filter((p) => p.type === 'row')) expect(panel.targets ?? [], panel.title).toEqual([]);
    for (const panel of contentPanels) {
      expect(panel.datasource, panel.title).toEqual(VARIABLE_DATASOURCE);
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      const refIds = panel.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, panel.title).toBe(refIds.length);
      for (const target of panel.targets!) {
        expect(target.datasource, panel.title).toEqual(VARIABLE_DATASOURCE);
        expect(target.expr.trim(), panel.title).not.toBe('');
        // Every selector of the expression, not just one of them, honours both variables.
        const selectors = [...target.expr.matchAll(/\b([a-z_:]+)\{([^}]*)\}/g)];
        expect(selectors.length, target.expr).toBeGreaterThan(0);
        for (const [, , matchers] of selectors) expect(matchers, target.expr).toMatch(/^job=~"\$job",instance=~"\$instance"/);
        expect(target.expr.replace(/\b[a-z_:]+\{[^}]*\}/g, ''), 'a bare metric name escapes the variables').not.toMatch(/\b(rdmactl_\w+|up|scrape_duration_seconds)\b(?!\s*\()/);
      }
    }
  });

  it('no datasource anywhere names a uid other than the variable', () => {
    const found: unknown[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node !== null && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if (key === 'datasource') found.push(value);
          walk(value);
        }
      }
    };
    walk(dashboard);
    expect(found.length).toBeGreaterThan(contentPanels.length);
    for (const value of found) expect(value).toEqual(VARIABLE_DATASOURCE);
    expect(JSON.stringify(dashboard)).not.toMatch(/"__inputs"|DS_PROMETHEUS/);
  });

  it('uses only metrics the exporter declares (besides Prometheus\'s own up and scrape_duration_seconds)', async () => {
    const declared = new Set((await new ExporterMetrics({ version: 't', maxProcesses: 1, processLabelNames: [] })
      .registry.getMetricsAsJSON()).map((m) => m.name));
    const exprs = contentPanels.flatMap((p) => p.targets!.map((t) => t.expr));
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(rdmactl_[a-z_]+)\b/g)].map((m) => m[1]!)));
    expect(used.size).toBeGreaterThan(15);
    for (const name of used) expect(declared, name).toContain(name);
  });

  it('promtool check rules accepts every expression (as recording rules, variables substituted)', { skip: noPromtool !== null }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-grafana-rules-'));
    try {
      const rules = contentPanels.flatMap((p) => p.targets!.map((t) => ({ record: `grafana:panel_${p.id}:${t.refId}`, expr: substitute(t.expr, PLACEHOLDER) })));
      // JSON is YAML: no quoting rules of our own.
      const file = join(dir, 'dashboard.rules.yml');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'grafana', rules }] }), { flag: 'wx' });
      const result = promtool(['check', 'rules', file]);
      expect(result.status, result.output).toBe(0);
      expect(result.output).toContain(`SUCCESS: ${rules.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

interface QueryResult { metric: Record<string, string>; value: [number, string] }

describe.skipIf(noPrometheus !== null)('contrib/grafana/rdmactl.json: every panel against a real Prometheus scraping a real exporter', () => {
  const runtime = tempRuntime();
  const servers: Started[] = [];
  const attached: ChildProcessWithoutNullStreams[] = [];
  const detachedPids: number[] = [];
  const detachedIds: string[] = [];
  const dirs: string[] = [];
  const { dir } = placement;
  const base = `${placement.parentPath}/rdmactl-grafana-test-${process.pid}.slice`;
  const workerPath = `${base}/worker.service`;
  const POD = '6a1c0e2f-3b4d-4e5f-8a9b-0c1d2e3f4a5b';
  const podPath = `${base}/kubepods/besteffort/pod${POD}`;
  const podContainerPath = `${podPath}/${'c0ffee'.padEnd(64, '0123456789abcdef')}`;
  const CREATED = [base, workerPath, `${base}/kubepods`, `${base}/kubepods/besteffort`, podPath, podContainerPath];
  let values: Substitution;
  let api: string;
  let detachedPid: number;
  let locker: ChildProcessWithoutNullStreams;
  let podPinner: ChildProcessWithoutNullStreams | undefined;

  async function query(promql: string): Promise<QueryResult[]> {
    const response = await httpGet(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const parsed = JSON.parse(response.body) as { status: string; error?: string; data: { resultType: string; result: QueryResult[] } };
    expect(parsed.status, `${promql}: ${parsed.error ?? ''}`).toBe('success');
    expect(parsed.data.resultType, promql).toBe('vector');
    return parsed.data.result;
  }

  beforeAll(async () => {
    builtOrThrow();
    becomeSubreaper();
    // A detached io_uring registration under a finite RLIMIT_MEMLOCK (pinned bytes, headroom, held source).
    const detached = rdmactlBin(['reg', '4M', '--backend', 'uring', '--detach', '--json'], runtime.env, ['prlimit', `--memlock=${HOLDER_MEMLOCK}:${HOLDER_MEMLOCK}`, '--']);
    expect(detached.status, detached.stderr).toBe(0);
    const record = JSON.parse(detached.stdout) as { pid: number; id: string };
    detachedPids.push(record.pid);
    detachedIds.push(record.id);
    detachedPid = record.pid;
    // An mlock holder in a systemd-like unit with memory.max, an io_uring pinner in a pod's cgroup.
    if (noTestCgroups === null) {
      for (const path of CREATED) mkdirSync(dir(path));
      writeFileSync(`${dir(workerPath)}/memory.limit_in_bytes`, String(256 * MiB));
      locker = await startInCgroup(dir(workerPath), ['reg', '3M', '--backend', 'mlock', '--json']);
      attached.push(locker);
      podPinner = await startInCgroup(dir(podContainerPath), ['reg', '2M', '--backend', 'uring', '--json']);
      attached.push(podPinner);
    } else {
      locker = (await startRdmactl(['reg', '3M', '--backend', 'mlock', '--json'])).child;
      attached.push(locker);
    }

    const exporter = await startExporter(['--listen', '127.0.0.1:0'], { env: runtime.env });
    servers.push(exporter);
    const promDir = mkdtempSync(join(tmpdir(), 'rdmactl-grafana-prometheus-'));
    dirs.push(promDir);
    const prometheus = await startPrometheus(promDir, `127.0.0.1:${exporter.port}`);
    servers.push(prometheus);
    api = prometheus.api;
    values = { job: 'rdmactl', instance: `127.0.0.1:${exporter.port}` };
    // Every holder scraped, and a few scrapes behind us for the _over_time panels.
    const holders = [detachedPid, locker.pid!, ...(podPinner ? [podPinner.pid!] : [])];
    await until('Prometheus to have scraped every holder three times', async () => {
      const seen = await query(`count_over_time(rdmactl_process_locked_bytes{pid=~"${holders.join('|')}"}[1m]) >= 3`);
      return seen.length === holders.length ? true : undefined;
    }, 60_000, 500);
  }, 120_000);

  afterAll(async () => {
    for (const id of detachedIds) rdmactlBin(['dereg', id], runtime.env);
    for (const server of servers.reverse()) await server.stop();
    for (const child of attached) child.kill('SIGTERM');
    for (const child of attached) await exited(child);
    await killAndReap(detachedPids);
    if (noTestCgroups === null) await removeCgroups(CREATED.map(dir));
    for (const path of dirs) rmSync(path, { recursive: true, force: true });
    runtime.cleanup();
  }, 60_000);

  it('the job and instance variables\' label_values queries find the scraped exporter', async () => {
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const [, selector, label] = /^label_values\((.+), (\w+)\)$/.exec(variable.query)!;
      const match = substitute(selector!, values);
      const response = await httpGet(`${api}/api/v1/label/${label}/values?match[]=${encodeURIComponent(match)}`);
      const parsed = JSON.parse(response.body) as { status: string; data: string[] };
      expect(parsed.status, response.body).toBe('success');
      expect(parsed.data, variable.name).toContain(values[variable.name as keyof Substitution]);
    }
  });

  for (const panel of contentPanels) {
    it(`panel ${panel.id} "${panel.title}": every query is valid and returns data`, async (ctx) => {
      const skipped: string[] = [];
      for (const target of panel.targets!) {
        const result = await query(substitute(target.expr, values));
        const reason = missingData(target.expr);
        if (reason !== null) {
          skipped.push(`${target.refId}: ${reason}`);
          continue;
        }
        expect(result.length, `${target.refId}: ${target.expr}`).toBeGreaterThan(0);
        // A number, +Inf where unlimited, never NaN (a division by a missing or zero denominator).
        for (const sample of result) expect(sample.value[1], target.expr).toMatch(/^(-?\d+(\.\d+)?(e[+-]\d+)?|\+Inf)$/);
      }
      if (skipped.length > 0) {
        const why = `panel "${panel.title}": queries valid, data check skipped: ${skipped.join('; ')}`;
        console.warn(`SKIPPED ${why}`);
        ctx.skip(why);
      }
    });
  }

  /** The one panel titled `title`, its target `refId` substituted and run. */
  async function panelQuery(title: string, refId = 'A'): Promise<QueryResult[]> {
    const panel = contentPanels.find((p) => p.title === title);
    expect(panel, title).toBeDefined();
    return query(substitute(panel!.targets!.find((t) => t.refId === refId)!.expr, values));
  }

  it('the process panels show the holders\' VmPin and RLIMIT_MEMLOCK headroom as /proc says', async () => {
    const vmPin = statusKb(detachedPid, 'VmPin') * 1024;
    expect(vmPin).toBe(4 * MiB);
    const headroom = HOLDER_MEMLOCK - Math.max(vmPin, statusKb(detachedPid, 'VmLck') * 1024);
    const pid = String(detachedPid);
    const top = await panelQuery('Top processes by pinned bytes');
    // topk(10): only a machine with ten bigger pinners would push ours out.
    expect(top.find((s) => s.metric['pid'] === pid)?.value[1]).toBe(String(vmPin));
    const lowest = await panelQuery('Lowest RLIMIT_MEMLOCK headroom');
    expect(lowest.find((s) => s.metric['pid'] === pid)?.value[1]).toBe(String(headroom));
    const table = await panelQuery('Processes that pin or lock', 'B');
    expect(table.find((s) => s.metric['pid'] === String(locker.pid))?.value[1]).toBe(String(statusKb(locker.pid!, 'VmLck') * 1024));
  });

  it('the cgroup panels show the unit\'s share of memory.max and the pod\'s pinned bytes as the cgroup files and /proc say', async (ctx) => {
    if (noTestCgroups !== null) {
      console.warn(`SKIPPED cgroup panel values: ${noTestCgroups}`);
      ctx.skip(noTestCgroups);
      return;
    }
    const limit = Number(readFileSync(`${dir(workerPath)}/memory.limit_in_bytes`, 'utf8').trim());
    expect(limit).toBe(256 * MiB);
    const lockerHeld = statusKb(locker.pid!, 'VmPin') * 1024 + statusKb(locker.pid!, 'VmLck') * 1024;
    expect(lockerHeld).toBe(3 * MiB);
    const share = await panelQuery('Share of memory.max pinned or locked');
    expect(Number(share.find((s) => s.metric['cgroup'] === workerPath)?.value[1])).toBeCloseTo(lockerHeld / limit, 12);
    const byUnit = await panelQuery('Pinned and locked by systemd unit');
    expect(byUnit.find((s) => s.metric['unit'] === 'worker.service')?.value[1]).toBe(String(lockerHeld));
    const podHeld = statusKb(podPinner!.pid!, 'VmPin') * 1024 + statusKb(podPinner!.pid!, 'VmLck') * 1024;
    expect(statusKb(podPinner!.pid!, 'VmPin') * 1024).toBe(2 * MiB);
    const byPod = await panelQuery('Pinned and locked by Kubernetes pod');
    expect(byPod.find((s) => s.metric['pod'] === POD)?.value[1]).toBe(String(podHeld));
  });
});
