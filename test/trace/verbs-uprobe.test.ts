// The verbs source's probes on the real kernel: defined through uprobe_events exactly as planned,
// enabled in a tracefs instance of the test's own, hit by a real process calling ibv_reg_mr, and the
// lines the kernel wrote fed to handle(). Without an RDMA device the call is made to fail inside
// libibverbs (fork protection on, an unmapped range: madvise(MADV_DONTFORK) fails before the
// provider is reached), so the MR is NULL: a 'failed' event, and the two chained returns of
// ibv_reg_mr → ibv_reg_mr_iova2 show that one call makes exactly one event.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TraceLine } from '../../src/trace/types.js';
import { VerbsSource } from '../../src/trace/verbs.js';
import { tracingUnavailable, unmountTracefsIfMounted } from '../helpers/tracefs.js';

const TRACEFS = '/sys/kernel/tracing';
const LIBIBVERBS = '/usr/lib/x86_64-linux-gnu/libibverbs.so.1';

function why(): string | null {
  // Mounts tracefs for the run when it is not mounted (as the other trace tests do), else says why not.
  const tracing = tracingUnavailable('test/trace/verbs-uprobe', 'needs root to define uprobes');
  if (tracing) return tracing;
  if (!existsSync(`${TRACEFS}/uprobe_events`)) return `no uprobe_events under ${TRACEFS} (tracefs not mounted there, or no CONFIG_UPROBE_EVENTS)`;
  if (!existsSync(LIBIBVERBS)) return `${LIBIBVERBS} missing (libibverbs1)`;
  return null;
}
const skipReason = why();
if (skipReason) console.warn(`SKIP verbs uprobes on the real kernel: ${skipReason}`);
afterAll(() => unmountTracefsIfMounted());

/** A trace file line with record-tgid: `COMM-TID (TGID) [CPU] FLAGS TIME: EVENT: PAYLOAD`. */
function splitLine(text: string): TraceLine | null {
  const m = /^\s*(.+)-(\d+)\s+\(\s*(\d+|-+)\)\s+\[(\d+)\]\s+\S+\s+(\d+\.\d+): (\w+): (.*)$/.exec(text);
  if (!m) return null;
  return { comm: m[1]!, tid: Number(m[2]), tgid: /^\d+$/.test(m[3]!) ? Number(m[3]) : null, cpu: Number(m[4]), time: Number(m[5]), event: m[6]!, payload: m[7]! };
}

const CALLER = `
import koffi from ${JSON.stringify(createRequire(import.meta.url).resolve('koffi'))};
const lib = koffi.load('libibverbs.so.1');
const forkInit = lib.func('int ibv_fork_init(void)');
const regMr = lib.func('void *ibv_reg_mr(void *pd, void *addr, size_t len, int access)');
forkInit();
// A protection domain whose context's device is zeroed memory: enough for libibverbs to reach the
// fork protection, which fails on an unmapped range, so no provider is ever called.
const device = Buffer.alloc(4096), context = Buffer.alloc(4096), pd = Buffer.alloc(64);
context.writeBigUInt64LE(BigInt(koffi.address(device)), 0);
pd.writeBigUInt64LE(BigInt(koffi.address(context)), 0);
const mr = regMr(pd, 0x10000n, 12288, 1);
process.stdout.write(mr === null ? 'null' : 'mr');
`;

describe.skipIf(skipReason !== null)('verbs uprobes on the real kernel', () => {
  it('turns one failing ibv_reg_mr into exactly one failed event', () => {
    const source = new VerbsSource({ libraries: [realpathSync(LIBIBVERBS)] });
    const availability = source.detect({ root: TRACEFS, availableEvents: new Set(), uprobes: true, kprobes: false, writable: true });
    expect(availability.available, availability.why).toBe(true);
    const group = `rdmactl_${process.pid}`;
    const instance = `${TRACEFS}/instances/${group}`;
    const defined: string[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-uprobe-'));
    let instanceMade = false;
    try {
      for (const probe of source.probes()) {
        writeFileSync(`${TRACEFS}/uprobe_events`, `${probe.kind === 'uprobe' ? 'p' : 'r'}:${group}/${probe.event} ${probe.target}\n`, { flag: 'a' });
        defined.push(probe.event);
      }
      mkdirSync(instance);
      instanceMade = true;
      writeFileSync(`${instance}/options/record-tgid`, '1');
      writeFileSync(`${instance}/trace_clock`, 'mono');
      writeFileSync(`${instance}/events/${group}/enable`, '1');

      writeFileSync(join(dir, 'caller.mjs'), CALLER, { flag: 'wx' });
      const caller = spawnSync(process.execPath, [join(dir, 'caller.mjs')], { encoding: 'utf8', timeout: 30_000 });
      expect(caller.status, caller.stderr).toBe(0);
      expect(caller.stdout).toBe('null');
      writeFileSync(`${instance}/events/${group}/enable`, '0');

      const lines = readFileSync(`${instance}/trace`, 'utf8').split('\n').map(splitLine)
        .filter((l): l is TraceLine => l !== null && l.tid === caller.pid && source.owns(l.event));
      const returns = lines.filter((l) => l.event.endsWith('_return'));
      expect(returns.map((l) => l.event), 'ibv_reg_mr tail-calls ibv_reg_mr_iova2: both returns fire, innermost first')
        .toEqual(['verbs0_ibv_reg_mr_iova2_return', 'verbs0_ibv_reg_mr_return']);
      // The entry probes carry the task's name; the event takes it even when the header's comm
      // (the kernel's comm cache, looked up when the line is read) has lost the task.
      for (const entry of lines.filter((l) => l.event.endsWith('_entry'))) expect(entry.payload).toMatch(/ comm="node"$/);
      const events = lines.map((l) => ({ ...l, comm: '<...>' })).flatMap((l) => source.handle(l));
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        comm: 'node', pid: caller.pid, tid: caller.pid, source: 'verbs', op: 'failed', attempt: 'register', bytes: 12288, errno: 'unknown',
        detail: { function: 'ibv_reg_mr', addr: '0x10000', access: 1 },
      });
      expect(events[0]!.latencyNs).toBeGreaterThan(0);
    } finally {
      if (instanceMade) {
        try {
          writeFileSync(`${instance}/events/${group}/enable`, '0');
        } finally {
          rmdirSync(instance);
        }
      }
      for (const event of defined) writeFileSync(`${TRACEFS}/uprobe_events`, `-:${group}/${event}\n`, { flag: 'a' });
      rmSync(dir, { recursive: true, force: true });
    }
    expect(readFileSync(`${TRACEFS}/uprobe_events`, 'utf8')).not.toContain(`${group}/`);
  });
});
