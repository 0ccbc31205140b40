// The held-records store: one JSON file per registration held by a detached holder
// (`rdmactl reg --detach`), so that `dereg`, `ls`, `stat` and `top` can find it later.
//
// Where it lives (runtimeDir):
//   $XDG_RUNTIME_DIR/rdmactl   when XDG_RUNTIME_DIR is set to an absolute path
//   /run/rdmactl               for root (effective uid 0) otherwise
//   /tmp/rdmactl-<uid>         for everyone else
// The directory is created with mode 0700 (its parent must already exist) and is only used when it is
// a real directory (not a symlink) owned by our effective uid with no group or other permission bits;
// anything else is refused with a PermissionError (exit 4) that says what is wrong.
//
// Files: <id>.json, mode 0600, one per held registration. A record is written to a temporary file in
// the same directory, fsynced, then hard-linked to its final name — link(2) never replaces an existing
// file, so two holders can never share an id — and the temporary name is unlinked. Records are opened
// with O_NOFOLLOW and must be regular files owned by us; anything else in the directory is ignored.
//
// Verification (verifyHolder): a record names its holder by pid AND start time (field 22 of
// /proc/PID/stat, clock ticks after boot), so a reused pid is detected; the holder's command line
// (/proc/PID/cmdline, readable for any process) must be the holder program's (…/holderMain.cjs or .js) with
// "--holder-token TOKEN" and the record's random token, so an unrelated process that happens to match
// is not mistaken for a holder; and the process's effective uid must equal the record's uid and ours.
// (Holders started by rdmactl before the holder program existed ran `rdmactl reg … --holder-token
// TOKEN`; that command line is still recognised, so such a holder can be listed and released.)

import { randomBytes } from 'node:crypto';
import {
  closeSync, constants, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, unlinkSync,
} from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { EXIT, PermissionError, RdmactlError } from '../lib/errors.js';
import { escapeText } from '../lib/escape.js';
import { parseRegistrationSetReport, type RegistrationSetReport } from '../engine/report.js';
import { errorCode, ProcUnreadableError } from '../proc/procfs.js';
import { CLOCK_TICKS_PER_SECOND, PF_EXITING, readBootTimeSeconds, readStat } from '../proc/stat.js';
import { readCmdline } from '../proc/cmdline.js';
import { readEnviron } from '../proc/environ.js';
import { listPids } from '../proc/procfs.js';
import { tryLockExclusive } from '../ffi/libc.js';
import { writeAll } from '../lib/writeAll.js';
import { readStatus } from '../proc/status.js';

/**
 * The record file's format. 2: `registration` is the typed RegistrationSetReport (1 stored reg --json's
 * printed keys). A record of another version is read for its holder fields only (pid, start time,
 * token, uid: the same in every version), so its holder can still be verified, listed and released;
 * its registration is unknown (null), like a damaged record's. Records live only as long as their
 * holder, so an old one is met only while a holder started by an older rdmactl is still running.
 */
export const HELD_RECORD_VERSION = 2;

/** What a holder writes: who holds the registration (pid + start time + token + uid) and what it holds. */
export interface HeldRecord {
  version: number;
  /** 8 lowercase hex characters, unique in the directory. */
  id: string;
  /** The holder process. */
  pid: number;
  /** The holder's start time, clock ticks after boot (/proc/PID/stat field 22): detects a reused pid. */
  startTime: number;
  /** Effective uid of the holder. */
  uid: number;
  /** Random marker; the holder's command line carries `--holder-token <token>`. */
  token: string;
  /** ISO 8601 time the registration was made. */
  createdAt: string;
  /** ISO 8601 time the holder will release by itself (reg --detach --for), or null (until dereg). */
  releaseAt: string | null;
  /**
   * What the holder registered, as the typed report `reg` prints (reg --json is derived from it).
   * null when unknown: the record is damaged or of another version, or a running holder has no record.
   */
  registration: RegistrationSetReport | null;
}

export type HeldState = 'live' | 'stale';

