// truncate on the real kernel. The test repeats the experiment with its own memfd, mapping and
// io_uring ring (its own WRITE_FIXED is its "device"), its own pread and /proc/self/mem reads, and
// samples its own VmPin while the row runs; the rows must say what it saw.
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SyscallError } from '../../src/lib/errno.js';
import { IORING_OP_WRITE_FIXED, IoUring } from '../../src/ffi/io_uring.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAP_SHARED, PROT_READ, PROT_WRITE, fallocate, memfdCreate, mmap, munmap } from '../../src/ffi/libc.js';
import { truncateScenario } from '../../src/scenario/scenarios/truncate.js';
import type { ScenarioRow } from '../../src/scenario/types.js';
import { statusKb } from '../helpers/proc.js';
import { TEST_LENGTH, scenarioContext } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'rdmactl-test-truncate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pread(fd: number, length: number, offset = 0): Buffer {
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, offset);
  return buf.subarray(0, n);
}

/** Our own /proc/self/mem read of one page: the bytes, or the error code (EIO where a load would SIGBUS). */
function memRead(addr: bigint): Buffer | string {
  const fd = openSync('/proc/self/mem', 'r');
  try {
    return pread(fd, 4096, addr as unknown as number);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  } finally {
    closeSync(fd);
  }
}

interface Own { processAfter: Buffer | string; fileBytesAfter: number; fileFirstByteAfter: number | null; deviceFirstByte: number | null }

/** The experiment, done by the test: memfd filled with 0xa1, mapped, pinned by its own ring, then cut. */
function ownExperiment(variant: 'truncate' | 'punch-hole'): Own {
  const fd = memfdCreate('test-truncate');
  const sink = memfdCreate('test-sink');
  try {
    ftruncateSync(fd, TEST_LENGTH);
    writeSync(fd, Buffer.alloc(TEST_LENGTH, 0xa1), 0, TEST_LENGTH, 0);
    const addr = mmap(TEST_LENGTH, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    try {
      using ring = new IoUring(2);
      ring.registerBuffers([{ addr, length: TEST_LENGTH }]);
      if (variant === 'punch-hole') fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, TEST_LENGTH);
      else ftruncateSync(fd, 0);
      const file = pread(fd, TEST_LENGTH);
      const processAfter = memRead(addr);
      ring.fixedIo(IORING_OP_WRITE_FIXED, sink, addr, TEST_LENGTH, 0, 0);
      const device = pread(sink, 1);
      ring.unregisterBuffers(); // at once: closing a ring releases its pins later, from a kernel worker
      return { processAfter, fileBytesAfter: file.length, fileFirstByteAfter: file[0] ?? null, deviceFirstByte: device[0] ?? null };
    } finally {
      munmap(addr, TEST_LENGTH);
    }
  } finally {
    closeSync(fd);
    closeSync(sink);
  }
}

async function sampledVmPin(fn: () => Promise<ScenarioRow>): Promise<{ row: ScenarioRow; seen: number[] }> {
  const seen: number[] = [];
  const sample = (): void => { const kb = statusKb('self', 'VmPin'); if (seen.at(-1) !== kb) seen.push(kb); };
  sample();
  const timer = setInterval(sample, 5);
  try {
    const row = await fn();
    sample();
    return { row, seen };
  } finally {
    clearInterval(timer);
  }
}

const at = (row: ScenarioRow, step: string) => row.observations.find((o) => o.step === step)!;

