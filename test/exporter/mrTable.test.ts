// The exporter's kernel MR table reads: `rdma` runs as a child the event loop does not wait on, is
// killed at its timeout or output cap, is read again only when the pinning processes change (or the
// table is old), and the scrape says when it was read and whether that failed.
//
// The `rdma` run here is a script first in PATH: a real child process that hangs, prints too much or
// counts its runs, which is what these tests need of it (our timeout, cap and cache handling), not a
// stand-in for the kernel's MR data. This machine may list no RDMA device, and the exporter runs rdma
// only when /sys/class/infiniband lists one, so the device list is given (deviceNames): the one thing
// that is not the machine's own. The lab runs the real rdma against rxe0 (test/lab).
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MrTableCache, mrTableKey } from '../../src/exporter/mrTable.js';
import { Scraper } from '../../src/exporter/scrape.js';
import { startServer } from '../../src/exporter/server.js';
import { becomeSubreaper, killAndReap, rdmactlBin, tempRuntime } from '../held/helpers.js';
import { builtOrThrow } from '../helpers/spawn.js';
import { find, httpGet, one, parseExposition, until } from './helpers.js';

const DEVICE = 'rdmactl_test0';
/** Every run hangs (`sys show` too); the MR table reads write their pid to LOG first. */
const HANGS = 'case "$*" in *"res show mr"*) echo $$ >> "$LOG";; esac\nexec sleep 30';
const savedPath = process.env['PATH'];
const dirs: string[] = [];

/** A directory holding an executable `rdma` with `body`, put first in PATH; and a file it may write. */
function fakeRdma(body: string): { log: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rdmactl-rdma-'));
  dirs.push(dir);
  const log = join(dir, 'log');
  writeFileSync(join(dir, 'rdma'), `#!/bin/sh\nLOG='${log}'\n${body}\n`);
  chmodSync(join(dir, 'rdma'), 0o755);
  process.env['PATH'] = `${dir}:${savedPath}`;
  return { log };
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
}

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work;
  return { value, ms: performance.now() - started };
}

