// Against the running kernel: a child that mlocks and io_uring-registers memory, short-lived
// processes vanishing during a scan, and the view of an unprivileged user.

import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStatus } from '../../src/proc/status.js';
import { readProcessLimits } from '../../src/proc/limits.js';
import { isDontFork, isLocked, isWipeOnFork, readSmaps } from '../../src/proc/smaps.js';
import { findIoUringFds, readUringInstances } from '../../src/proc/uringFdinfo.js';
import { readStat } from '../../src/proc/stat.js';
import { readMaxMapCount, readVmaCount } from '../../src/proc/vm.js';
import { pageSize, readPagemap } from '../../src/proc/pagemap.js';
import { readMeminfo } from '../../src/proc/meminfo.js';
import { readSystemMemory, scanProcesses } from '../../src/proc/scan.js';
import { buildPinner, findCompiler, makeTempDir, renamedCopy, startPinner, type Pinner } from './helpers/children.js';

const MiB = 1024 * 1024;
const cc = findCompiler();
const isRoot = process.getuid?.() === 0;
if (!cc) console.warn('SKIPPING real-kernel /proc tests: no C compiler (cc, gcc, clang) to build the pinner helper');
if (!isRoot) console.warn('SKIPPING real-kernel /proc tests: they need root (PFNs in pagemap, setpriv to uid 65534)');

/** VmLck/VmPin read straight from the file, independently of the parser. */
function statusKb(pid: number, key: string): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(key + ':'));
  return Number(/(\d+) kB/.exec(line ?? '')?.[1]);
}

