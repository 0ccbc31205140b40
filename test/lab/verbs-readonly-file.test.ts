// A read-only MAP_PRIVATE file mapping (the classic case): registering without local-write works,
// with local-write the kernel refuses (EFAULT) and rdmactl exits 1 with an explanation. And what the
// registration does to the pages, from /proc/PID/pagemap (bit 61: file page or shared anon; PFNs are
// visible to root): until Linux 6.2 ib_umem_get pinned read-only MRs with FOLL_WRITE | FOLL_FORCE,
// which breaks copy-on-write and replaces each file page with a private anonymous copy. The test
// asserts what each lab kernel was observed to do and prints it.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RXE_DEVICE, inLab, labKernel } from './helpers.js';
import {
  holderScope, kernelMrs, keyHex, MiB, probe, rdmactl, vmPinOf,
} from './verbs-helpers.js';

const LENGTH = 4 * MiB;
const PAGES = LENGTH / 4096;
const FILE = `/tmp/rdmactl-lab-ro-${process.pid}.bin`;

/**
 * Observed on every lab kernel: a remote-read MR of a PROT_READ MAP_PRIVATE file mapping replaces
 * every page with a private anonymous copy. 5.10 and 6.1: FOLL_WRITE | FOLL_FORCE in ib_umem_get
 * breaks COW. 7.2: no FOLL_FORCE any more (6.2+), but a R/O FOLL_LONGTERM pin of a page-cache page in
 * a private (COW) mapping is unshared by GUP itself. A kernel that kept the page-cache pages would
 * fail here, with the counts printed.
 */
const COPIES = true;

interface PageSummary { pages: number; present: number; filePages: number; anonPages: number; first: { pfn: number; file: boolean } }
interface ProbeResult {
  addr: string;
  length: number;
  touchedSum: number;
  touchedSumAfter: number;
  pinBeforeKb: number;
  remoteRead: { ok: boolean; lkey?: number; pinAfterKb?: number; error?: unknown };
  before: PageSummary;
  after: PageSummary;
  pfnsChanged: number;
  localWrite: { ok: boolean; errno: string | null; error?: { message: string; exitCode: number; hints: string[] } };
  pinAfterCloseKb: number;
}

function pagemapOf(pid: number, addr: bigint, length: number): Array<{ present: boolean; file: boolean; pfn: number }> {
  const pages = length / 4096;
  const buf = Buffer.alloc(pages * 8);
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  try { readSync(fd, buf, 0, buf.length, Number(addr / 4096n) * 8); } finally { closeSync(fd); }
  return Array.from({ length: pages }, (_, i) => {
    const e = buf.readBigUInt64LE(i * 8);
    return { present: (e >> 63n) === 1n, file: ((e >> 61n) & 1n) === 1n, pfn: Number(e & ((1n << 55n) - 1n)) };
  });
}

describe.skipIf(!inLab)(`read-only MAP_PRIVATE file mapping on ${labKernel.name || '?'} (${labKernel.release})`, () => {
  const scope = holderScope();
  const common = ['4MiB', '--backend', 'verbs', '--backing', 'file-private', '--read-only', '--file', FILE];

  beforeAll(() => {
    writeFileSync(FILE, randomBytes(LENGTH));
  });

  afterAll(() => {
    rmSync(FILE, { force: true });
  });

  it('registers with --access remote-read: pinned, in the kernel table, pages as observed', async () => {
    const rec = scope.detach(['reg', ...common, '--access', 'remote-read', '--detach', '--json'], 'reg remote-read');
    expect(rec.registrations[0]!.accessFlags).toBe('remote-read');
    expect(vmPinOf(rec.pid)).toBe(rec.pinnedBytesBefore / 1024 + LENGTH / 1024);
    const mr = kernelMrs().find((m) => m.pid === rec.pid);
    expect(mr).toMatchObject({ ifname: RXE_DEVICE, mrlen: LENGTH, lkey: keyHex(rec.lkey) });
    // The holder's pages after registration (it never touched them itself: ib_umem_get faulted them in).
    const pages = pagemapOf(rec.pid, BigInt(rec.addr), LENGTH);
    expect(pages.filter((p) => p.present)).toHaveLength(PAGES);
    const anon = pages.filter((p) => p.present && !p.file).length;
    console.log(`[${labKernel.name} ${labKernel.release}] rdmactl holder, remote-read MR of a R/O MAP_PRIVATE file: ${anon}/${PAGES} pages private anonymous, ${PAGES - anon} page-cache pages`);
    expect(anon).toBe(COPIES ? PAGES : 0);
    expect(await scope.release(rec.pid)).toBe(true);
  });

  it('refuses --access local-write with a clear error and exit 1', () => {
    const r = rdmactl(['reg', ...common, '--access', 'local-write,remote-read', '--for', '1ms'], scope.env);
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain('cannot register 4 MiB with verbs');
    expect(r.stderr).toContain('ibv_reg_mr: EFAULT');
    expect(r.stderr).toContain('the kernel refused to pin this mapping');
    expect(r.stderr).toContain('a writable registration (e.g. local-write) of a read-only mapping is refused');
    expect(r.stdout).toBe('');
  });

  it('pagemap before and after, in one process (the built engine): file pages → as observed', () => {
    const p = probe<ProbeResult>(['readonly-file', FILE, String(LENGTH)]);
    console.log(`[${labKernel.name} ${labKernel.release}] pagemap before: ${p.before.filePages} file pages, ${p.before.anonPages} anon (first pfn ${p.before.first.pfn}); `
      + `after remote-read MR: ${p.after.filePages} file, ${p.after.anonPages} anon (first pfn ${p.after.first.pfn}); ${p.pfnsChanged}/${PAGES} PFNs changed; `
      + `local-write MR: ${p.localWrite.ok ? 'registered' : `refused (${p.localWrite.errno})`}`);
    // Before: every page read in, all page-cache pages.
    expect(p.before).toMatchObject({ pages: PAGES, present: PAGES, filePages: PAGES, anonPages: 0 });
    expect(p.remoteRead.ok, JSON.stringify(p.remoteRead)).toBe(true);
    expect(p.remoteRead.pinAfterKb).toBe(p.pinBeforeKb + LENGTH / 1024);
    expect(p.after.present).toBe(PAGES);
    if (COPIES) {
      expect(p.after).toMatchObject({ filePages: 0, anonPages: PAGES });
      expect(p.pfnsChanged).toBe(PAGES);
    } else {
      expect(p.after).toMatchObject({ filePages: PAGES, anonPages: 0 });
      expect(p.pfnsChanged).toBe(0);
    }
    // Same bytes either way.
    expect(p.touchedSumAfter).toBe(p.touchedSum);
    expect(p.localWrite.ok).toBe(false);
    expect(p.localWrite.errno).toBe('EFAULT');
    expect(p.localWrite.error?.exitCode).toBe(1);
    expect(p.pinAfterCloseKb).toBe(p.pinBeforeKb);
  });
});