/**
 * Why a record is not a plain live holder of ours:
 *   exited      the holder is gone (or a zombie: no memory, nothing pinned)      → stale
 *   pid-reused  a different process has the pid now (start time differs)        → stale
 *   not-holder  the process is not an rdmactl holder with this record's token    → stale
 *   other-user  a live holder, but of another uid than the record's or ours      → live, not ours to release
 */
export type HolderProblem = 'exited' | 'pid-reused' | 'not-holder' | 'other-user';

export interface HolderCheck {
  state: HeldState;
  problem: HolderProblem | null;
  /** One line for people, null when live and ours. */
  reason: string | null;
}

/**
 * What the store has for a held registration:
 *   ok       a readable record
 *   missing  a running holder (found in the process table) with no record file
 *   damaged  a running holder whose record file cannot be read or parsed, or a record whose holder
 *            fields are readable but whose registration is not (damaged, or of another version)
 * For missing and damaged, the registration is unknown (null); the rest comes from the process or the record.
 */
export type RecordState = 'ok' | 'missing' | 'damaged';

/** A record as found in the store (or a recordless running holder), with the result of verifying its holder. */
export interface HeldEntry extends HeldRecord, HolderCheck {
  /** Path of the record file. */
  file: string;
  record: RecordState;
}

export interface StoreOptions {
  /** Environment to read XDG_RUNTIME_DIR from (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

const ID_PATTERN = /^[0-9a-f]{8}$/;
const RECORD_NAME = /^([0-9a-f]{8})\.json$/;

export function isHeldId(text: string): boolean {
  return ID_PATTERN.test(text);
}

export function effectiveUid(): number {
  return process.geteuid?.() ?? 0;
}

/** The store's directory for this environment and uid (see the rules at the top of this file). */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env, uid = effectiveUid()): string {
  const xdg = env['XDG_RUNTIME_DIR'];
  if (xdg !== undefined && xdg !== '' && isAbsolute(xdg)) return join(xdg, 'rdmactl');
  return uid === 0 ? '/run/rdmactl' : `/tmp/rdmactl-${uid}`;
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  EROFS: 'read-only file system', ENOSPC: 'no space left on device', EDQUOT: 'disk quota exceeded', EACCES: 'permission denied',
  EPERM: 'operation not permitted', EMLINK: 'too many links', EIO: 'input/output error',
};

/**
 * A failed file operation in the runtime directory as one line: "cannot DOING DIR: read-only file system
 * (EROFS)". EACCES/EPERM are permission errors (exit 4), anything else a runtime failure (exit 1).
 * Errors without an errno code (bugs) are returned as they are.
 */
export function storeError(doing: string, dir: string, err: unknown): unknown {
  const code = errorCode(err);
  if (code === undefined) return err;
  const what = `cannot ${doing} ${dir}: ${ERRNO_TEXT[code] !== undefined ? `${ERRNO_TEXT[code]} (${code})` : code}`;
  const hints = ['set XDG_RUNTIME_DIR to a private, writable directory of yours'];
  return code === 'EACCES' || code === 'EPERM' ? new PermissionError(what, hints, { cause: err }) : new RdmactlError(what, EXIT.FAILURE, hints, { cause: err });
}

/** Throws unless `dir` is a real directory owned by us with mode 0700 or stricter; false when it does not exist. */
function checkDir(dir: string): boolean {
  let st;
  try {
    st = lstatSync(dir);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT') return false;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new PermissionError(`cannot use the runtime directory ${dir}: permission denied (${code})`, ['set XDG_RUNTIME_DIR to a private directory of yours']);
    }
    throw new RdmactlError(`cannot use the runtime directory ${dir}: ${code ?? String(err)}`);
  }
  const uid = effectiveUid();
  const hint = `set XDG_RUNTIME_DIR to a private directory of yours, or remove ${dir}`;
  if (st.isSymbolicLink()) throw new PermissionError(`refusing runtime directory ${dir}: it is a symbolic link`, [hint]);
  if (!st.isDirectory()) throw new PermissionError(`refusing runtime directory ${dir}: not a directory`, [hint]);
  if (st.uid !== uid) throw new PermissionError(`refusing runtime directory ${dir}: owned by uid ${st.uid}, not by you (uid ${uid})`, [hint]);
  if ((st.mode & 0o077) !== 0) {
    throw new PermissionError(`refusing runtime directory ${dir}: mode ${octal(st.mode)} lets others in; it must be 0700`, [`chmod 700 ${dir}`]);
  }
  return true;
}

