// What a registration set reports, as plain typed data: the request, the kernel's accounting before
// and after, and every handle with its backend's details. `reg` prints it (text and --json are derived
// from it by reg's field list), a detached holder stores it in its held record and sends it to the
// command that started it, and `ls`/`top` read it back as this type. parseRegistrationSetReport is the
// only reader of stored or received JSON: its keys are checked against this type by the compiler
// (see `Fields` below), so a key renamed on one side fails the build, not a column of `ls`.

import { hex } from '../lib/size.js';
import type { ForkStatus } from '../ffi/verbs/enums.js';
import type { Accounting, RegistrationSet } from './register.js';
import { BACKENDS, BACKINGS, type Backing, type BackendChoice, type BackendName, type Protection, type Registration, type RegistrationDetailsByBackend } from './types.js';

/** One handle (MR, io_uring buffer set, mlock range) as reported. */
export interface HandleReport<B extends BackendName = BackendName> {
  /** Start address, `0x` and lowercase hex (JSON has no 64-bit integers). */
  addr: string;
  length: number;
  /** Wall time of the registration call itself. */
  elapsedMicros: number;
  details: RegistrationDetailsByBackend[B];
}

/** The fork protections applied before registering (`none` is their absence). */
export type AppliedProtection = Exclude<Protection, 'none'>;

interface ReportOf<B extends BackendName> {
  backend: B;
  /** The --backend asked for; `auto` picks one. */
  backendRequested: BackendChoice;
  /** The registering (holding) process. */
  pid: number;
  backing: Backing;
  readOnly: boolean;
  protections: AppliedProtection[];
  /** Address (hex) and length of the first buffer; null/0 when nothing was mapped. */
  addr: string | null;
  length: number;
  /** Buffers mapped (--count). */
  buffers: number;
  /** Every registration made, in order (twice the buffers with --overlap). */
  handles: Array<HandleReport<B>>;
  /** VmPin/VmLck of the registering process before and after registering. */
  before: Accounting;
  after: Accounting;
  /** Soft RLIMIT_MEMLOCK of the registering process; null = unlimited. */
  memlockLimitBytes: number | null;
}

/** A registration set's report; `backend` tells which details its handles carry. */
export type RegistrationSetReport = { [B in BackendName]: ReportOf<B> }[BackendName];

function handles<B extends BackendName>(set: RegistrationSet, details: (r: Registration) => RegistrationDetailsByBackend[B] | null): Array<HandleReport<B>> {
  return set.registrations.map(({ registration, elapsedMicros }) => {
    const d = details(registration);
    if (d === null) throw new Error(`a ${registration.backend} registration in a ${set.options.backend} set`);
    return { addr: hex(registration.addr), length: registration.length, elapsedMicros, details: d };
  });
}

/** The report of a live registration set: the one place where live objects become reported data. */
export function reportRegistrations(set: RegistrationSet, backendRequested: BackendChoice): RegistrationSetReport {
  const { options } = set;
  const first = set.buffers[0];
  const protections: AppliedProtection[] = [];
  if (options.dontfork) protections.push('dontfork');
  if (options.wipeonfork) protections.push('wipeonfork');
  if (options.forkInit) protections.push('fork-init');
  const common = {
    backendRequested,
    pid: set.pid,
    backing: options.backing ?? 'anon',
    readOnly: options.readOnly ?? false,
    protections,
    addr: first ? hex(first.addr) : null,
    length: first?.length ?? 0,
    buffers: set.buffers.length,
    before: { ...set.before },
    after: { ...set.after },
    memlockLimitBytes: set.memlockLimitBytes,
  };
  // Copied key by key: the report carries exactly the typed details, whatever else an object holds.
  switch (options.backend) {
    case 'verbs':
      return {
        backend: 'verbs',
        ...common,
        handles: handles<'verbs'>(set, (r) => (r.backend === 'verbs'
          ? { device: r.details.device, lkey: r.details.lkey, rkey: r.details.rkey, access: r.details.access, accessFlags: r.details.accessFlags, fork: r.details.fork }
          : null)),
      };
    case 'uring':
      return { backend: 'uring', ...common, handles: handles<'uring'>(set, (r) => (r.backend === 'uring' ? { ringFd: r.details.ringFd, fixedBuffers: r.details.fixedBuffers } : null)) };
    case 'mlock':
      return { backend: 'mlock', ...common, handles: handles<'mlock'>(set, (r) => (r.backend === 'mlock' ? { onFault: r.details.onFault } : null)) };
  }
}

// ---- Reading a report back from JSON ----

/** Thrown inside the readers below; parseRegistrationSetReport turns it into null. */
class NotAReport extends Error {}

type KeysWith<T, V> = { [K in keyof T]-?: T[K] extends V ? K : never }[keyof T] & string;

/**
 * Typed access to the fields of a JSON object that should be a T: each reader takes only keys of T
 * whose type matches, so renaming a key of T (or changing its type) breaks the reader at compile time.
 */
