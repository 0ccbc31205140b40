// Rendering tests of the dashboard with a fake sampler fed fixed reports (no kernel involved).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { render, cleanup } from 'ink-testing-library';
import { App } from '../../src/ui/dashboard/App.js';
import { FakeSource, MiB, fakeActions, frameMatching, proc, report } from './fixtures.js';

const DOWN = '\u001B[B';
const ESC = '\u001B';
const ENTER = '\r';

afterEach(() => cleanup());

function rowsOf(frame: string): string[] {
  return frame.split('\n');
}

/** The table lines (after the header line with PID), in order, as their pids. */
function tablePids(frame: string): number[] {
  const lines = rowsOf(frame);
  const start = lines.findIndex((l) => /\bPID\b/.test(l));
  const pids: number[] = [];
  for (const line of lines.slice(start + 1)) {
    const m = /^[ +^x]\s+(\d+) /.exec(line);
    if (!m) break;
    pids.push(Number(m[1]));
  }
  return pids;
}


function setup(columns = 110, rows = 30) {
  const source = new FakeSource();
  source.push(report([proc(101, 'trainer', 8, 0), proc(202, 'nccl-proxy', 64, 2), proc(303, 'postgres', 0, 16, { user: 'postgres', uid: 70 })]));
  const actions = fakeActions();
  const app = render(<App source={source} actions={actions} columns={columns} rows={rows} />);
  return { source, actions, app };
}