/** The store directory if it exists and is safe, null if it does not exist; throws if it is unsafe. */
export function existingRuntimeDir(options: StoreOptions = {}): string | null {
  const dir = runtimeDir(options.env);
  return checkDir(dir) ? dir : null;
}

/** Creates the store directory (mode 0700) if needed and checks it; returns its path. */
export function ensureRuntimeDir(options: StoreOptions = {}): string {
  const dir = runtimeDir(options.env);
  if (checkDir(dir)) return dir;
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT') {
      throw new RdmactlError(`cannot create the runtime directory ${dir}: its parent does not exist`, EXIT.FAILURE, ['check XDG_RUNTIME_DIR']);
    }
    if (code !== 'EEXIST') throw storeError('create the runtime directory', dir, err);
  }
  checkDir(dir);
  return dir;
}

function recordPath(dir: string, id: string): string {
  return join(dir, `${id}.json`);
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch {
    // Durability of the directory entry is a nicety on a runtime directory (usually tmpfs).
  }
}

/**
 * Writes a new record with a fresh unique id (temp file + fsync + link, so it appears complete or not
 * at all and never replaces another record). Any id/version in `record` is ignored; `options.id` fixes
 * the id (a holder's id comes from its token), otherwise a free one is drawn. Returns the record with its id.
 */
export function writeHeld(record: Omit<HeldRecord, 'id' | 'version'> & { id?: unknown; version?: unknown }, options: StoreOptions & { id?: string } = {}): HeldRecord {
  const dir = ensureRuntimeDir(options);
  const { id: _id, version: _version, ...fields } = record;
  const fixedId = options.id;
  for (let attempt = 0; attempt < 16; attempt++) {
    const id = fixedId ?? randomBytes(4).toString('hex');
    const full: HeldRecord = { version: HELD_RECORD_VERSION, id, ...fields };
    const temp = join(dir, `.${id}.${randomBytes(6).toString('hex')}.tmp`);
    let fd: number;
    try {
      fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw storeError('write a held record in', dir, err);
    }
    try {
      try {
        writeAll(fd, Buffer.from(`${JSON.stringify(full)}\n`, 'utf8'));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      try {
        linkSync(temp, recordPath(dir, id));
      } catch (err) {
        if (errorCode(err) === 'EEXIST' && fixedId === undefined) continue; // id taken: try another
        if (errorCode(err) === 'EEXIST') throw new RdmactlError(`a held record with id ${fixedId} already exists in ${dir}; try again`);
        throw err;
      }
      fsyncDir(dir);
      return full;
    } catch (err) {
      throw storeError('write a held record in', dir, err);
    } finally {
      // A record is complete under its name or not there at all: never a half-written temporary file.
      try { unlinkSync(temp); } catch { /* already gone */ }
    }
  }
  throw new RdmactlError(`cannot find a free record id in ${dir}`);
}

/**
 * A held record read back from JSON (a record file, or a holder's answer): its holder fields checked
 * one by one, its registration through parseRegistrationSetReport. null when the holder fields are not
 * all there; registration null when it is unreadable or the record is of another version.
 */
export function parseHeldRecord(value: unknown): HeldRecord | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const r = value as Record<string, unknown>;
  const { version, id, pid, startTime, uid, token, createdAt } = r;
  const releaseAt = r['releaseAt'] ?? null;
  if (!Number.isSafeInteger(version) || typeof id !== 'string' || !ID_PATTERN.test(id) || !Number.isSafeInteger(pid) || (pid as number) <= 0
    || !Number.isSafeInteger(startTime) || !Number.isSafeInteger(uid) || typeof token !== 'string' || typeof createdAt !== 'string'
    || (releaseAt !== null && typeof releaseAt !== 'string')) {
    return null;
  }
  return {
    version: version as number, id, pid: pid as number, startTime: startTime as number, uid: uid as number, token, createdAt, releaseAt,
    registration: version === HELD_RECORD_VERSION ? parseRegistrationSetReport(r['registration']) : null,
  };
}

