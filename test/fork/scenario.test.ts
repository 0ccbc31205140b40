// The scenario machinery directly: a device path that lost the parent's pages must give the
// verdict "parent disconnected", and a scenario that throws still kills and reaps its child.
import { describe, expect, it } from 'vitest';
import { liveChildPids, PausedChild } from '../../src/fork/child.js';
import type { DevicePath } from '../../src/fork/devicePath.js';
import { buildMatrix, runMatrix, runScenario, verdictOf, type ScenarioResult } from '../../src/fork/scenario.js';
import { pageSize } from '../../src/proc/pagemap.js';
import { decideCopyOnFork } from '../../src/observe/copyOnFork.js';
import { statusKb } from '../helpers/proc.js';
import { childrenOf, exists, isWatchdog } from './helpers.js';
import { armForkWatchdog, disarmForkWatchdog } from '../../src/fork/watchdog.js';

const uringAnon = { backend: 'uring', protection: 'none', writer: 'parent', backing: 'anon' } as const;

/** A "device" stuck on a private snapshot: what a pin looks like after the parent was moved off it. */
function staleDevice(length: number): DevicePath {
  const snapshot = Buffer.alloc(length, 0xa1);
  return {
    name: 'stale test device',
    deviceWrite: (bytes, offset) => { Buffer.from(bytes).copy(snapshot, offset); },
    deviceRead: (offset, len) => snapshot.subarray(offset, offset + len),
    close: () => undefined,
    [Symbol.dispose]: () => undefined,
  };
}

