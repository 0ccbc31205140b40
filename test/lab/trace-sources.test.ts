// The verbs and umem trace sources on a lab kernel with a real RDMA device: their probes defined as
// planned (uprobes on libibverbs, kprobes in ib_core), enabled in a tracefs instance of the test's
// own, and the lines real programs caused fed to handle(). The programs are ibv_rc_pingpong (one
// MR of the -s size each, a server and a client), once more with ODP where rxe has it, and a client
// refused by RLIMIT_MEMLOCK. The sizes are the ones given to the programs; the refusal's errno is
// the one the kernel's pinning returns for a locked-memory limit (ENOMEM).
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TraceEvent, TraceLine, TraceSourceDriver, TracefsFacts } from '../../src/trace/types.js';
import { UmemSource } from '../../src/trace/umem.js';
import { VerbsSource } from '../../src/trace/verbs.js';
import { inLab, notInLabReason, RXE_DEVICE, rxeHasOdp, sh } from './helpers.js';
import { ipv4GidIndex, serverThenClient, splitTraceLine } from './trace-helpers.js';
import { UNPRIVILEGED } from './verbs-helpers.js';

const TRACEFS = '/sys/kernel/tracing';
const GROUP = `rdmactl_${process.pid}`;
const INSTANCE = `${TRACEFS}/instances/${GROUP}`;
const SIZE = 65536;
const REFUSED_SIZE = 1048576;

if (!inLab) console.warn(`SKIP trace sources: ${notInLabReason}`);