/**
 * A regular file of ours in the runtime directory, opened without following a symlink (nor blocking
 * on a FIFO): its whole content, or null when it is missing, not a regular file owned by us, or
 * larger than `maxBytes` — or, with `larger: 'tail'`, its last `maxBytes` bytes from the first whole
 * line in them.
 */
export function readOwnFile(path: string, maxBytes: number, larger: 'refuse' | 'tail' = 'refuse'): string | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null; // gone, a symlink (ELOOP), or unreadable
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== effectiveUid() || (st.size > maxBytes && larger === 'refuse')) return null;
    const length = Math.min(st.size, maxBytes);
    const from = st.size - length;
    const bytes = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, bytes, got, length - got, from + got);
      if (n === 0) break;
      got += n;
    }
    const text = bytes.toString('utf8', 0, got);
    return from > 0 ? text.slice(text.indexOf('\n') + 1) : text;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** Reads one record file without following symlinks; null when missing, not ours, or without readable holder fields. */
function readRecordFile(path: string, id: string): HeldRecord | null {
  const text = readOwnFile(path, 1 << 20);
  if (text === null) return null;
  try {
    const record = parseHeldRecord(JSON.parse(text) as unknown);
    return record !== null && record.id === id ? record : null;
  } catch {
    return null;
  }
}

/** The record with this id, or null. Throws only when the directory itself is unsafe. */
export function readHeld(id: string, options: StoreOptions = {}): HeldRecord | null {
  if (!ID_PATTERN.test(id)) return null;
  const dir = existingRuntimeDir(options);
  return dir === null ? null : readRecordFile(recordPath(dir, id), id);
}

/** How long a released record's tombstone stays, so a second `dereg ID` racing the first learns it was released. */
const TOMBSTONE_MILLIS = 10 * 60 * 1000;

function tombstonePath(dir: string, id: string): string {
  return join(dir, `.${id}.released`);
}

/**
 * Removes the record with this id; false when it was not there. With `tombstone` (a release), the
 * record is renamed to a hidden tombstone instead, kept for ten minutes, so that a second `dereg ID`
 * that lost the race to the first can say "already released" instead of "no such id".
 */
export function removeHeld(id: string, options: StoreOptions = {}, how: { tombstone?: boolean } = {}): boolean {
  if (!ID_PATTERN.test(id)) return false;
  const dir = existingRuntimeDir(options);
  if (dir === null) return false;
  try {
    if (how.tombstone) renameSync(recordPath(dir, id), tombstonePath(dir, id));
    else unlinkSync(recordPath(dir, id));
    return true;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return false;
    throw storeError('remove a held record in', dir, err);
  }
}

/** The record of a registration released in the last ten minutes (its tombstone), or null. */
export function readReleased(id: string, options: StoreOptions = {}): HeldRecord | null {
  if (!wasReleased(id, options)) return null;
  const dir = existingRuntimeDir(options);
  return dir === null ? null : readRecordFile(tombstonePath(dir, id), id);
}

/**
 * The right to release one registration, so that of several `dereg`s racing for it exactly one
 * signals its holder and the others learn it was released by someone else. It is an exclusive flock on
 * the record file (on the runtime directory for a holder without a record): the kernel drops it when
 * the dereg holding it exits, however it exits, so a killed dereg never blocks the next one.
 *   held     ours until release() (close the fd)
 *   busy     another rdmactl holds it
 *   no-record  there is no record file (it was just released: renamed to its tombstone)
 */
export type HeldLock = { state: 'held'; release: () => void } | { state: 'busy' } | { state: 'no-record' };