describe('fork scenarios (machinery)', () => {
  it('copy-on-fork without a netlink answer: from 5.9 on, and the source says so and why', () => {
    const noNetlink = { ok: false, reason: 'the kernel has no RDMA netlink (no RDMA support loaded)' } as const;
    expect(decideCopyOnFork('5.8.18', noNetlink).copyOnFork).toBe(false);
    expect(decideCopyOnFork('5.9.0-1-amd64', noNetlink).copyOnFork).toBe(true);
    expect(decideCopyOnFork('4.19.0', noNetlink).copyOnFork).toBe(false);
    const answer = decideCopyOnFork('6.18.44-fc', noNetlink);
    expect(answer.copyOnFork).toBe(true);
    expect(answer.copyOnForkSource).toBe('the kernel version (Linux ≥ 5.9 copies); the kernel has no RDMA netlink (no RDMA support loaded)');
  });

  it('copy-on-fork: the kernel\'s own answer wins over the version (iproute2 6.1 prints plain pairs, newer JSON)', () => {
    expect(decideCopyOnFork('6.18.0', { ok: true, data: { netns: 'shared', 'copy-on-fork': 'off' } })).toEqual({
      kernel: '6.18.0', copyOnFork: false, copyOnForkSource: 'rdma sys show',
    });
    expect(decideCopyOnFork('5.4.0', { ok: true, data: [{ netns: 'shared', 'copy-on-fork': true }] }).copyOnFork).toBe(true);
  });

  it('copy-on-fork: netlink answers without the attribute (a kernel before 5.12, e.g. 5.10) → unknown, not guessed from the version', () => {
    // `rdma sys show` on Debian bullseye's 5.10: iproute2's plain pairs, no copy-on-fork.
    expect(decideCopyOnFork('5.10.0-46-amd64', { ok: true, data: { netns: 'shared' } })).toEqual({
      kernel: '5.10.0-46-amd64', copyOnFork: null, copyOnForkSource: 'unknown (kernel predates the attribute)',
    });
    expect(decideCopyOnFork('5.4.0', { ok: true, data: [{ netns: 'shared' }] }).copyOnFork).toBeNull();
    // iproute2 prints "copy-on-fork off" when the reply lacks the attribute: our own netlink reading says absent.
    expect(decideCopyOnFork('5.10.0-46-amd64', { ok: true, data: { netns: 'shared', 'copy-on-fork': 'off' } }, 'absent')).toEqual({
      kernel: '5.10.0-46-amd64', copyOnFork: null, copyOnForkSource: 'unknown (kernel predates the attribute)',
    });
    expect(decideCopyOnFork('6.1.0', { ok: true, data: { netns: 'shared', 'copy-on-fork': 'on' } }, true).copyOnFork).toBe(true);
  });

  it('a device that does not see the parent\'s pages gives "parent disconnected (device writes lost)"', async () => {
    const length = 4 * pageSize();
    const row = await runScenario(uringAnon, { verbsUnavailable: null }, { length, devicePath: () => staleDevice(length) });
    expect(row.deviceSeesParentWrite).toBe(false);
    expect(row.parentSeesDeviceWrite).toBe(false);
    expect(row.verdict).toBe('parent-disconnected');
  });

  it('without a device path, a moved PFN on a pinned backend means disconnected; hidden PFNs mean unverified', () => {
    const base = { pinned: true, deviceSeesParentWrite: null, parentSeesDeviceWrite: null, childMapped: true, childInherited: 'pre-fork', devicePath: 'none' } as unknown as ScenarioResult;
    expect(verdictOf({ ...base, parentPfnStable: false }).verdict).toBe('parent-disconnected');
    expect(verdictOf({ ...base, parentPfnStable: true }).verdict).toBe('coherent');
    expect(verdictOf({ ...base, parentPfnStable: null }).verdict).toBe('unverified');
  });

  it('an on-demand MR is judged by the device path alone: a moved page is not a disconnection', () => {
    const odp = { pinned: false, onDemand: true, deviceSeesParentWrite: null, parentSeesDeviceWrite: null, childMapped: true, childInherited: 'pre-fork', devicePath: null } as unknown as ScenarioResult;
    expect(verdictOf({ ...odp, parentPfnStable: false }).verdict).toBe('unverified');
    expect(verdictOf({ ...odp, parentPfnStable: true }).verdict).toBe('unverified');
    expect(verdictOf({ ...odp, deviceSeesParentWrite: true, parentSeesDeviceWrite: true, parentPfnStable: false }).verdict).toBe('coherent');
    expect(verdictOf({ ...odp, deviceSeesParentWrite: false, parentSeesDeviceWrite: true }).verdict).toBe('parent-disconnected');
    expect(verdictOf({ ...odp, onDemand: false }).verdict).toBe('not-pinned');
  });

  it('a scenario that throws mid-way still kills and reaps its child and releases its pin', async () => {
    const pinned = statusKb('self', 'VmPin');
    let childPid = 0;
    const failing = (): DevicePath => ({
      name: 'failing test device',
      deviceWrite: () => { throw new Error('device exploded'); },
      deviceRead: () => { throw new Error('device exploded'); },
      close: () => undefined,
      [Symbol.dispose]: () => undefined,
    });
    await expect(runScenario(uringAnon, { verbsUnavailable: null }, {
      length: 4 * pageSize(), devicePath: failing, onChild: (pid) => { childPid = pid; },
    })).rejects.toThrow('device exploded');
    expect(childPid).toBeGreaterThan(0);
    expect(exists(childPid)).toBe(false); // killed and reaped: not even a zombie
    expect(liveChildPids()).toEqual([]);
    expect(statusKb('self', 'VmPin')).toBe(pinned);
    // runMatrix reports such a row as an error and goes on with the next one.
    const report = await runMatrix(buildMatrix({ backend: ['uring', 'plain'] }), { length: 4 * pageSize(), devicePath: failing });
    expect(report.scenarios.map((s) => s.verdict)).toEqual(['error', 'not-pinned']);
    expect(report.scenarios[0]!.reason).toBe('device exploded');
  });

  it('PausedChild: refused until the watchdog is armed; alive until closed, close() is idempotent and reaps', async () => {
    expect(() => PausedChild.start()).toThrow(/armForkWatchdog/);
    await armForkWatchdog();
    try {
      const child = PausedChild.start();
      expect(childrenOf(process.pid)).toContain(child.pid);
      child.close();
      child.close();
      expect(child.exitStatus?.signal).toBe(9);
      expect(exists(child.pid)).toBe(false);
    } finally {
      await disarmForkWatchdog();
    }
    expect(childrenOf(process.pid).filter(isWatchdog)).toEqual([]);
  });

  it('an aborted run stops with InterruptedError and leaves nothing behind', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const run = runMatrix(buildMatrix({ backend: ['uring'], writer: ['parent', 'child', 'both', 'none'] }), {
      length: 4 * pageSize(), signal: controller.signal, stepDelayMs: 50,
      onChild: (pid) => { seen.push(pid); controller.abort('SIGTERM'); },
    });
    await expect(run).rejects.toMatchObject({ name: 'InterruptedError', exitCode: 143 });
    expect(seen).toHaveLength(1);
    expect(exists(seen[0]!)).toBe(false);
    expect(liveChildPids()).toEqual([]);
  });
});

describe('execution order', () => {
  it('verbs fork-init rows run after every other row (ibv_fork_init is process-wide)', async () => {
    const { executionOrder } = await import('../../src/fork/scenario.js');
    const specs = buildMatrix({ backend: ['verbs', 'uring'], protection: ['fork-init', 'none'] });
    const order = executionOrder(specs).map((i) => `${specs[i]!.backend}/${specs[i]!.protection}`);
    expect(order).toEqual(['verbs/none', 'uring/fork-init', 'uring/none', 'verbs/fork-init']);
  });
});
