// The scenario engine's vocabulary. A scenario (fork, munmap, exit, munlock, overlap-lifetime,
// readonly-private, truncate, migrate) registers memory one way, does one thing the kernel threads
// argue about, and records what it saw after each step. Its verdict comes from that evidence only,
// through the scenario's own verdict table — never from a kernel-version table.

import type { Backing, Registration } from '../engine/types.js';
import type { Content } from '../fork/observe.js';

/** How the scenario's memory is registered; `plain` is the baseline: the same buffer, not registered. */
export type ScenarioBackend = 'plain' | 'mlock' | 'uring' | 'verbs';
export const SCENARIO_BACKENDS: readonly ScenarioBackend[] = ['plain', 'mlock', 'uring', 'verbs'];

/** One verdict of one scenario: JSON id, plain words (text output), what it means (help). */
export interface ScenarioVerdict {
  id: string;
  words: string;
  meaning: string;
  /** A run can be expected to reach it (`--expect`); skipped and error are not outcomes. */
  expectable: boolean;
}

/** What a range of memory (or a device read of it) held when looked at. */
export type Seen = Content | 'unmapped' | 'failed';

/** What rdmactl read after one step of a row. Null: not applicable to this step, or not readable here. */
export interface Observation {
  /** The step just done: 'registered', 'munmap', 'remapped', 'released', 'killed', … */
  step: string;
  /** VmPin (mm->pinned_vm) of the process holding the registration, from /proc/PID/status. */
  pinnedBytes: number | null;
  /** VmLck (mm->locked_vm) of that process. */
  lockedBytes: number | null;
  /**
   * nr_foll_pin_acquired − nr_foll_pin_released from /proc/vmstat (machine-wide, pages: context, other
   * processes move it too; no verdict rests on it). Read after the per-CPU deltas were folded in
   * (/proc/sys/vm/stat_refresh), so the step's own pins show; null where that fold is not allowed.
   */
  pinsOutstanding: number | null;
  /** PFN of the range's first page in the process (/proc/PID/pagemap; null when hidden or absent). */
  pfn: number | null;
  /** NUMA node of the first page (move_pages(2) status), where the scenario asks. */
  node: number | null;
  /** What the process reads at the registered address. */
  processSees: Seen | null;
  /** What the device path reads through the registration (io_uring WRITE_FIXED, RDMA READ). */
  deviceReads: Seen | null;
  /** One line of anything else this step showed (an errno, a meminfo field, a file's bytes). */
  note: string | null;
}

/** One row: one scenario, one way of registering, one backing (and a variant where a scenario has several). */
export interface ScenarioRow {
  scenario: string;
  /** e.g. 'punch-hole' vs 'truncate', 'read-access' vs 'write-access'; null when the scenario has one form. */
  variant: string | null;
  backend: ScenarioBackend;
  backing: Backing;
  /** Bytes registered (the size rounded up to the backing's page size); null when set-up failed. */
  length: number | null;
  /** The registration pins pages (uring, verbs except on-demand). */
  pinned: boolean;
  /** A verbs on-demand (ODP) MR. */
  onDemand: boolean;
  /** The data path used as "the device", or why there is none. */
  devicePath: string | null;
  /** In order, one per step. */
  observations: Observation[];
  /** An id from the scenario's verdict table (or 'skipped' / 'error'). */
  verdict: string;
  /** Why the row was skipped or failed, or how the verdict was reached. */
  reason: string | null;
  elapsedMs: number;
}

/** One row to run. */
export interface ScenarioCase {
  backend: ScenarioBackend;
  backing: Backing;
  variant: string | null;
}

/** Facts about this machine shared by every row, found once per run. */
export interface ScenarioEnvironment {
  /** null when verbs rows can run, else why not. */
  verbsUnavailable: string | null;
  /** This process sees PFNs in pagemap (CAP_SYS_ADMIN). */
  pfnsVisible: boolean;
  /** NUMA nodes with memory (from /sys/devices/system/node/has_memory). */
  memoryNodes: readonly number[];
  pageSize: number;
}

export interface ScenarioRunContext {
  /** Requested bytes per row. */
  length: number;
  env: ScenarioEnvironment;
  /** Extra IBV_ACCESS_* bits for verbs rows (on-demand). */
  verbsAccess: number;
  /** Checked between steps (see fork/interrupt.ts checkpoint). */
  signal?: AbortSignal;
  /** Tests: pause this long at each checkpoint, so a signal can arrive mid-row. */
  stepDelayMs: number;
  /** Called with the pid of each helper process (child, holder) a row starts. */
  onChild?: (pid: number) => void;
  /**
   * Tests: called after each step's observation, before the pause, with what is being looked at, so a
   * test can make its own independent readings at that moment.
   */
  onStep?: (step: string, at: StepTarget) => void | Promise<void>;
}

/** What a row is looking at during a step (ScenarioRunContext.onStep). */
export interface StepTarget {
  pid: number | 'self';
  addr: bigint;
  length: number;
  /** The live registration, or null (plain, or already released). */
  registration: Registration | null;
}

/** A scenario: its words, its verdicts, the rows it runs by default, and how one row runs. */
export interface ScenarioDefinition {
  name: string;
  /** One line for `scenario --list`. */
  summary: string;
  /** A paragraph for `scenario --help`: what it does, step by step, and what it looks at. */
  description: string;
  /** The verdicts this scenario reaches (skipped and error are common to all). */
  verdicts: readonly ScenarioVerdict[];
  backends: readonly ScenarioBackend[];
  backings: readonly Backing[];
  variants: readonly string[] | null;
  /** Rows run when the user names no backend/backing/variant. */
  defaultCases: readonly ScenarioCase[];
  /** Why this combination makes no sense (or cannot run in `env`), or null. */
  notApplicable(c: ScenarioCase, env: ScenarioEnvironment): string | null;
  /** Run one row. Everything it creates is released before it returns or throws. */
  run(c: ScenarioCase, ctx: ScenarioRunContext): Promise<ScenarioRow>;
  /** Rows fork paused children (PausedChild): the engine arms the fork watchdog for the run. */
  forks?: boolean;
  /**
   * When the user names some dimensions (--backend/--backing/--variant), the values the others take;
   * default: the values the defaultCases use.
   */
  selectionDefaults?: Partial<{ backend: readonly ScenarioBackend[]; backing: readonly Backing[]; variant: readonly (string | null)[] }>;
  /** One short line of a row's evidence for the text table (default: the engine's summary of the observations). */
  evidence?(row: ScenarioRow): string;
  /** The order rows run in (results keep the given order); default: as given. */
  executionOrder?(cases: readonly ScenarioCase[]): number[];
}