function lockFile(path: string, flags: number, check: (st: ReturnType<typeof fstatSync>) => boolean): HeldLock {
  let fd: number;
  try {
    fd = openSync(path, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { state: 'no-record' };
    throw storeError('lock', path, err);
  }
  let locked = false;
  try {
    const st = fstatSync(fd);
    if (!check(st)) return { state: 'no-record' };
    if (!tryLockExclusive(fd)) return { state: 'busy' };
    // Renamed (released) between the open and the lock: that file is no longer the record.
    let now;
    try { now = lstatSync(path); } catch { return { state: 'no-record' }; }
    if (now.ino !== st.ino || now.dev !== st.dev) return { state: 'no-record' };
    locked = true;
    return { state: 'held', release: () => closeSync(fd) };
  } finally {
    if (!locked) closeSync(fd);
  }
}

/** Locks the record with this id (see HeldLock). */
export function lockHeld(id: string, options: StoreOptions = {}): HeldLock {
  const dir = existingRuntimeDir(options);
  if (dir === null || !ID_PATTERN.test(id)) return { state: 'no-record' };
  return lockFile(recordPath(dir, id), constants.O_RDONLY, (st) => st.isFile() && st.uid === effectiveUid());
}

/** Locks the runtime directory: what a dereg of a holder without a record holds (see HeldLock). */
export function lockRuntimeDir(options: StoreOptions = {}): HeldLock {
  const dir = existingRuntimeDir(options);
  if (dir === null) return { state: 'no-record' };
  return lockFile(dir, constants.O_RDONLY | constants.O_DIRECTORY, (st) => st.isDirectory());
}

/** True when a registration with this id was released in the last ten minutes (its tombstone is there). */
export function wasReleased(id: string, options: StoreOptions = {}): boolean {
  if (!ID_PATTERN.test(id)) return false;
  const dir = existingRuntimeDir(options);
  if (dir === null) return false;
  try {
    return Date.now() - lstatSync(tombstonePath(dir, id)).mtimeMs < TOMBSTONE_MILLIS;
  } catch {
    return false;
  }
}

function removeOldTombstones(dir: string, names: readonly string[]): void {
  for (const name of names) {
    if (!/^\.[0-9a-f]{8}\.released$/.test(name)) continue;
    try {
      if (Date.now() - lstatSync(join(dir, name)).mtimeMs >= TOMBSTONE_MILLIS) unlinkSync(join(dir, name));
    } catch {
      // removed by another rdmactl meanwhile
    }
  }
}

/** True when the process is gone, a zombie, or exiting (PF_EXITING: its memory may already be released, its cmdline empty). */
function exitingOrGone(pid: number): boolean {
  const stat = readStat(pid);
  if (stat === null) return true;
  return stat.state === 'Z' || stat.state === 'X' || (stat.flags & PF_EXITING) !== 0;
}

/** The holder program's one option; its value is the record's token. */
export const HOLDER_TOKEN_FLAG = '--holder-token';

/**
 * A holder renames itself (comm, /proc/PID/stat and status "Name:") so that a process scan finds it
 * without reading every command line: holders are found even when their record is missing or damaged.
 */
export const HOLDER_PROCESS_NAME = 'rdmactl-holder';

/** A holder's record id is the first 8 hex digits of its token, so the process itself names its id. */
export function holderIdOf(token: string): string | null {
  return /^[0-9a-f]{16}$/.test(token) ? token.slice(0, 8) : null;
}

/** The token on an rdmactl holder's command line, or null when argv is not one. */
export function holderTokenOf(argv: readonly string[]): string | null {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const token = arg === HOLDER_TOKEN_FLAG ? argv[i + 1] : arg.startsWith(`${HOLDER_TOKEN_FLAG}=`) ? arg.slice(HOLDER_TOKEN_FLAG.length + 1) : undefined;
    if (token !== undefined && isHolderCommandLine(argv, token)) return token;
  }
  return null;
}

