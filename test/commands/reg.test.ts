// `rdmactl reg` end to end: the real binary holds real pins; the test reads /proc itself.
import { beforeAll, describe, expect, it } from 'vitest';
import { rdmactl, jsonLines } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { ROOT, UNPRIVILEGED, builtOrThrow, exited, runSync, startRdmactl, unprivilegedUnavailable } from '../helpers/spawn.js';

const MiB = 1024 * 1024;

beforeAll(() => builtOrThrow());

describe('rdmactl reg (real process)', () => {
  it('uring 64MiB: the holder\'s VmPin rises by exactly 65536 kB while held, and SIGTERM releases it', async () => {
    const { child, firstLine, rest } = await startRdmactl(['reg', '64MiB', '--backend', 'uring', '--json']);
    const record = JSON.parse(firstLine) as Record<string, number | string>;
    expect(record['event']).toBe('registered');
    expect(record['pid']).toBe(child.pid);
    expect(record['length']).toBe(64 * MiB);
    expect(statusKb(child.pid!, 'VmPin')).toBe(65536 + Number(record['pinnedBytesBefore']) / 1024);
    expect(Number(record['pinnedBytesAfter']) / 1024).toBe(statusKb(child.pid!, 'VmPin'));
    expect(record['addr']).toMatch(/^0x[0-9a-f]+$/);
    child.kill('SIGTERM');
    expect(await exited(child)).toEqual({ code: 0, signal: null });
    const released = JSON.parse(rest().trim()) as Record<string, number>;
    expect(released).toMatchObject({ event: 'released', pinnedBytesAfterRelease: 0, lockedBytesAfterRelease: 0 });
  });

  it('mlock: VmLck of the holder equals the record, VmPin stays 0', async () => {
    const { child, firstLine } = await startRdmactl(['reg', '8M', '--backend', 'mlock', '--json']);
    const record = JSON.parse(firstLine) as Record<string, number>;
    expect(statusKb(child.pid!, 'VmLck')).toBe(8192);
    expect(record['lockedBytesAfter']).toBe(8 * MiB);
    expect(statusKb(child.pid!, 'VmPin')).toBe(0);
    child.kill('SIGINT');
    expect((await exited(child)).code).toBe(0);
  });
});

describe('rdmactl reg (in-process)', () => {
  it('--overlap --json: two handles over one range, VmPin counts both', async () => {
    const result = await rdmactl('reg', '4M', '--backend', 'uring', '--overlap', '--json', '--for', '10ms');
    expect(result.code).toBe(0);
    const [registered, released] = jsonLines(result.stdout);
    expect(registered).toMatchObject({ backend: 'uring', handles: 2, buffers: 1, length: 4 * MiB, device: null, lkey: null });
    expect(Number(registered!['pinnedBytesAfter']) - Number(registered!['pinnedBytesBefore'])).toBe(8 * MiB);
    const regs = registered!['registrations'] as Array<{ addr: string }>;
    expect(regs[0]!.addr).toBe(regs[1]!.addr);
    expect(released).toMatchObject({ event: 'released' });
    expect(statusKb('self', 'VmPin')).toBe(Number(registered!['pinnedBytesBefore']) / 1024);
  });

  it('--backend auto says which backend it picked, on stderr', async () => {
    const result = await rdmactl('reg', '64K', '--json', '--for', '1ms');
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/--backend auto: (no RDMA device, using uring|using verbs on )/);
  });

  it.each([
    [['reg', '0'], /invalid size '0'/],
    [['reg', '-4K'], /invalid size|unknown option/],
    [['reg', 'lots'], /invalid size 'lots'/],
    [['reg', '99999999T'], /too large/],
    [['reg', '4K', '--backend', 'nope'], /argument 'nope' is invalid/],
    [['reg', '4K', '--bogus'], /unknown option '--bogus'/],
    [['reg', '4K', '--count', '0'], /invalid --count '0'/],
    [['reg', '4K', '--for', 'soon'], /invalid --for 'soon'/],
    [['reg', '4K', '--backend', 'uring', '--fork-init'], /--fork-init applies to --backend verbs only/],
    [['reg', '4K', '--backend', 'uring', '--access', 'local-write'], /--access applies to --backend verbs only/],
    [['reg', '4K', '--backing', 'file-private', '--file', '/nonexistent/x', '--backend', 'mlock'], /cannot open --file/],
    [['reg'], /missing required argument 'size'/],
    [['limits', 'abc'], /invalid PID 'abc'/],
    [['limits', '--set', '1G:1M'], /soft limit cannot exceed the hard limit/],
    [['nosuchcommand'], /unknown command/],
  ])('%j is a one-line usage error with exit 2', async (args, message) => {
    const result = await rdmactl(...args);
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe('over RLIMIT_MEMLOCK without CAP_IPC_LOCK', () => {
  const skipReason = unprivilegedUnavailable();

  it.skipIf(skipReason !== null)(`uring: explains the limit, exit 1 ${skipReason ? `(SKIPPED: ${skipReason})` : ''}`, () => {
    const result = runSync([...UNPRIVILEGED, process.execPath, `${ROOT}bin/rdmactl`, 'reg', '16M', '--backend', 'uring', '--for', '1ms']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^rdmactl: cannot register 16 MiB with uring \(io_uring_register: ENOMEM\): RLIMIT_MEMLOCK is 8 MiB and this process already has 0 B pinned \(VmPin\) and 0 B locked \(VmLck\)/);
    for (const hint of ['ulimit -l', 'limits.conf', 'LimitMEMLOCK=', 'docker run --ulimit memlock=-1']) expect(result.stderr).toContain(hint);
  });

  it.skipIf(skipReason !== null)('a failure part-way leaves nothing pinned or locked in the process', () => {
    // 3 × 3 MiB under an 8 MiB limit: the first two succeed, the third fails; the engine must undo the first two.
    const script = `
      const { register } = await import(${JSON.stringify(`${ROOT}dist/engine/register.js`)});
      const fs = await import('node:fs');
      const results = {};
      for (const backend of ['uring', 'mlock']) {
        let error = null;
        try { await register({ length: 3 * 1024 * 1024, backend, count: 3 }); } catch (err) { error = err.message; }
        const status = fs.readFileSync('/proc/self/status', 'utf8');
        results[backend] = { error, vmPin: /VmPin:\\s+(\\d+)/.exec(status)[1], vmLck: /VmLck:\\s+(\\d+)/.exec(status)[1] };
      }
      console.log(JSON.stringify(results));`;
    const result = runSync([...UNPRIVILEGED, process.execPath, '--input-type=module', '-e', script]);
    expect(result.status, result.stderr).toBe(0);
    const results = JSON.parse(result.stdout) as Record<string, { error: string | null; vmPin: string; vmLck: string }>;
    for (const backend of ['uring', 'mlock']) {
      expect(results[backend]!.error).toMatch(/RLIMIT_MEMLOCK is 8 MiB/);
      expect(results[backend]!.vmPin).toBe('0');
      expect(results[backend]!.vmLck).toBe('0');
    }
  });
});