describe('scenario truncate', () => {
  it('uring memfd truncate: the pin keeps the old pages for the device, the file and the process lose them', async () => {
    const own = ownExperiment('truncate');
    expect(own.deviceFirstByte).toBe(0xa1); // the test's own device read the old bytes
    expect(own.fileBytesAfter).toBe(0);
    const before = statusKb('self', 'VmPin');
    const { row, seen } = await sampledVmPin(() => truncateScenario.run({ backend: 'uring', backing: 'memfd', variant: 'truncate' }, scenarioContext({ stepDelayMs: 40 })));
    expect(row.verdict, row.reason ?? '').toBe('device-keeps-old-pages');
    expect(seen).toEqual([before, before + TEST_LENGTH / 1024, before]); // pinned through the truncate, until released
    const cut = at(row, 'truncated');
    expect(cut.deviceReads).toBe('pre-fork');
    expect(cut.processSees).toBe(typeof own.processAfter === 'string' ? 'unmapped' : 'zeros');
    expect(cut.note).toContain('EOF, 0 bytes');
    expect(at(row, 'device-wrote')).toMatchObject({ deviceReads: 'device-write', processSees: 'zeros' });
    expect(at(row, 'released').pinnedBytes).toBe(before * 1024);
  });

  it('uring memfd punch-hole: the file reads zeros, the device the old bytes', async () => {
    const own = ownExperiment('punch-hole');
    expect(own.fileFirstByteAfter).toBe(0);
    const row = await truncateScenario.run({ backend: 'uring', backing: 'memfd', variant: 'punch-hole' }, scenarioContext());
    expect(row.verdict).toBe(own.deviceFirstByte === 0xa1 ? 'device-keeps-old-pages' : 'device-follows-file');
    expect(at(row, 'punched').note).toMatch(/file \(pread\): \d+ bytes, zeros/);
  });

  it('uring on a regular file: refused with the errno the test\'s own registration gets, or kept like memfd', async () => {
    const path = join(dir, 'regular');
    const fd = openSync(path, 'w+');
    let ownOutcome: string;
    try {
      writeSync(fd, Buffer.alloc(TEST_LENGTH, 0xa1), 0, TEST_LENGTH, 0);
      const addr = mmap(TEST_LENGTH, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      try {
        using ring = new IoUring(2);
        ring.registerBuffers([{ addr, length: TEST_LENGTH }]);
        ownOutcome = 'registered';
      } catch (err) {
        if (!(err instanceof SyscallError)) throw err;
        ownOutcome = err.errnoName;
      } finally {
        munmap(addr, TEST_LENGTH);
      }
    } finally {
      closeSync(fd);
    }
    const row = await truncateScenario.run({ backend: 'uring', backing: 'file-shared', variant: 'truncate' }, scenarioContext());
    if (ownOutcome === 'registered') expect(row.verdict).not.toBe('refused');
    else expect(row).toMatchObject({ verdict: 'refused', reason: expect.stringContaining(ownOutcome) });
  });

  it('plain and mlock: nothing keeps the pages; the process reads EIO beyond EOF, as the test\'s own read does', async () => {
    const fd = memfdCreate('test-plain');
    let own: Buffer | string;
    try {
      ftruncateSync(fd, TEST_LENGTH);
      const addr = mmap(TEST_LENGTH, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      ftruncateSync(fd, 0);
      own = memRead(addr);
      munmap(addr, TEST_LENGTH);
    } finally {
      closeSync(fd);
    }
    expect(own).toBe('EIO');
    for (const backend of ['plain', 'mlock'] as const) {
      const row = await truncateScenario.run({ backend, backing: 'memfd', variant: 'truncate' }, scenarioContext());
      expect(row.verdict).toBe('not-pinned');
      expect(at(row, 'truncated').processSees).toBe('unmapped');
      expect(at(row, 'resized').processSees).toBe('zeros');
    }
  });

  it('verbs without a device is skipped; other backings are not applicable', async () => {
    expect(await truncateScenario.run({ backend: 'verbs', backing: 'memfd', variant: 'truncate' }, scenarioContext()))
      .toMatchObject({ verdict: 'skipped', reason: 'no RDMA device on this host' });
    expect(truncateScenario.notApplicable({ backend: 'uring', backing: 'anon', variant: 'truncate' }, scenarioContext().env)).toMatch(/shared file mapping/);
  });

  it('interrupted after the truncate: the registration, mapping and memfd are released', async () => {
    const before = statusKb('self', 'VmPin');
    const controller = new AbortController();
    setTimeout(() => controller.abort('SIGINT'), 30);
    await expect(truncateScenario.run({ backend: 'uring', backing: 'memfd', variant: 'truncate' }, scenarioContext({ signal: controller.signal, stepDelayMs: 400 })))
      .rejects.toMatchObject({ name: 'InterruptedError' });
    expect(statusKb('self', 'VmPin')).toBe(before);
  });
});