/** File names of the holder program (see holder.ts) as its command line shows them: the bundle, or the ES module. */
export const HOLDER_PROGRAMS = ['holderMain.cjs', 'holderMain.js'] as const;

export function isHolderCommandLine(argv: readonly string[], token: string): boolean {
  if (token === '') return false;
  const hasToken = argv.some((arg, i) => (arg === HOLDER_TOKEN_FLAG && argv[i + 1] === token) || arg === `${HOLDER_TOKEN_FLAG}=${token}`);
  if (!hasToken) return false;
  const program = argv.some((arg) => HOLDER_PROGRAMS.some((name) => arg === name || arg.endsWith(`/${name}`)));
  const olderRdmactl = argv.includes('reg') && argv.some((arg) => arg.includes('rdmactl'));
  return program || olderRdmactl;
}

/**
 * Is this record's holder alive, the same process that wrote it, an rdmactl holder with the record's
 * token, and ours? Reads /proc/PID/stat, cmdline and status; signals nothing.
 */
export function verifyHolder(record: Pick<HeldRecord, 'pid' | 'startTime' | 'uid' | 'token'>): HolderCheck {
  const { pid } = record;
  const stat = readStat(pid);
  if (stat === null || stat.state === 'Z' || stat.state === 'X') {
    return { state: 'stale', problem: 'exited', reason: `holder pid ${pid} has exited` };
  }
  if (stat.startTimeTicks !== record.startTime) {
    return { state: 'stale', problem: 'pid-reused', reason: `holder pid ${pid} has exited and the pid now belongs to another process (start time ${stat.startTimeTicks}, recorded ${record.startTime})` };
  }
  let argv: string[] | null;
  try {
    argv = readCmdline(pid);
  } catch (err) {
    if (err instanceof ProcUnreadableError) {
      return { state: 'live', problem: 'other-user', reason: `cannot read the command line of pid ${pid}: it is not your process` };
    }
    throw err;
  }
  // A dying holder's command line reads as empty (its memory is gone before it becomes a zombie): exited, not someone else.
  if (argv === null || (!isHolderCommandLine(argv, record.token) && exitingOrGone(pid))) {
    return { state: 'stale', problem: 'exited', reason: `holder pid ${pid} has exited` };
  }
  if (!isHolderCommandLine(argv, record.token)) {
    return { state: 'stale', problem: 'not-holder', reason: `pid ${pid} is not an rdmactl holder with this record's token (it runs "${escapeText(argv.slice(0, 3).join(' '))}")` };
  }
  const status = readStatus(pid);
  if (status === null) return { state: 'stale', problem: 'exited', reason: `holder pid ${pid} has exited` };
  const me = effectiveUid();
  if (status.euid !== record.uid || record.uid !== me) {
    return { state: 'live', problem: 'other-user', reason: `holder pid ${pid} belongs to uid ${status.euid}, not to you (uid ${me})` };
  }
  return { state: 'live', problem: null, reason: null };
}

/** A running holder as the process table shows it (whatever its record says, or if it has none). */
export interface HolderProcess {
  pid: number;
  /** The store directory the holder writes to (from its environment and uid); null when unreadable. */
  runtimeDir: string | null;
  startTime: number;
  uid: number;
  token: string;
  id: string;
  /** When the process started (ISO 8601), from its start time and the boot time. */
  startedAt: string;
}

/** The holder process at `pid`, or null when that process is not a running rdmactl holder with an id. */
export function identifyHolder(pid: number, boot = readBootTimeSeconds()): HolderProcess | null {
  const stat = readStat(pid);
  if (stat === null || stat.comm !== HOLDER_PROCESS_NAME || stat.state === 'Z' || stat.state === 'X') return null;
  let argv: string[] | null;
  try {
    argv = readCmdline(pid);
  } catch {
    return null;
  }
  const token = argv === null ? null : holderTokenOf(argv);
  const id = token === null ? null : holderIdOf(token);
  const status = readStatus(pid);
  if (token === null || id === null || status === null) return null;
  const started = boot === null ? 0 : (boot + stat.startTimeTicks / CLOCK_TICKS_PER_SECOND) * 1000;
  return { pid, runtimeDir: holderRuntimeDir(pid, status.euid), token, startTime: stat.startTimeTicks, uid: status.euid, id, startedAt: new Date(started).toISOString() };
}