describe.skipIf(!cc || !isRoot)('real kernel', () => {
  let dir = '';
  let binary = '';
  let pinner: Pinner;

  beforeAll(async () => {
    dir = makeTempDir('rdmactl-proc-');
    binary = buildPinner(cc!, dir);
    pinner = await startPinner(binary, [String(MiB), String(2 * MiB), 'dontfork', 'wipeonfork']);
  });

  afterAll(async () => {
    await pinner?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('scan reports exactly the VmLck and VmPin the status file shows', () => {
    const lockedKb = statusKb(pinner.pid, 'VmLck');
    const pinnedKb = statusKb(pinner.pid, 'VmPin');
    expect(lockedKb).toBe(1024);
    expect(pinnedKb).toBe(2048);
    const scan = scanProcesses();
    const snapshot = scan.processes.find((p) => p.pid === pinner.pid);
    expect(snapshot).toBeDefined();
    expect(snapshot!.lockedBytes).toBe(lockedKb * 1024);
    expect(snapshot!.pinnedBytes).toBe(pinnedKb * 1024);
    expect(snapshot!.name).toBe('pinner');
    expect(snapshot!.ppid).toBe(process.pid);
    expect(snapshot!.user).toBe('root');
    expect(snapshot!.unreadable).toEqual([]);
    // Holding processes get the detail without asking.
    expect(snapshot!.detail).not.toBeNull();
    expect(snapshot!.detail!.smaps!.lockedBytes).toBe(MiB);
    expect(snapshot!.detail!.uringRegisteredBytes).toBe(2 * MiB);
    expect(snapshot!.detail!.memlock).toEqual(readProcessLimits(pinner.pid)!.lockedMemory);
  });

  it('smaps shows lo (and dc, wf) on the mlocked range', () => {
    const vmas = readSmaps(pinner.pid)!;
    const locked = vmas.find((v) => v.start === pinner.lockedAddress)!;
    expect(locked).toBeDefined();
    expect(isLocked(locked)).toBe(true);
    expect(isDontFork(locked)).toBe(true);
    expect(isWipeOnFork(locked)).toBe(true);
    expect(locked.lockedBytes).toBe(MiB);
    expect(locked.end - locked.start).toBe(BigInt(MiB));
  });

  it('io_uring fdinfo shows the registered buffer and the empty slot', () => {
    expect(findIoUringFds(pinner.pid)).toEqual([pinner.ringFd]);
    const [instance] = readUringInstances(pinner.pid)!;
    expect(instance!.fd).toBe(pinner.ringFd);
    expect(instance!.fdinfo.userBufsSlots).toBe(2);
    expect(instance!.fdinfo.buffers).toEqual([{ index: 0, address: pinner.pinnedAddress, lengthBytes: 2 * MiB }]);
    expect(instance!.fdinfo.emptySlots).toEqual([1]);
  });

  it('pagemap shows the locked pages present, with PFNs visible to root', () => {
    const pages = MiB / pageSize();
    const range = readPagemap(pinner.pid, pinner.lockedAddress, pages)!;
    expect(range.entries).toHaveLength(pages);
    expect(range.entries.every((e) => e.present && e.pfn !== null)).toBe(true);
    expect(range.pfnVisible).toBe(true);
    expect(range.startAddress).toBe(pinner.lockedAddress);
  });

  it('stat, VMA count, max_map_count and meminfo', () => {
    const stat = readStat(pinner.pid)!;
    expect(stat.comm).toBe('pinner');
    expect(stat.ppid).toBe(process.pid);
    expect(stat.startTimeTicks).toBeGreaterThan(0);
    expect(readVmaCount(pinner.pid)).toBe(readFileSync(`/proc/${pinner.pid}/maps`, 'utf8').trimEnd().split('\n').length);
    expect(readMaxMapCount()).toBe(Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8')));
    const meminfo = readMeminfo();
    expect(meminfo.memTotalBytes).toBeGreaterThan(0);
    expect(meminfo.mlockedBytes).toBeGreaterThanOrEqual(MiB);
    const system = readSystemMemory();
    expect(system.pinnedBytesTotal).toBeGreaterThanOrEqual(2 * MiB);
    expect(system.lockedBytesTotal).toBeGreaterThanOrEqual(MiB);
  });

  it('reads comm "a) (b" from stat and status', async () => {
    const odd = await startPinner(renamedCopy(binary, dir, 'a) (b'), ['0', '0']);
    try {
      expect(readStat(odd.pid)!.comm).toBe('a) (b');
      expect(readStatus(odd.pid)!.name).toBe('a) (b');
    } finally {
      await odd.stop();
    }
  });

  it('a process that is gone reads as null, not an exception', async () => {
    const brief = await startPinner(binary, [String(64 * 1024), '0']);
    const pid = brief.pid;
    await brief.stop();
    expect(readStatus(pid)).toBeNull();
    expect(readStat(pid)).toBeNull();
    expect(readProcessLimits(pid)).toBeNull();
    expect(readSmaps(pid)).toBeNull();
    expect(readUringInstances(pid)).toBeNull();
    expect(readPagemap(pid, 0x400000, 1)).toBeNull();
    expect(readVmaCount(pid)).toBeNull();
    const scan = scanProcesses({ pids: [pid] });
    expect(scan.processes).toEqual([]);
    expect(scan.vanishedProcesses).toBe(1);
  });

  it('300 short-lived processes exiting during scans: no error, vanished ones counted', async () => {
    // One shell (our child) starts 300 sleeps, prints their pids, and reaps them.
    const shell = spawn('/bin/sh', ['-c', 'for i in $(seq 300); do sleep 0.$((i % 9 + 1)) & echo $!; done; wait'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    shell.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const done = new Promise<number | null>((resolve) => shell.once('exit', resolve));
    let finished = false;
    void done.then(() => (finished = true));

    let scans = 0;
    let vanishedSeen = 0;
    while (!finished) {
      const scan = scanProcesses({ detail: scans % 2 === 1 });
      expect(scan.processes.length + scan.vanishedProcesses + scan.unreadableProcesses).toBeLessThanOrEqual(scan.scannedProcesses);
      vanishedSeen += scan.vanishedProcesses;
      scans++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await done).toBe(0);
    expect(scans).toBeGreaterThan(0);
    console.info(`${scans} scans while 300 processes came and went; ${vanishedSeen} vanished mid-scan`);

    // Deterministic part: every one of those pids is gone now, and counted as such.
    const pids = out.trim().split('\n').map(Number);
    expect(pids).toHaveLength(300);
    const after = scanProcesses({ pids });
    expect(after.processes).toEqual([]);
    expect(after.vanishedProcesses).toBe(300);
    expect(after.unreadableProcesses).toBe(0);
  });

  describe('as an unprivileged user (uid 65534, no capabilities)', () => {
    let outDir = '';
    beforeAll(() => {
      // Build just src/proc (and what it imports) into a private directory: dist/ is shared with
      // others' builds, and the unprivileged user needs read access.
      outDir = join(dir, 'build');
      const root = new URL('../../', import.meta.url).pathname;
      execFileSync(
        join(root, 'node_modules/.bin/tsc'),
        ['--outDir', outDir, '--rootDir', join(root, 'src'), '--module', 'nodenext', '--moduleResolution', 'nodenext',
          '--target', 'es2022', '--strict', '--skipLibCheck', '--types', 'node', join(root, 'src/proc/scan.ts')],
        { cwd: root, stdio: 'pipe' },
      );
      // User names come from the C library (NSS) through koffi: let the build find the package.
      symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
      execFileSync('chmod', ['-R', 'a+rX', dir]);
    });

    function scanAs65534(options: object): {
      unreadableProcesses: number;
      vanishedProcesses: number;
      scannedProcesses: number;
      count: number;
      self: { unreadable: string[] } | undefined;
      pinner: { lockedBytes: number; pinnedBytes: number; unreadable: string[]; memlock: unknown; hasSmaps: boolean } | undefined;
    } {
      const script = `
        const { scanProcesses } = await import(${JSON.stringify(join(outDir, 'proc/scan.js'))});
        const scan = scanProcesses(${JSON.stringify(options)});
        const find = (pid) => scan.processes.find((p) => p.pid === pid);
        const pinner = find(${pinner.pid});
        const self = find(process.pid);
        console.log(JSON.stringify({
          unreadableProcesses: scan.unreadableProcesses, vanishedProcesses: scan.vanishedProcesses,
          scannedProcesses: scan.scannedProcesses, count: scan.processes.length,
          self: self && { unreadable: self.unreadable },
          pinner: pinner && { lockedBytes: pinner.lockedBytes, pinnedBytes: pinner.pinnedBytes,
            unreadable: pinner.unreadable, memlock: pinner.detail?.memlock ?? null, hasSmaps: pinner.detail?.vmas != null },
        }));`;
      const out = execFileSync(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, '--input-type=module', '-e', script],
        { cwd: '/', encoding: 'utf8' },
      );
      return JSON.parse(out);
    }

    it('default scan: status still readable, the root pinner\'s smaps and fds are counted as unreadable', () => {
      const view = scanAs65534({});
      expect(view.pinner).toBeDefined();
      // status and limits are world-readable ...
      expect(view.pinner!.lockedBytes).toBe(MiB);
      expect(view.pinner!.pinnedBytes).toBe(2 * MiB);
      expect(view.pinner!.memlock).not.toBeNull();
      // ... smaps (ptrace check) and the fd directory (mode 0500) are not.
      expect(view.pinner!.unreadable).toEqual(['smaps', 'fd']);
      expect(view.pinner!.hasSmaps).toBe(false);
      expect(view.unreadableProcesses).toBeGreaterThan(0);
      // Only processes whose detail was tried can be unreadable.
      expect(view.unreadableProcesses).toBeLessThan(view.count);
    });

    it('detail scan: every other user\'s process is unreadable, our own is not', () => {
      const view = scanAs65534({ detail: true });
      expect(view.self).toEqual({ unreadable: [] });
      expect(view.unreadableProcesses).toBeGreaterThan(0);
      expect(view.unreadableProcesses).toBeLessThanOrEqual(view.count);
    });
  });
});
