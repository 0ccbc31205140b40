// top's events pane from fixed events: columns as rdmactl trace labels them, failures marked (and
// red), hostile comms escaped on their own line, the per-process rate line, the one line shown when
// tracing is unavailable, and the e key that hides and shows the pane.
import { afterEach, describe, expect, it } from 'vitest';
import { render, cleanup } from 'ink-testing-library';
import { App } from '../../src/ui/dashboard/App.js';
import { EventsPane } from '../../src/ui/dashboard/EventsPane.js';
import { eventClock } from '../../src/ui/eventsFormat.js';
import type { EventRow, EventsSnapshot, EventsSource } from '../../src/ui/types.js';
import { FakeSource, MiB, fakeActions, frameMatching, proc, report } from './fixtures.js';

afterEach(() => cleanup());

const TITLE = 'x\x1b]0;PWNED\x07\x1b[2J';
const FORGER = 'y\n1 root FORGED';
const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

function row(over: Partial<EventRow>): EventRow {
  return { wallMs: T0, pid: 4242, comm: 'trainer', source: 'io_uring', op: 'register', bytes: 3 * MiB, latencyNs: 41_000, errno: null, ...over };
}

const EVENTS: EventRow[] = [
  row({ wallMs: T0 + 1 }),
  row({ wallMs: T0 + 2, op: 'deregister', latencyNs: 9_000 }),
  row({ wallMs: T0 + 3, pid: 777, comm: TITLE, op: 'failed', bytes: 64 * MiB, errno: 'ENOMEM', latencyNs: 3_000 }),
  row({ wallMs: T0 + 4, pid: 778, comm: FORGER, source: 'mlock', op: 'mlock', bytes: 256 * 1024, latencyNs: null }),
];

function tracing(over: Partial<EventsSnapshot> = {}): EventsSnapshot {
  return {
    state: 'tracing', reason: null, sources: ['io_uring', 'mlock'], events: EVENTS, total: 4, lost: 0, rateWindowMs: 10_000,
    rates: [{ pid: 4242, comm: 'trainer', perSecond: 12.5, bytesPerSecond: 24 * MiB, failures: 0 }, { pid: 777, comm: TITLE, perSecond: 0, bytesPerSecond: 0, failures: 1 }],
    ...over,
  };
}

/** Nothing of the hostile strings gets through raw. */
function expectInert(frame: string): void {
  expect(frame).not.toContain('\x1b]0;');
  expect(frame).not.toContain('\x07');
  expect(frame).not.toContain('\x1b[2J');
  for (const line of frame.split('\n')) if (line.includes('FORGED')) expect(line).toContain('\\x0a1 root FORGED');
}

class FakeEvents implements EventsSource {
  private listeners = new Set<() => void>();
  constructor(private snapshot: EventsSnapshot) {}
  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  };
  getSnapshot = () => this.snapshot;
  push(snapshot: EventsSnapshot): void {
    this.snapshot = snapshot;
    for (const l of [...this.listeners]) l();
  }
}

describe('events pane', () => {
  it('shows the latest events oldest first with time, pid, escaped comm, source, op, bytes, latency and result; failures marked', () => {
    const { lastFrame } = render(<EventsPane events={tracing()} width={100} height={10} />);
    const frame = lastFrame()!;
    expectInert(frame);
    const lines = frame.split('\n');
    expect(lines[0]).toMatch(/^events: io_uring, mlock {2}4 seen {2}\(e hides\)/);
    expect(lines[1]).toContain('registrations/s (last 10 s): 4242 trainer 13/s 24 MiB/s  ·  777 x\\x1b]0;PWNED\\x07\\x1b[2J 0.0/s 0');
    expect(lines[2]).toMatch(/^ {2}TIME +PID COMM +SOURCE +OP +BYTES +LATENCY RESULT/);
    expect(lines[3]).toBe(`  ${eventClock(T0 + 1)}    4242 trainer         io_uring register       3 MiB     41µs ok`);
    expect(lines[4]).toContain(' 4242 trainer         io_uring deregister     3 MiB      9µs ok');
    // The failure: marked with ! (and red on a colour terminal), its comm escaped inside its 15 columns.
    expect(lines[5]).toMatch(/^! \d\d:\d\d:\d\d\.003 +777 x\\x1b\]0;PWNED\\… io_uring failed +64 MiB +3µs ENOMEM/);
    // A comm with a newline stays on its own line; an event without a call has no latency.
    expect(lines[6]).toMatch(/^ {2}\d\d:\d\d:\d\d\.004 +778 y\\x0a1 root FO… mlock +mlock +256 KiB +- ok/);
    expect(lines).toHaveLength(7);
  });

  it('a short pane shows the newest events; lost events are said in the title', () => {
    const { lastFrame } = render(<EventsPane events={tracing({ lost: 12, rates: [] })} width={100} height={5} />);
    const lines = lastFrame()!.split('\n');
    expect(lines[0]).toContain('4 seen  12 lost (kernel buffer full)');
    expect(lines[1]).toContain('registrations/s (last 10 s): none');
    expect(lines.slice(3).map((l) => /\s(\d+) /.exec(l.slice(14))?.[1])).toEqual(['777', '778']);
  });

  it('narrow terminals drop latency, then source, then time, before cutting', () => {
    const { lastFrame } = render(<EventsPane events={tracing()} width={60} height={10} />);
    const header = lastFrame()!.split('\n')[2]!;
    expect(header).toMatch(/^ +PID COMM +OP +BYTES RESULT/);
    expect(header).not.toContain('LATENCY');
  });

  it('without tracing: one line saying why', () => {
    const reason = 'tracing needs root (CAP_SYS_ADMIN) to write tracefs at /sys/kernel/tracing; run rdmactl trace as root, e.g. with sudo';
    const { lastFrame } = render(<EventsPane events={tracing({ state: 'unavailable', reason: reason.slice(0, 70), events: [] })} width={100} height={10} />);
    expect(lastFrame()!.split('\n')).toEqual([`events: not traced: ${reason.slice(0, 70)}`]);
    // Longer than the terminal: cut, still one line.
    expect(render(<EventsPane events={tracing({ state: 'unavailable', reason, events: [] })} width={100} height={10} />).lastFrame()!.split('\n')).toEqual([`events: not traced: ${reason.slice(0, 79)}…`]);
  });

  it('in the dashboard: under the process table; e hides it and shows it again; the help lists e', async () => {
    const source = new FakeSource();
    source.push(report([proc(4242, 'trainer', 8)]));
    const events = new FakeEvents(tracing({ state: 'starting', events: [], total: 0, rates: [] }));
    const app = render(<App source={source} actions={fakeActions()} events={events} columns={120} rows={40} />);
    await frameMatching(app, (f) => f.includes('events: starting the trace…'));
    events.push(tracing());
    let frame = await frameMatching(app, (f) => f.includes('events: io_uring, mlock'));
    expectInert(frame);
    expect(frame.indexOf('PID USER')).toBeLessThan(frame.indexOf('events: io_uring'));
    expect(frame).toContain('e events');
    app.stdin.write('e');
    frame = await frameMatching(app, (f) => !f.includes('events:'));
    expect(frame).toContain('PID USER');
    app.stdin.write('e');
    await frameMatching(app, (f) => f.includes('events: io_uring, mlock'));
    app.stdin.write('?');
    frame = await frameMatching(app, (f) => f.includes('rdmactl top: keys'));
    expect(frame).toMatch(/^ {2}e +show \/ hide the events pane/m);
  });
});