/** The runtime directory a holder uses: XDG_RUNTIME_DIR from its environment (readable only by its user and root). */
function holderRuntimeDir(pid: number, uid: number): string | null {
  let environ: Map<string, string> | null;
  try {
    environ = readEnviron(pid);
  } catch {
    return null;
  }
  if (environ === null) return null;
  const xdg = environ.get('XDG_RUNTIME_DIR');
  return runtimeDir(xdg === undefined ? {} : { XDG_RUNTIME_DIR: xdg }, uid);
}

/** Running holders among `candidates` (default: every process). */
export function findHolderProcesses(candidates?: readonly number[]): HolderProcess[] {
  const pids = candidates ?? listPids();
  // No candidates (the exporter's usual scrape): no /proc/stat read for the boot time.
  if (pids.length === 0) return [];
  const boot = readBootTimeSeconds();
  return pids.map((pid) => identifyHolder(pid, boot)).filter((h): h is HolderProcess => h !== null);
}

/** What a running holder without a (readable) record can tell about itself, as a record with unknown registration details. */
export function recordFromHolder(holder: HolderProcess): HeldRecord {
  return {
    version: HELD_RECORD_VERSION, id: holder.id, pid: holder.pid, startTime: holder.startTime, uid: holder.uid, token: holder.token,
    createdAt: holder.startedAt, releaseAt: null, registration: null,
  };
}

export interface ListHeldOptions {
  /**
   * Running holders to join with the records (default: found by a pass over /proc). Holders without a
   * readable record are listed too (record 'missing' or 'damaged'), so they can be seen and released.
   */
  holders?: readonly HolderProcess[];
}

/** Every record in the store and every running holder of ours without one, oldest first, each verified. */
export function listHeld(options: StoreOptions = {}, list: ListHeldOptions = {}): HeldEntry[] {
  const dir = existingRuntimeDir(options);
  const entries: HeldEntry[] = [];
  const damaged = new Set<string>();
  const names = dir === null ? [] : readdirSync(dir);
  if (dir !== null) removeOldTombstones(dir, names);
  for (const name of names) {
    const match = RECORD_NAME.exec(name);
    if (!match) continue;
    const file = join(dir!, name);
    const record = readRecordFile(file, match[1]!);
    if (record === null) {
      damaged.add(match[1]!);
      continue;
    }
    entries.push({ ...record, ...verifyHolder(record), file, record: record.registration === null ? 'damaged' : 'ok' });
  }
  const recorded = new Set(entries.filter((e) => e.state === 'live').map((e) => e.id));
  const me = effectiveUid();
  // The store is per user and directory: another user's holders, or holders writing to another
  // directory, are listed there (their pins still show in `ls` as io_uring/mlock rows).
  const here = runtimeDir(options.env);
  for (const holder of list.holders ?? findHolderProcesses()) {
    if (recorded.has(holder.id) || holder.uid !== me || holder.runtimeDir !== here) continue;
    entries.push({
      ...recordFromHolder(holder),
      state: 'live',
      problem: null,
      reason: null,
      file: join(dir ?? runtimeDir(options.env), `${holder.id}.json`),
      record: damaged.has(holder.id) ? 'damaged' : 'missing',
    });
  }
  return entries.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
}

/**
 * Removes every stale record (holder exited, pid reused, not a holder); returns how many were removed.
 * `entries`: a listHeld() the caller already made, so the holders are not checked a second time.
 */
export function removeStale(options: StoreOptions = {}, entries: readonly HeldEntry[] = listHeld(options)): number {
  let removed = 0;
  for (const entry of entries) {
    if (entry.state === 'stale' && removeHeld(entry.id, options)) removed++;
  }
  return removed;
}