describe.skipIf(!inLab)('verbs and umem trace sources on a lab kernel', () => {
  const defined: { kind: 'uprobe' | 'kprobe'; event: string }[] = [];
  let instanceMade = false;
  const sources: TraceSourceDriver[] = [new VerbsSource(), new UmemSource()];

  beforeAll(() => {
    if (!existsSync(`${TRACEFS}/available_events`)) {
      const mounted = sh(`mount -t tracefs nodev ${TRACEFS}`); // in the VM only
      expect(mounted.status, mounted.stderr).toBe(0);
    }
    const facts: TracefsFacts = {
      root: TRACEFS, availableEvents: new Set(), writable: true,
      uprobes: existsSync(`${TRACEFS}/uprobe_events`), kprobes: existsSync(`${TRACEFS}/kprobe_events`),
    };
    for (const source of sources) {
      const availability = source.detect(facts);
      console.log(`${source.name}: ${availability.why}`);
      expect(availability.available, availability.why).toBe(true);
    }
    for (const source of sources) {
      for (const probe of source.probes()) {
        const kind = probe.kind.startsWith('u') ? 'uprobe' : 'kprobe';
        const prefix = probe.kind === 'uprobe' || probe.kind === 'kprobe' ? 'p' : 'r';
        writeFileSync(`${TRACEFS}/${kind}_events`, `${prefix}:${GROUP}/${probe.event} ${probe.target}\n`, { flag: 'a' });
        defined.push({ kind, event: probe.event });
      }
    }
    mkdirSync(INSTANCE);
    instanceMade = true;
    writeFileSync(`${INSTANCE}/options/record-tgid`, '1');
    writeFileSync(`${INSTANCE}/trace_clock`, 'mono');
    writeFileSync(`${INSTANCE}/buffer_size_kb`, '4096');
  });

  afterAll(() => {
    if (instanceMade) {
      try {
        writeFileSync(`${INSTANCE}/events/${GROUP}/enable`, '0');
      } finally {
        rmdirSync(INSTANCE);
      }
    }
    for (const { kind, event } of defined.reverse()) writeFileSync(`${TRACEFS}/${kind}_events`, `-:${GROUP}/${event}\n`, { flag: 'a' });
    for (const kind of ['uprobe', 'kprobe']) expect(readFileSync(`${TRACEFS}/${kind}_events`, 'utf8')).not.toContain(`${GROUP}/`);
  });

  /** Runs a shell command with the probes enabled and returns the events the sources made of it. */
  function traced(command: string): TraceEvent[] {
    writeFileSync(`${INSTANCE}/trace`, ''); // clear
    writeFileSync(`${INSTANCE}/events/${GROUP}/enable`, '1');
    let output: ReturnType<typeof sh>;
    try {
      output = sh(command, { timeoutMs: 170_000 });
    } finally {
      writeFileSync(`${INSTANCE}/events/${GROUP}/enable`, '0');
    }
    const text = readFileSync(`${INSTANCE}/trace`, 'utf8');
    const lines = text.split('\n').map(splitTraceLine).filter((l): l is TraceLine => l !== null);
    expect(lines.length, `${output.stdout}${output.stderr}\n${text.slice(0, 4000)}`).toBeGreaterThan(0);
    return lines.flatMap((line) => sources.find((s) => s.owns(line.event))?.handle(line) ?? []);
  }

  function pingpongPair(port: number, flags: string): string {
    const gid = ipv4GidIndex();
    const pp = `ibv_rc_pingpong -d ${RXE_DEVICE} -g ${gid} -p ${port} -n 5 -s ${SIZE} ${flags}`;
    return serverThenClient(pp, port);
  }

  it('sees each ibv_rc_pingpong register and release its MR, once per source', () => {
    const events = traced(pingpongPair(18611, ''));
    const pingpong = events.filter((e) => e.comm === 'ibv_rc_pingpong');
    const pids = [...new Set(pingpong.map((e) => e.pid))];
    expect(pids, JSON.stringify(events, null, 1)).toHaveLength(2);
    for (const pid of pids) {
      for (const source of ['verbs', 'umem'] as const) {
        const mine = pingpong.filter((e) => e.pid === pid && e.source === source);
        const registered = mine.filter((e) => e.op === 'register');
        expect(registered.map((e) => e.bytes), `${source} ${JSON.stringify(mine)}`).toEqual([SIZE]);
        expect(registered[0]!.latencyNs).toBeGreaterThan(0);
        expect(mine.filter((e) => e.op === 'deregister').map((e) => e.bytes)).toEqual([SIZE]);
        expect(mine.filter((e) => e.op === 'failed')).toEqual([]);
      }
    }
  }, 240_000);

  it('reports the kernel errno of a refusal from the umem source and an unknown one from verbs', () => {
    const gid = ipv4GidIndex();
    const events = traced(`prlimit --memlock=65536:65536 ${UNPRIVILEGED.join(' ')} ibv_rc_pingpong -d ${RXE_DEVICE} -g ${gid} -p 18612 -n 1 -s ${REFUSED_SIZE} 127.0.0.1`);
    const failed = events.filter((e) => e.comm === 'ibv_rc_pingpong' && e.op === 'failed');
    expect(failed.map((e) => [e.source, e.attempt, e.bytes, e.errno]).sort(), JSON.stringify(events, null, 1)).toEqual([
      ['umem', 'register', REFUSED_SIZE, 'ENOMEM'],
      ['verbs', 'register', REFUSED_SIZE, 'unknown'],
    ]);
    expect(events.filter((e) => e.op === 'register')).toEqual([]);
  }, 240_000);

  it('counts an ODP MR once in the umem source, where rxe does ODP', (context) => {
    if (!rxeHasOdp()) {
      console.warn(`SKIP ODP trace: ibv_devinfo -v reports no ODP_SUPPORT on ${RXE_DEVICE}`);
      context.skip();
    }
    const events = traced(pingpongPair(18613, '-o'));
    const umem = events.filter((e) => e.comm === 'ibv_rc_pingpong' && e.source === 'umem');
    const pids = [...new Set(umem.map((e) => e.pid))];
    expect(pids, JSON.stringify(events, null, 1)).toHaveLength(2);
    for (const pid of pids) {
      const mine = umem.filter((e) => e.pid === pid);
      expect(mine.map((e) => [e.op, e.bytes, e.detail.function]), JSON.stringify(mine)).toEqual([
        ['register', SIZE, 'ib_umem_odp_get'],
        ['deregister', SIZE, 'ib_umem_release'],
      ]);
    }
  }, 240_000);
});
