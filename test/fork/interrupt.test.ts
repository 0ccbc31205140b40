// The real binary: SIGINT/SIGTERM in the middle of a scenario (child alive) → every child is killed
// and reaped, registrations released, exit 130/143. PFNs hidden for an unprivileged user.
import { spawn } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, UNPRIVILEGED, builtOrThrow, exited, runSync, unprivilegedUnavailable } from '../helpers/spawn.js';
import { childrenOf, exists, isPausedChildOf, isWatchdog, sleep } from './helpers.js';

beforeAll(() => builtOrThrow());

/** The paused children of rdmactl `pid` (its fork watchdog is left out). */
async function waitForChildOf(pid: number, timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // Only the paused clones: rdmactl also runs `rdma sys show` (copy-on-fork) and its watchdog, and
    // between fork and exec those still carry rdmactl's command line, so a clone must stay one a moment.
    const kids = childrenOf(pid).filter((kid) => isPausedChildOf(kid, pid));
    if (kids.length > 0) {
      await sleep(100);
      const paused = kids.filter((kid) => isPausedChildOf(kid, pid));
      if (paused.length > 0) return paused;
    }
    await sleep(10);
  }
  throw new Error(`rdmactl ${pid} never started a child`);
}

describe('rdmactl fork interrupted (real process)', () => {
  it.each([['SIGINT', 130], ['SIGTERM', 143]] as const)('%s mid-scenario: exit %i, its child is killed and reaped', async (signal, code) => {
    const child = spawn(process.execPath, [BIN, 'fork', '--step-delay', '5000'], { stdio: 'pipe' });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const rdmactlPid = child.pid!;
    const kids = await waitForChildOf(rdmactlPid);
    expect(kids).toHaveLength(1); // one scenario at a time, its paused child alive
    expect(exists(kids[0]!)).toBe(true);
    const watchdogs = childrenOf(rdmactlPid).filter(isWatchdog);
    expect(watchdogs).toHaveLength(1); // armed before the fork
    child.kill(signal);
    const result = await exited(child);
    expect(result).toEqual({ code, signal: null });
    expect(stderr).toMatch(new RegExp(`interrupted by ${signal}`));
    expect(exists(kids[0]!)).toBe(false); // not running, not a zombie, not re-parented
    expect(exists(watchdogs[0]!)).toBe(false); // stopped and reaped by the command itself
    expect(childrenOf(rdmactlPid)).toEqual([]);
  });

  it('an uninterrupted real run exits 0 and leaves no process behind', async () => {
    const child = spawn(process.execPath, [BIN, 'fork', '--json'], { stdio: 'pipe' });
    const seen = new Set<number>();
    const poll = setInterval(() => { for (const pid of childrenOf(child.pid!)) seen.add(pid); }, 2);
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const result = await exited(child);
    clearInterval(poll);
    expect(result.code).toBe(0);
    expect(JSON.parse(out)).toHaveProperty('scenarios');
    for (const pid of seen) expect(exists(pid)).toBe(false);
  });
});

describe('rdmactl fork without CAP_SYS_ADMIN (real process)', () => {
  const why = unprivilegedUnavailable();
  it.skipIf(why !== null)('PFNs hidden (null, pfnsVisible false, text says so); data-path checks still run', () => {
    const json = runSync([...UNPRIVILEGED, process.execPath, BIN, 'fork', '--backend', 'uring,plain', '--protect', 'none,dontfork', '--json']);
    expect(json.stderr).toBe('');
    expect(json.status).toBe(0);
    const report = JSON.parse(json.stdout) as { pfnsVisible: boolean; scenarios: Array<Record<string, unknown>> };
    expect(report.pfnsVisible).toBe(false);
    for (const row of report.scenarios) {
      expect(row['parentPfnBefore']).toBeNull();
      expect(row['childPfn']).toBeNull();
      expect(row['parentPfnStable']).toBeNull();
    }
    expect(report.scenarios[0]).toMatchObject({ backend: 'uring', deviceSeesParentWrite: true, parentSeesDeviceWrite: true, verdict: 'coherent' });
    expect(report.scenarios[1]).toMatchObject({ backend: 'uring', protection: 'dontfork', childMapped: false, verdict: 'child-unmapped' });
    const text = runSync([...UNPRIVILEGED, process.execPath, BIN, 'fork', '--backend', 'uring']);
    expect(text.stderr).toContain('PFNs unavailable (need CAP_SYS_ADMIN)');
    expect(text.stdout).not.toContain('PFN-BEFORE');
  });
});
