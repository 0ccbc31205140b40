// readonly-private on the real kernel. The test repeats each experiment on a file of its own — a
// PROT_READ MAP_PRIVATE mapping, a MAP_SHARED one for the page-cache PFN, its own io_uring
// registration attempt and its own mlock — and the rows must agree with what it saw.
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SyscallError } from '../../src/lib/errno.js';
import { IoUring } from '../../src/ffi/io_uring.js';
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, mlock, mmap, munlock, munmap, view } from '../../src/ffi/libc.js';
import { readonlyPrivateScenario } from '../../src/scenario/scenarios/readonlyPrivate.js';
import { TEST_LENGTH, pagemapPfn, scenarioContext } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'rdmactl-test-ro-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The test's own file, mapped PROT_READ private and shared; `fn` gets both addresses. */
function withOwnMappings<T>(fn: (privateAddr: bigint, sharedAddr: bigint) => T): T {
  const path = join(dir, `f${Math.random().toString(16).slice(2)}`);
  const fd = openSync(path, 'w+');
  try {
    writeSync(fd, Buffer.alloc(TEST_LENGTH, 0xa1), 0, TEST_LENGTH, 0);
    const priv = mmap(TEST_LENGTH, PROT_READ, MAP_PRIVATE, fd, 0);
    const shared = mmap(TEST_LENGTH, PROT_READ, MAP_SHARED, fd, 0);
    try {
      void view(priv, 1)[0];
      void view(shared, 1)[0];
      return fn(priv, shared);
    } finally {
      munmap(priv, TEST_LENGTH);
      munmap(shared, TEST_LENGTH);
    }
  } finally {
    closeSync(fd);
  }
}

function step(row: Awaited<ReturnType<typeof readonlyPrivateScenario.run>>, name: string) {
  return row.observations.find((o) => o.step === name)!;
}

describe('scenario readonly-private', () => {
  it('plain: a read of a private file mapping maps the page-cache page, and the file\'s writes show through', async () => {
    const ownSame = withOwnMappings((p, s) => pagemapPfn('self', p) === pagemapPfn('self', s));
    const row = await readonlyPrivateScenario.run({ backend: 'plain', backing: 'file-private', variant: 'read-access' }, scenarioContext());
    expect(row.verdict).toBe('not-pinned');
    expect(step(row, 'registered').pfn === step(row, 'mapped').pfn).toBe(ownSame);
    expect(step(row, 'file-written').processSees).toBe('parent-write');
  });

  it('mlock: locks the page-cache pages without copying them', async () => {
    const ownSame = withOwnMappings((p, s) => {
      mlock(p, TEST_LENGTH);
      try { return pagemapPfn('self', p) === pagemapPfn('self', s); } finally { munlock(p, TEST_LENGTH); }
    });
    const row = await readonlyPrivateScenario.run({ backend: 'mlock', backing: 'file-private', variant: 'read-access' }, scenarioContext());
    expect(row.verdict).toBe('not-pinned');
    expect(step(row, 'registered').lockedBytes).toBeGreaterThanOrEqual(TEST_LENGTH);
    expect(step(row, 'registered').pfn === step(row, 'mapped').pfn).toBe(ownSame);
  });

  it('uring: refused with the errno the test\'s own registration gets, for both variants', async () => {
    const ownErrno = withOwnMappings((p) => {
      using ring = new IoUring(2);
      try {
        ring.registerBuffers([{ addr: p, length: TEST_LENGTH }]);
        return 'registered';
      } catch (err) {
        if (err instanceof SyscallError) return err.errnoName;
        throw err;
      }
    });
    for (const variant of ['read-access', 'write-access']) {
      const row = await readonlyPrivateScenario.run({ backend: 'uring', backing: 'file-private', variant }, scenarioContext());
      if (ownErrno === 'registered') {
        expect(row.verdict).not.toBe('refused');
      } else {
        expect(row.verdict).toBe('refused');
        expect(row.reason).toContain(ownErrno);
        expect(step(row, 'refused').note).toContain(ownErrno);
      }
    }
  });

  it('not applicable: write access for plain and mlock, other backings; verbs without a device', async () => {
    const env = scenarioContext().env;
    expect(readonlyPrivateScenario.notApplicable({ backend: 'mlock', backing: 'file-private', variant: 'write-access' }, env)).toMatch(/no access mode/);
    expect(readonlyPrivateScenario.notApplicable({ backend: 'uring', backing: 'anon', variant: 'read-access' }, env)).toMatch(/file-private/);
    const verbs = await readonlyPrivateScenario.run({ backend: 'verbs', backing: 'file-private', variant: 'read-access' }, scenarioContext());
    expect(verbs).toMatchObject({ verdict: 'skipped', reason: 'no RDMA device on this host' });
  });
});