afterEach(() => {
  process.env['PATH'] = savedPath;
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('mrTableKey', () => {
  it('changes with the pinning processes and their VmPin, not with the others or their order', () => {
    const base = mrTableKey(['mlx5_0'], [{ pid: 10, pinnedBytes: 4096 }, { pid: 20, pinnedBytes: 0 }]);
    expect(mrTableKey(['mlx5_0'], [{ pid: 20, pinnedBytes: 0 }, { pid: 10, pinnedBytes: 4096 }, { pid: 30, pinnedBytes: 0 }])).toBe(base);
    expect(mrTableKey(['mlx5_0'], [{ pid: 10, pinnedBytes: 8192 }])).not.toBe(base);
    expect(mrTableKey(['mlx5_0'], [{ pid: 10, pinnedBytes: 4096 }, { pid: 11, pinnedBytes: 4096 }])).not.toBe(base);
    expect(mrTableKey(['mlx5_0', 'mlx5_1'], [{ pid: 10, pinnedBytes: 4096 }])).not.toBe(base);
  });
});

describe('an rdma that hangs', () => {
  it('scrapes answer while it runs; it is killed at the timeout, and the scrape says so', { timeout: 30_000 }, async () => {
    const { log } = fakeRdma(HANGS);
    const scraper = new Scraper({ version: 'test', maxProcesses: 5, deviceNames: () => [DEVICE], mrTable: { timeoutMs: 2_000, waitMs: 300 } });
    const running = await startServer(scraper, { host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(running.address as AddressInfo).port}`;
    try {
      const started = Date.now();
      // Two scrapes at once and the index page beside them: none waits for rdma beyond the scrape's budget.
      const [first, second, index] = await Promise.all([timed(httpGet(`${base}/metrics`)), timed(httpGet(`${base}/metrics`)), timed(httpGet(`${base}/`))]);
      for (const answer of [first, second, index]) {
        expect(answer.value.status).toBe(200);
        expect(answer.ms).toBeLessThan(1_500);
      }
      expect(lines(log)).toHaveLength(1);
      const during = parseExposition(first.value.body);
      // Not read yet: the source is unavailable, and no MR count is made up.
      expect(one(during, 'rdmactl_registration_source_available', { source: 'rdma' })).toBe(0);
      expect(find(during, 'rdmactl_device_mrs')).toEqual([]);
      expect(find(during, 'rdmactl_rdma_mr_table_last_read_timestamp_seconds')).toEqual([]);
      // rdma sys show hangs as well: copy-on-fork is unknown, left out rather than 0 (does not copy).
      expect(find(during, 'rdmactl_copy_on_fork')).toEqual([]);

      // Scraped every 200 ms until the read has ended: each answers promptly meanwhile.
      const slowest = { ms: 0 };
      const after = await until('the read to time out', async () => {
        const answer = await timed(httpGet(`${base}/metrics`));
        slowest.ms = Math.max(slowest.ms, answer.ms);
        const samples = parseExposition(answer.value.body);
        return find(samples, 'rdmactl_rdma_mr_table_last_read_timed_out').length > 0 ? samples : undefined;
      }, 15_000, 200);
      expect(slowest.ms).toBeLessThan(1_500);
      expect(one(after, 'rdmactl_rdma_mr_table_last_read_timed_out')).toBe(1);
      expect(one(after, 'rdmactl_rdma_mr_table_last_read_success')).toBe(0);
      const readAt = one(after, 'rdmactl_rdma_mr_table_last_read_timestamp_seconds');
      expect(readAt).toBeGreaterThanOrEqual((started + 2_000) / 1000 - 0.5);
      expect(readAt).toBeLessThanOrEqual(Date.now() / 1000);
      expect(find(after, 'rdmactl_device_mrs')).toEqual([]);
      // The hung rdma is gone (killed and reaped), not left behind.
      const rdmaPid = Number(lines(log)[0]);
      expect(existsSync(`/proc/${rdmaPid}`)).toBe(false);
      // Nothing changed since: the failed read stands until the table is due again, no rdma piles up.
      expect(lines(log)).toHaveLength(1);
    } finally {
      scraper.close();
      await running.close();
    }
  });

  it('closing kills a running rdma at once', async () => {
    const { log } = fakeRdma(HANGS);
    const cache = new MrTableCache({ timeoutMs: 20_000, waitMs: 100 });
    expect((await cache.get('k')).read).toBeNull();
    const rdmaPid = Number(await until('rdma to start', () => lines(log)[0], 5_000, 20));
    expect(existsSync(`/proc/${rdmaPid}`)).toBe(true);
    cache.close();
    await until('rdma to be gone', () => (existsSync(`/proc/${rdmaPid}`) ? undefined : true), 5_000, 20);
    // After close, no new rdma is started.
    await cache.get('other');
    expect(lines(log)).toHaveLength(1);
  });

  it('output beyond the cap kills rdma and fails the read', async () => {
    fakeRdma('head -c 5000 /dev/zero | tr "\\\\0" "x"\nsleep 30');
    const cache = new MrTableCache({ timeoutMs: 20_000, maxBytes: 1_000, waitMs: Infinity });
    const { value, ms } = await timed(cache.get('k'));
    expect(ms).toBeLessThan(10_000);
    expect(value.read?.status.available).toBe(false);
    expect(value.read?.status.reason).toMatch(/printed more than 1000 bytes/);
    expect(value.read?.timedOut).toBe(false);
  });
});

describe('the MR table is read again only when the pinning processes change, or when old', () => {
  const runtime = tempRuntime();
  const holders: number[] = [];
  beforeAll(() => {
    builtOrThrow();
    becomeSubreaper();
  });
  afterAll(async () => {
    await killAndReap(holders);
    runtime.cleanup();
  });

  it('one rdma run for collections in a row; another after a process pins memory; another when the table is older than maxAgeMs', { timeout: 30_000 }, async () => {
    const { log } = fakeRdma(`case "$*" in *"sys show"*) exit 1;; esac\necho run >> "$LOG"\necho '[{"ifname":"${DEVICE}","mrn":1,"mrlen":4096,"pid":1}]'`);
    const scraper = new Scraper({ version: 'test', maxProcesses: 5, deviceNames: () => [DEVICE], shareWindowMs: 0 });
    try {
      const first = parseExposition((await scraper.collectNow()).text);
      expect(lines(log)).toHaveLength(1);
      expect(one(first, 'rdmactl_rdma_mr_table_last_read_success')).toBe(1);
      expect(one(first, 'rdmactl_rdma_mr_table_last_read_timed_out')).toBe(0);
      expect(one(first, 'rdmactl_device_mrs', { device: DEVICE })).toBe(1);
      const readAt = one(first, 'rdmactl_rdma_mr_table_last_read_timestamp_seconds');
      const again = parseExposition((await scraper.collectNow()).text);
      expect(lines(log)).toHaveLength(1);
      expect(one(again, 'rdmactl_rdma_mr_table_last_read_timestamp_seconds')).toBe(readAt);

      // A new pinner (io_uring fixed buffers count in VmPin as MRs do) changes the signal.
      const held = rdmactlBin(['reg', '2M', '--backend', 'uring', '--detach', '--json'], runtime.env);
      expect(held.status, held.stderr).toBe(0);
      holders.push((JSON.parse(held.stdout) as { pid: number }).pid);
      await scraper.collectNow();
      expect(lines(log)).toHaveLength(2);
    } finally {
      scraper.close();
    }

    const aging = new Scraper({ version: 'test', maxProcesses: 5, deviceNames: () => [DEVICE], shareWindowMs: 0, mrTable: { maxAgeMs: 500 } });
    try {
      await aging.collectNow();
      const runs = lines(log).length;
      await new Promise((resolve) => setTimeout(resolve, 700));
      await aging.collectNow();
      expect(lines(log)).toHaveLength(runs + 1);
    } finally {
      aging.close();
    }
  });
});
