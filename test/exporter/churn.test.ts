// Scrapes while memory cgroups come and go under the processes that lock memory: a group removed
// between the exporter reading /proc/PID/cgroup and reading the group's files (ENOENT), or between
// opening a file and reading it (ENODEV), must read as gone, never fail the scrape.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Scraper } from '../../src/exporter/scrape.js';
import { startServer } from '../../src/exporter/server.js';
import { memoryCgroupPlacement, removeCgroups } from '../helpers/cgroup.js';
import { httpGet, startChild, type Started } from './helpers.js';

const { skipReason: noCgroups, parentPath, dir } = memoryCgroupPlacement();
const noPython = spawnSync('python3', ['-c', 'import ctypes'], { encoding: 'utf8' }).status === 0 ? null : 'python3 with ctypes is not installed (it runs the lockers)';
const skipReason = noCgroups ?? noPython;
if (skipReason) console.warn(`SKIPPED cgroup churn test: ${skipReason}`);

/** A small process that mlocks one page (so the exporter reads its cgroup every scrape) and waits. */
const LOCKER_SOURCE = `
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
buf = mmap.mmap(-1, 4096)
address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
if libc.mlock(ctypes.c_void_p(address), ctypes.c_size_t(4096)) != 0:
    sys.exit('mlock failed')
print('ready', flush=True)
sys.stdin.read()
`;

/**
 * For `node -e BASE PID…`: moves each pid into a new child cgroup of BASE and removes the one it
 * left, as fast as it can; on SIGTERM puts them back in BASE and removes the rest. Prints the
 * number of groups removed twice a second.
 */
const CHURN_SOURCE = `
const fs = require('node:fs');
const [base, ...pids] = process.argv.slice(1);
const current = new Map();
let next = 0, removed = 0, stopping = false;
function step() {
  if (stopping) return;
  for (const pid of pids) {
    const group = base + '/churn-' + next++;
    fs.mkdirSync(group);
    fs.writeFileSync(group + '/cgroup.procs', pid);
    const left = current.get(pid);
    current.set(pid, group);
    if (left) { fs.rmdirSync(left); removed++; }
  }
  setImmediate(step);
}
process.on('SIGTERM', () => {
  stopping = true;
  for (const [pid, group] of current) {
    fs.writeFileSync(base + '/cgroup.procs', pid);
    fs.rmdirSync(group);
  }
  process.exit(0);
});
setInterval(() => console.log(removed), 500);
step();
`;

describe.skipIf(skipReason !== null)('scrapes during cgroup churn', () => {
  const base = `${parentPath}/rdmactl-churn-test-${process.pid}`;
  const lockers: ChildProcess[] = [];
  let churn: Started | null = null;

  afterAll(async () => {
    await churn?.stop();
    for (const locker of lockers) locker.kill('SIGKILL');
    if (existsSync(dir(base))) {
      const left = readdirSync(dir(base), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${dir(base)}/${e.name}`);
      await removeCgroups([dir(base), ...left]);
    }
  });

  it('400 scrapes while 8 lockers move through short-lived memory cgroups: every one is 200', { timeout: 240_000 }, async () => {
    mkdirSync(dir(base));
    for (let i = 0; i < 8; i++) {
      // Started inside the test's group, so the churn only ever moves its own processes.
      const child = spawn('sh', ['-c', `echo $$ > '${dir(base)}/cgroup.procs' && exec python3 -c "$0"`, LOCKER_SOURCE], { stdio: ['pipe', 'pipe', 'inherit'] });
      lockers.push(child);
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`locker exited ${code}`)));
      });
    }
    churn = startChild([process.execPath, '-e', CHURN_SOURCE, dir(base), ...lockers.map((l) => String(l.pid))]);

    const errors: string[] = [];
    const running = await startServer(new Scraper({ version: 'test', maxProcesses: 100, shareWindowMs: 0 }), { host: '127.0.0.1', port: 0 }, {
      onError: (err) => errors.push(err instanceof Error ? `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` : String(err)),
    });
    const statuses = new Map<number, number>();
    let withGroups = 0;
    try {
      const url = `http://127.0.0.1:${(running.address as AddressInfo).port}/metrics`;
      for (let i = 0; i < 400; i++) {
        const scrape = await httpGet(url, { timeoutMs: 60_000 });
        statuses.set(scrape.status, (statuses.get(scrape.status) ?? 0) + 1);
        if (scrape.body.includes(`cgroup="${base}/churn-`)) withGroups++;
      }
    } finally {
      await running.close();
    }
    const removed = Number(churn.stdout().trim().split('\n').pop() ?? 0);
    expect({ statuses: Object.fromEntries(statuses), errors: [...new Set(errors)] }).toEqual({ statuses: { 200: 400 }, errors: [] });
    // The churn was real: groups were removed throughout, and scrapes saw the lockers in them.
    expect(removed).toBeGreaterThan(400);
    expect(withGroups).toBeGreaterThan(100);
  });
});