describe('dashboard', () => {
  it('shows totals, devices, held count and the processes sorted by pinned bytes with sizes and limits', async () => {
    const { app } = setup();
    const frame = await frameMatching(app, (f) => f.includes('trainer'));
    expect(frame).toContain('2000 processes, 3 pinning/locking');
    expect(frame).toMatch(/pinned\s+\[.*] 72 MiB 0.4%/);
    expect(frame).toContain('MemTotal 16 GiB');
    expect(frame).toContain('rxe0: 2 MRs');
    expect(frame).toContain('held: 0');
    expect(frame).toMatch(/PID USER\s+COMM\s+PINNED\s+LOCKED\s+MEMLOCK %LIMIT FLAGS/);
    expect(tablePids(frame)).toEqual([202, 101, 303]);
    expect(frame).toMatch(/202 alice\s+nccl-proxy\s+64 MiB\s+2 MiB\s+64 MiB\s+100%/);
    expect(frame).toMatch(/101 alice\s+trainer\s+8 MiB\s+0\s+64 MiB\s+12\.5%/);
    // The user panel: per-user totals.
    expect(frame).toMatch(/alice\s+3\s+72 MiB\s+18 MiB/);
  });

  it('marks new and growing rows for one refresh and keeps an exiting row one extra refresh', async () => {
    const { app, source } = setup();
    await frameMatching(app, (f) => f.includes('trainer'));
    source.push(report([proc(101, 'trainer', 16, 0), proc(202, 'nccl-proxy', 64, 2), proc(404, 'rdmactl', 8, 0)]));
    let frame = await frameMatching(app, (f) => f.includes('rdmactl'));
    expect(frame).toMatch(/^\+\s+404 /m);
    expect(frame).toMatch(/^\^\s+101 /m);
    expect(frame).toMatch(/^x\s+303 /m);
    expect(frame).toMatch(/^ \s+202 /m);
    source.push(report([proc(101, 'trainer', 16, 0), proc(202, 'nccl-proxy', 64, 2), proc(404, 'rdmactl', 8, 0)]));
    frame = await frameMatching(app, (f) => !f.includes('postgres'));
    expect(tablePids(frame)).toEqual([202, 101, 404]);
    expect(frame).not.toMatch(/^[+^x]\s+\d+ /m);
  });

  it('s cycles the sort (pinned → locked → headroom …)', async () => {
    const { app } = setup();
    await frameMatching(app, (f) => f.includes('sort: pinned'));
    app.stdin.write('s');
    let frame = await frameMatching(app, (f) => f.includes('sort: locked'));
    expect(tablePids(frame)).toEqual([303, 202, 101]);
    app.stdin.write('s');
    frame = await frameMatching(app, (f) => f.includes('sort: headroom'));
    expect(tablePids(frame)).toEqual([202, 303, 101]);
  });

  it('/ filters by comm, user or pid; Enter applies, Esc clears', async () => {
    const { app } = setup();
    await frameMatching(app, (f) => f.includes('trainer'));
    app.stdin.write('/');
    await frameMatching(app, (f) => f.includes('filter (comm'));
    for (const ch of 'post') app.stdin.write(ch);
    let frame = await frameMatching(app, (f) => tablePids(f).length === 1);
    expect(tablePids(frame)).toEqual([303]);
    app.stdin.write(ENTER);
    frame = await frameMatching(app, (f) => f.includes("filter 'post'"));
    expect(tablePids(frame)).toEqual([303]);
    app.stdin.write(ESC);
    frame = await frameMatching(app, (f) => tablePids(f).length === 3);
    expect(frame).not.toContain("filter 'post'");
    app.stdin.write('/');
    await frameMatching(app, (f) => f.includes('filter (comm'));
    app.stdin.write('10');
    frame = await frameMatching(app, (f) => tablePids(f).length === 1);
    expect(tablePids(frame)).toEqual([101]);
  });

  it('keys that arrive in one read (pasted, or typed fast) are taken one by one', async () => {
    const { app } = setup();
    await frameMatching(app, (f) => f.includes('trainer'));
    app.stdin.write('/nccl\r');
    const frame = await frameMatching(app, (f) => f.includes("filter 'nccl'"));
    expect(tablePids(frame)).toEqual([202]);
  });

  it('Enter opens the detail of the selected process; Esc goes back', async () => {
    const { app } = setup();
    await frameMatching(app, (f) => f.includes('trainer'));
    app.stdin.write(DOWN);
    await new Promise((r) => setTimeout(r, 30));
    app.stdin.write(ENTER);
    const frame = await frameMatching(app, (f) => f.includes('Registrations (1)'));
    expect(frame).toContain('pid 101  trainer  user alice');
    expect(frame).toContain('RLIMIT_MEMLOCK soft 64 MiB, hard 128 MiB');
    expect(frame).toMatch(/io_uring\s+0x7f0000000000\s+8 MiB\s+fd5:buf0\s+dontfork/);
    expect(frame).toContain('Locked ranges (1)');
    expect(frame).toMatch(/0x7f1000000000-0x7f1000100000\s+1 MiB\s+\[anon\]/);
    expect(frame).toContain('MADV_DONTFORK ranges (1)');
    app.stdin.write(ESC);
    await frameMatching(app, (f) => f.includes('nccl-proxy') && !f.includes('Registrations'));
  });

  it('? shows the help; Backspace goes back', async () => {
    const { app } = setup();
    await frameMatching(app, (f) => f.includes('trainer'));
    app.stdin.write('?');
    const frame = await frameMatching(app, (f) => f.includes('rdmactl top: keys'));
    expect(frame).toContain('cycle the sort');
    expect(frame).toContain('+ new, ^ growing');
    app.stdin.write('\u007F');
    await frameMatching(app, (f) => f.includes('nccl-proxy'));
  });

  it('p pauses and resumes the sampler', async () => {
    const { app, source } = setup();
    await frameMatching(app, (f) => f.includes('trainer'));
    app.stdin.write('p');
    await frameMatching(app, (f) => f.includes('PAUSED'));
    expect(source.isPaused()).toBe(true);
    app.stdin.write('p');
    await frameMatching(app, (f) => !f.includes('PAUSED'));
    expect(source.isPaused()).toBe(false);
  });

  it('d asks before deregistering a held registration of the selected process', async () => {
    const { app, source, actions } = setup();
    await frameMatching(app, (f) => f.includes('trainer'));
    app.stdin.write('d');
    await frameMatching(app, (f) => f.includes("pid 202 holds no registration made with 'rdmactl reg --detach'"));
    source.heldIdsByPid = { 202: ['0badc0de'] };
    source.push(report([proc(101, 'trainer', 8, 0), proc(202, 'nccl-proxy', 64, 2)]));
    await frameMatching(app, (f) => f.includes('held: 1'));
    app.stdin.write('d');
    await frameMatching(app, (f) => f.includes('Deregister held registration 0badc0de of pid 202? (y/n)'));
    app.stdin.write('n');
    await frameMatching(app, (f) => f.includes('not deregistered'));
    expect(actions.deregistered).toEqual([]);
    app.stdin.write('d');
    await frameMatching(app, (f) => f.includes('(y/n)'));
    app.stdin.write('y');
    await frameMatching(app, (f) => f.includes('deregistered 0badc0de'));
    expect(actions.deregistered).toEqual([['0badc0de']]);
  });

  it('narrow terminals drop columns instead of wrapping', async () => {
    const wide = setup(110).app;
    const wideFrame = await frameMatching(wide, (f) => f.includes('trainer'));
    expect(wideFrame).toMatch(/FLAGS/);
    cleanup();
    for (const [columns, gone, kept] of [
      [75, ['FLAGS'], ['USER', 'LOCKED', '%LIMIT', 'MEMLOCK']],
      [50, ['FLAGS', 'USER', 'LOCKED', '%LIMIT'], ['MEMLOCK', 'PINNED']],
      [40, ['FLAGS', 'USER', 'LOCKED', '%LIMIT', 'MEMLOCK'], ['PID', 'COMM', 'PINNED']],
    ] as const) {
      const { app } = setup(columns);
      const frame = await frameMatching(app, (f) => f.includes('nccl-proxy'));
      const header = rowsOf(frame).find((l) => /\bPID\b/.test(l))!;
      for (const label of gone) expect(header, `${columns} columns`).not.toContain(label);
      for (const label of kept) expect(header, `${columns} columns`).toContain(label);
      for (const line of rowsOf(frame)) expect([...line].length, `line wider than ${columns}: ${line}`).toBeLessThanOrEqual(columns);
      expect(tablePids(frame)).toEqual([202, 101, 303]);
      cleanup();
    }
  });

  it('shows the sparkline of total pinned bytes', async () => {
    const { app, source } = setup();
    for (const pinned of [8, 16, 32, 64]) source.push(report([proc(101, 'trainer', pinned)]));
    const frame = await frameMatching(app, (f) => f.includes('(5 s)'));
    expect(frame).toMatch(/pinned history [▁▂▃▄▅▆▇█]{5} \(5 s\)/);
    expect(frame).toContain('pinned history █▂▃▄▇ (5 s)');
  });

  it('quits after --count refreshes', async () => {
    const source = new FakeSource();
    source.push(report([proc(101, 'trainer', 8)]));
    const onQuit = vi.fn();
    render(<App source={source} actions={fakeActions()} count={2} columns={100} rows={30} onQuit={onQuit} />);
    await new Promise((r) => setTimeout(r, 30));
    expect(onQuit).not.toHaveBeenCalled();
    source.push(report([proc(101, 'trainer', 8)]));
    await vi.waitFor(() => expect(onQuit).toHaveBeenCalled(), { timeout: 10_000 });
  });
});
