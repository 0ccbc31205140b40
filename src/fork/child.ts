// A forked child that only sleeps: glibc clone(fn = pause) without CLONE_VM gives a real fork of
// our address space (no JS can run in a forked Node child, so the child runs nothing but pause()).
// The parent observes it through process_vm_readv/writev and /proc/<pid>/pagemap, then SIGKILLs and
// reaps it. Every child is tracked until reaped, and a process 'exit' hook kills and reaps any that
// are still alive, so none is ever left running or as a zombie.

import { SyscallError } from '../lib/errno.js';
import {
  MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, SIGKILL, SIGSET_BYTES, SIG_BLOCK, SIG_SETMASK,
  clonePausedChild, kill, mmap, pthreadSigmask, waitpid, type Pointer, type WaitResult,
} from '../ffi/libc.js';
import { pageSize } from '../proc/pagemap.js';
import { watchdogMarker } from './watchdog.js';

const STACK_BYTES = 64 * 1024;

let stackTop: Pointer | undefined;

/**
 * The stack every child starts on. The parent never runs on it; each child gets its own copy at
 * clone time (no CLONE_VM), so one mapping serves every child. Stacks grow down on every
 * architecture Node runs on, so the child gets the 16-byte aligned high end.
 */
function childStackTop(): Pointer {
  if (stackTop === undefined) {
    const bytes = Math.max(STACK_BYTES, pageSize());
    const base = mmap(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    stackTop = (base + BigInt(bytes)) & ~15n;
  }
  return stackTop;
}

const live = new Set<PausedChild>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort (e.g. something called process.exit mid-scenario): kill and reap synchronously.
  process.on('exit', () => reapAllChildren());
}

/** Kill and reap every child that is still alive. Safe to call at any time, any number of times. */
export function reapAllChildren(): void {
  for (const child of [...live]) {
    try { child.close(); } catch { /* keep going: every child must be tried */ }
  }
}

/** PIDs of the children started here and not yet reaped. */
export function liveChildPids(): number[] {
  return [...live].map((c) => c.pid);
}

/** A paused forked child. `close()` (or `using`) SIGKILLs and reaps it; idempotent. */
export class PausedChild implements Disposable {
  readonly pid: number;
  private exit: WaitResult | null = null;
  private isClosed = false;

  private constructor(pid: number) {
    this.pid = pid;
  }

  /**
   * Fork now. All catchable signals are blocked around the clone so the child starts with them
   * blocked: a Ctrl-C to the process group can neither wake its pause() nor run the inherited
   * Node signal handler in it. Only SIGKILL (ours) ends it.
   */
  static start(): PausedChild {
    // Without the watchdog, a SIGKILL of this process would leave the child paused forever.
    if (watchdogMarker() === null) throw new Error('internal: armForkWatchdog() must resolve before a child is forked');
    installExitHook();
    const top = childStackTop();
    const all = Buffer.alloc(SIGSET_BYTES, 0xff);
    const old = Buffer.alloc(SIGSET_BYTES);
    pthreadSigmask(SIG_BLOCK, all, old);
    let pid: number;
    try {
      pid = clonePausedChild(top);
    } finally {
      pthreadSigmask(SIG_SETMASK, old, null);
    }
    const child = new PausedChild(pid);
    live.add(child);
    return child;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** How the child ended (after close): normally killed by SIGKILL. */
  get exitStatus(): WaitResult | null {
    return this.exit;
  }

  close(): void {
    if (this.isClosed) return;
    try {
      kill(this.pid, SIGKILL);
    } catch (err) {
      // ESRCH cannot happen for an unreaped child of ours, but a zombie is still reaped below.
      if (!(err instanceof SyscallError && err.errnoName === 'ESRCH')) throw err;
    }
    for (;;) {
      try {
        this.exit = waitpid(this.pid, 0);
        break;
      } catch (err) {
        if (err instanceof SyscallError && err.errnoName === 'EINTR') continue;
        if (err instanceof SyscallError && err.errnoName === 'ECHILD') break; // already reaped elsewhere
        throw err;
      }
    }
    this.isClosed = true;
    live.delete(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