class Fields<T> {
  private readonly raw: Record<string, unknown>;
  constructor(value: unknown, what: string) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new NotAReport(`${what} is not an object`);
    this.raw = value as Record<string, unknown>;
  }

  private readInteger(key: string, min: number): number {
    const v = this.raw[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new NotAReport(`${key} is not an integer ≥ ${min}`);
    return v;
  }

  private readString(key: string, pattern: RegExp | undefined): string {
    const v = this.raw[key];
    if (typeof v !== 'string' || (pattern !== undefined && !pattern.test(v))) throw new NotAReport(`${key} is not a valid string`);
    return v;
  }

  integer(key: KeysWith<T, number>, min = 0): number {
    return this.readInteger(key, min);
  }

  integerOrNull(key: KeysWith<T, number | null>): number | null {
    return this.raw[key] === null ? null : this.readInteger(key, 0);
  }

  string(key: KeysWith<T, string>, pattern?: RegExp): string {
    return this.readString(key, pattern);
  }

  stringOrNull(key: KeysWith<T, string | null>, pattern?: RegExp): string | null {
    return this.raw[key] === null ? null : this.readString(key, pattern);
  }

  boolean(key: KeysWith<T, boolean>): boolean {
    const v = this.raw[key];
    if (typeof v !== 'boolean') throw new NotAReport(`${key} is not a boolean`);
    return v;
  }

  oneOf<V extends string>(key: KeysWith<T, V>, values: readonly V[]): V {
    const v = this.raw[key];
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw new NotAReport(`${key} is not one of ${values.join(', ')}`);
    return v as V;
  }

  list<V>(key: KeysWith<T, unknown[]>, item: (value: unknown) => V): V[] {
    const v = this.raw[key];
    if (!Array.isArray(v)) throw new NotAReport(`${key} is not a list`);
    return v.map(item);
  }

  object<V>(key: keyof T & string, read: (value: unknown) => V): V {
    return read(this.raw[key]);
  }
}

const HEX_ADDR = /^0x[0-9a-f]{1,16}$/;
const FORK_STATUSES: readonly ForkStatus[] = ['disabled', 'enabled', 'unneeded'];
const PROTECTIONS: readonly AppliedProtection[] = ['dontfork', 'wipeonfork', 'fork-init'];
const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', ...BACKENDS];

function accounting(value: unknown): Accounting {
  const f = new Fields<Accounting>(value, 'accounting');
  return { pinnedBytes: f.integer('pinnedBytes'), lockedBytes: f.integer('lockedBytes') };
}

/** Each backend's details, read key by key (the same keys reportRegistrations writes). */
const DETAILS: { [B in BackendName]: (value: unknown) => RegistrationDetailsByBackend[B] } = {
  verbs: (value) => {
    const f = new Fields<RegistrationDetailsByBackend['verbs']>(value, 'verbs details');
    return {
      device: f.string('device'), lkey: f.integer('lkey'), rkey: f.integer('rkey'), access: f.integer('access'),
      accessFlags: f.string('accessFlags'), fork: f.oneOf('fork', FORK_STATUSES),
    };
  },
  uring: (value) => {
    const f = new Fields<RegistrationDetailsByBackend['uring']>(value, 'uring details');
    return { ringFd: f.integer('ringFd'), fixedBuffers: f.integer('fixedBuffers', 1) };
  },
  mlock: (value) => {
    const f = new Fields<RegistrationDetailsByBackend['mlock']>(value, 'mlock details');
    return { onFault: f.boolean('onFault') };
  },
};

function handleReader<B extends BackendName>(backend: B): (value: unknown) => HandleReport<B> {
  return (value) => {
    const f = new Fields<HandleReport<B>>(value, 'handle');
    return {
      addr: f.string('addr', HEX_ADDR), length: f.integer('length', 1), elapsedMicros: f.integer('elapsedMicros'),
      details: f.object('details', DETAILS[backend]),
    };
  };
}

function reportOf<B extends BackendName>(backend: B, f: Fields<ReportOf<BackendName>>): ReportOf<B> {
  return {
    backend,
    backendRequested: f.oneOf('backendRequested', BACKEND_CHOICES),
    pid: f.integer('pid', 1),
    backing: f.oneOf('backing', BACKINGS),
    readOnly: f.boolean('readOnly'),
    protections: f.list('protections', (p) => {
      if (typeof p !== 'string' || !(PROTECTIONS as readonly string[]).includes(p)) throw new NotAReport('unknown protection');
      return p as AppliedProtection;
    }),
    addr: f.stringOrNull('addr', HEX_ADDR),
    length: f.integer('length'),
    buffers: f.integer('buffers'),
    handles: f.list('handles', handleReader(backend)),
    before: f.object('before', accounting),
    after: f.object('after', accounting),
    memlockLimitBytes: f.integerOrNull('memlockLimitBytes'),
  };
}

/** A report read back from JSON (a held record, a holder's answer), checked field by field; null when it is not one. */
export function parseRegistrationSetReport(value: unknown): RegistrationSetReport | null {
  try {
    const f = new Fields<ReportOf<BackendName>>(value, 'report');
    const backend = f.oneOf('backend', BACKENDS);
    switch (backend) {
      case 'verbs': return reportOf('verbs', f);
      case 'uring': return reportOf('uring', f);
      case 'mlock': return reportOf('mlock', f);
    }
  } catch (err) {
    if (err instanceof NotAReport) return null;
    throw err;
  }
}
