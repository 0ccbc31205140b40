// The real `rdmactl top` in a real terminal (tmux) with its events pane: a program registers an
// io_uring buffer and the pane shows that event (its pid, source, op, size and result) within a
// refresh; after q, and after the terminal is closed, nothing of top's trace is left in tracefs.
// Needs tmux, root and tracefs: skipped loudly, with the reason rdmactl itself gives, without them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, UNPRIVILEGED, builtOrThrow, unprivilegedUnavailable } from '../helpers/spawn.js';
import { paneOf, tmux } from '../helpers/tmux.js';
import { tracefsLeftovers, tracingUnavailable, unmountTracefsIfMounted } from '../helpers/tracefs.js';

function whyNot(): string | null {
  return tracingUnavailable('test/ui/top-events-e2e', "top's events pane traces, which needs root; run the tests as root");
}

const skipReason = whyNot();
if (skipReason) console.warn(`SKIPPING test/ui/top-events-e2e.test.ts: ${skipReason}`);
const SESSION = `rdmactl-top-events-${process.pid}`;

/** The pid of rdmactl top: the child of the pane's shell. */
function topPid(session: string): number {
  const shell = Number(tmux('display-message', '-p', '-t', session, '#{pane_pid}').trim());
  const children = readFileSync(`/proc/${shell}/task/${shell}/children`, 'utf8').trim().split(/\s+/).map(Number);
  expect(children).toHaveLength(1);
  return children[0]!;
}

function startTop(session: string): void {
  tmux('new-session', '-d', '-s', session, '-x', '140', '-y', '50', `cd ${ROOT} && ${process.execPath} ${BIN} top --interval 1s; echo EXIT=$?; sleep 600`);
}

/**
 * The trace tests' program in its `stay` mode (as uid 65534 when possible, so its 64 MiB registration
 * is refused over RLIMIT_MEMLOCK): registrations, a release, mlocks, then it waits, so rdmactl can
 * read the sizes from its memory however loaded the machine is.
 */
async function startProgram(): Promise<{ pid: number; refused: boolean; child: ChildProcess }> {
  const unprivileged = unprivilegedUnavailable();
  const argv = [...(unprivileged ? [] : UNPRIVILEGED), process.execPath, join(ROOT, 'test/trace/helpers/workload.mjs'), 'stay'];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'pipe' });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stdin!.write('go\n');
  const deadline = Date.now() + 30_000;
  while (!out.includes('\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const report = JSON.parse(out.split('\n')[0]!) as { pid: number; calls: { errno: string | null }[] };
  return { pid: report.pid, refused: report.calls[3]!.errno === 'ENOMEM', child };
}

const programs: ChildProcess[] = [];

describe.skipIf(skipReason !== null)('rdmactl top: the events pane in a terminal', () => {
  beforeAll(() => builtOrThrow());
  afterAll(() => {
    for (const child of programs) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const s of [SESSION, `${SESSION}-hup`, `${SESSION}-user`]) {
      try { tmux('kill-session', '-t', s); } catch { /* already gone */ }
    }
    spawnSync(process.execPath, [BIN, 'trace', '--cleanup']);
    unmountTracefsIfMounted();
  });

  it("shows a program's registrations, mlocks and refused registration; e hides the pane; q leaves nothing in tracefs", async () => {
    const { until } = paneOf(SESSION);
    startTop(SESSION);
    await until('the events pane tracing', 30_000, (s) => /^events: io_uring/m.test(s));
    const pid = topPid(SESSION);
    expect(tracefsLeftovers(pid).filter((l) => l.startsWith('rdmactl-'))).toHaveLength(1);

    const program = await startProgram();
    programs.push(program.child);
    const MARK = '[ !] ';
    const line = (s: string, op: string, size: string) => s.split('\n').find((l) => new RegExp(`^${MARK}\\d\\d:\\d\\d:\\d\\d\\.\\d{3} +${program.pid} node +\\S+ +${op} +${size} `).test(l));
    const { screen } = await until(`pid ${program.pid}'s events in the pane`, 30_000, (s) => line(s, 'register', '512 KiB') !== undefined && line(s, 'mlock', '1 MiB') !== undefined);
    expect(line(screen, 'register', '512 KiB')).toMatch(/^  .* io_uring register +512 KiB +\d+(\.\d)?(µs|ms) +ok$/);
    expect(line(screen, 'mlock', '1 MiB')).toMatch(/^  .* mlock +mlock +1 MiB +\S+ +ok$/);
    // The refused registration is marked (and red); as root it is a registration like the others.
    if (program.refused) expect(line(screen, 'failed', '64 MiB')).toMatch(/^! .* io_uring failed +64 MiB +\S+ +ENOMEM$/);
    else expect(line(screen, 'register', '64 MiB')).toBeDefined();
    expect(screen).toMatch(new RegExp(`registrations/s \\(last 10 s\\): .*${program.pid} node `));
    program.child.kill('SIGKILL');

    // e hides the pane and shows it again.
    tmux('send-keys', '-t', SESSION, 'e');
    await until('the pane hidden', 5000, (s) => !/^events: /m.test(s));
    tmux('send-keys', '-t', SESSION, 'e');
    await until('the pane back', 5000, (s) => /^events: io_uring/m.test(s));

    tmux('send-keys', '-t', SESSION, 'q');
    const end = await until('EXIT=', 15_000, (s) => s.includes('EXIT='));
    expect(end.screen).toContain('EXIT=0');
    expect(tracefsLeftovers(pid)).toEqual([]);
  }, 90_000);

  it('a closed terminal (SIGHUP) ends top with its trace removed', async () => {
    const session = `${SESSION}-hup`;
    const { until } = paneOf(session);
    startTop(session);
    await until('the events pane tracing', 30_000, (s) => /^events: io_uring/m.test(s));
    const pid = topPid(session);
    expect(tracefsLeftovers(pid)).not.toEqual([]);
    tmux('kill-session', '-t', session);
    const deadline = Date.now() + 15_000;
    while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(tracefsLeftovers(pid)).toEqual([]);
  }, 60_000);

  it('without root: the pane is one line saying why, and the dashboard works as before', async (ctx) => {
    const unprivileged = unprivilegedUnavailable();
    if (unprivileged) return ctx.skip(unprivileged);
    const session = `${SESSION}-user`;
    const { until } = paneOf(session);
    tmux('new-session', '-d', '-s', session, '-x', '140', '-y', '40', `cd ${ROOT} && ${UNPRIVILEGED.join(' ')} ${process.execPath} ${BIN} top --interval 1s; echo EXIT=$?; sleep 600`);
    const { screen } = await until('the pane saying why', 30_000, (s) => /^events: not traced: /m.test(s));
    expect(screen.split('\n').filter((l) => l.startsWith('events:'))).toEqual([expect.stringMatching(/^events: not traced: tracing needs root \(CAP_SYS_ADMIN\) to write tracefs at \S+; run rdmactl trace as root/)]);
    expect(screen).toMatch(/^ +PID USER +COMM/m);
    tmux('send-keys', '-t', session, 'q');
    expect((await until('EXIT=', 15_000, (s) => s.includes('EXIT='))).screen).toContain('EXIT=0');
  }, 60_000);
});
