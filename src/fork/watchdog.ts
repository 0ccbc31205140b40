// The fork watchdog: no paused child outlives the rdmactl that forked it, whatever kills that rdmactl.
//
// The children (see child.ts) run nothing but pause() with every catchable signal blocked — no
// JavaScript can run in a forked Node process — so they cannot notice their parent's death, and
// PR_SET_PDEATHSIG, which must be set by the child itself, is out of reach. A child holds what the
// parent held at fork time: an io_uring ring with registered buffers keeps its pages pinned and
// charged to the user for as long as any child keeps the ring open. SIGKILL or SIGQUIT of the parent
// skips every cleanup hook, so the cleanup has to live in another process:
//
// - Before the first fork, the parent creates a marker: a memfd with a unique name (close-on-exec, so
//   programs we exec never inherit it; forks always do). Every paused child therefore holds the
//   marker, and nothing else on the machine does.
// - It starts this watchdog (a separate node process, in its own session so terminal signals and
//   process-group kills do not reach it) and waits until it is armed: the watchdog has asked the
//   kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG) and checked that the parent is still
//   its parent (so a parent that died during the start is noticed too).
// - When the parent dies — however — the watchdog finds every process holding the marker (by the fd's
//   link name and inode, among processes started after the parent), opens a pidfd on each, checks the
//   marker again through it and sends SIGKILL through the pidfd, so a reused pid is never hit. Then it
//   exits. It also polls getppid() every second in case the death signal is lost.
//
// Children reported by pid would leave a window (killed between clone and report); the marker has none.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { memfdCreate } from '../ffi/libc.js';
import { RdmactlError } from '../lib/errors.js';
import { holdsOpenFile } from '../proc/fds.js';
import { listPids, procPath } from '../proc/procfs.js';
import { readStat } from '../proc/stat.js';

export interface Marker {
  /** memfd name; /proc/PID/fd/N links to "/memfd:NAME (deleted)". */
  name: string;
  inode: number;
}

/** The link text of a memfd marker in /proc/PID/fd. */
export function markerLink(name: string): string {
  return `/memfd:${name} (deleted)`;
}

/** True when process `pid` holds the marker (an fd linking to it, with its inode). False when gone or unreadable. */
export function holdsMarker(pid: number, marker: Marker): boolean {
  return holdsOpenFile(pid, markerLink(marker.name), marker.inode);
}

/** Pids of processes, other than `exceptPid`, started no earlier than `sinceTicks`, that hold the marker. */
export function findMarkerHolders(marker: Marker, sinceTicks: number, exceptPid: number): number[] {
  const holders: number[] = [];
  for (const pid of listPids()) {
    if (pid === exceptPid) continue;
    const stat = readStat(pid);
    if (stat === null || stat.startTimeTicks < sinceTicks) continue;
    if (holdsMarker(pid, marker)) holders.push(pid);
  }
  return holders;
}

// Through dist/ from both src/fork (tests run the sources) and dist/fork: it must run without a TS loader.
const WATCHDOG_MAIN = fileURLToPath(new URL('../../dist/fork/watchdogMain.js', import.meta.url));
/**
 * How long to wait for the watchdog to arm. It is a Node process that loads koffi: about 0.2 s here,
 * seconds under TCG, and over 15 s on a machine at load 16. Waiting is better than refusing to fork,
 * so the bound only catches a watchdog that hangs.
 */
const ARM_TIMEOUT_MS = 60_000;

/** The running watchdog: its process, the marker fd every fork inherits, and how many users hold it. */
interface Armed {
  child: ChildProcess;
  markerFd: number;
  marker: Marker;
  exited: Promise<void>;
}

let starting: Promise<Armed> | null = null;
let current: Armed | null = null;
let users = 0;

/** The marker every child holds while the watchdog is armed, else null. */
export function watchdogMarker(): Marker | null {
  return current?.marker ?? null;
}

/**
 * Arms the watchdog (once for any number of concurrent users) and resolves when it is armed. Each call
 * must be paired with disarmForkWatchdog() once the caller's children are reaped; the last one stops
 * it, so a command that forked leaves no process behind when it returns.
 */
export async function armForkWatchdog(): Promise<Marker> {
  users++;
  try {
    starting ??= startWatchdog();
    current = await starting;
    return current.marker;
  } catch (err) {
    users--;
    starting = null;
    throw err;
  }
}

/** Undoes one armForkWatchdog(); the last user stops the watchdog and waits for it to exit. */
export async function disarmForkWatchdog(): Promise<void> {
  if (users === 0) return;
  users--;
  if (users > 0 || current === null) return;
  const armed = current;
  current = null;
  starting = null;
  process.removeListener('exit', killOnExit);
  armed.child.ref(); // else the event loop may end before its exit is seen
  armed.child.kill('SIGKILL');
  closeSync(armed.markerFd);
  await armed.exited;
}

/** process.exit() with the watchdog still armed: stop it (it would only find nothing to do). */
function killOnExit(): void {
  current?.child.kill('SIGKILL');
}

async function startWatchdog(): Promise<Armed> {
  const self = readStat('self');
  if (self === null) throw new RdmactlError(`${procPath('self', 'stat')} is missing: is /proc mounted?`);
  const name = `rdmactl-fork-${process.pid}-${randomBytes(4).toString('hex')}`;
  // Kept open while armed: every fork from now on inherits it.
  const markerFd = memfdCreate(name);
  const marker: Marker = { name, inode: fstatSync(markerFd).ino };
  const child = spawn(process.execPath, [WATCHDOG_MAIN, String(process.pid), String(self.startTimeTicks), name, String(marker.inode)], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => fail(`did not report within ${ARM_TIMEOUT_MS / 1000} s`), ARM_TIMEOUT_MS);
      function fail(why: string): void {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new RdmactlError(`cannot start the fork watchdog (it ${why}); no child was forked`));
      }
      child.once('error', (err) => fail(`could not be started: ${err.message}`));
      child.once('exit', (code, signal) => fail(`exited with ${signal ?? `status ${code}`}`));
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        out += chunk;
        if (!out.includes('\n')) return;
        clearTimeout(timer);
        child.removeAllListeners('error');
        if (out.startsWith('armed\n')) resolve();
        else fail(`said ${JSON.stringify(out.trim().slice(0, 100))}`);
      });
    });
  } catch (err) {
    closeSync(markerFd);
    throw err;
  }
  child.stdout.destroy();
  child.unref();
  process.once('exit', killOnExit);
  return { child, markerFd, marker, exited };
}
