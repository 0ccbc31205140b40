// Users and groups as ps, id and pam_limits see them: through the C library's NSS (nsswitch.conf:
// files, LDAP, sssd, NIS, extrausers, …), never by reading /etc/passwd or /etc/group ourselves.
// Every answer, "no such entry" and failures included, is kept: a scan of thousands of processes
// asks NSS once per uid, and a directory service that is down costs one timeout per uid, not one per
// process. A command's run is over long before an answer ages out; the exporter and top run for
// months, so they ask again after 10 minutes (a user renamed or added in LDAP), and after a minute
// when the lookup failed (sssd still starting at boot).

import { getgrgidR, getgrouplist, getpwnamR, getpwuidR, type GroupEntry, type NssAnswer, type PasswdEntry } from '../ffi/libc.js';
import { SyscallError } from '../lib/errno.js';

export type { GroupEntry, PasswdEntry } from '../ffi/libc.js';

const EPERM = 1;
const ENOENT = 2;
const ESRCH = 3;
const EBADF = 9;
const ERANGE = 34;
// "Not found": POSIX says 0 with a NULL result; getpwnam_r(3) lists ENOENT, ESRCH, EBADF and EPERM as
// what some implementations return instead (glibc: ENOENT when no NSS service could answer at all).
const NOT_FOUND = new Set([0, ENOENT, ESRCH, EBADF, EPERM]);

/** glibc's own sysconf(_SC_GETPW_R_SIZE_MAX) hint is 1 KiB; 4 KiB fits nearly every entry at once. */
export const FIRST_BUFFER_BYTES = 4096;
/** A group entry carries its member list: 16 MiB holds several hundred thousand member names. */
export const MAX_BUFFER_BYTES = 16 * 1024 * 1024;
/** The kernel's NGROUPS_MAX: no process can be in more groups than this. */
const MAX_GROUPS = 65536;

/**
 * One getpw*_r / getgr*_r lookup, with the scratch buffer doubled on ERANGE up to `maxBytes`. Null
 * for "no such entry"; a SyscallError for a real failure (EIO, ENOMEM, a directory service timing out)
 * or an entry that does not fit in `maxBytes`.
 */
export function growingLookup<T>(call: string, lookup: (bufferBytes: number) => NssAnswer<T>, firstBytes = FIRST_BUFFER_BYTES, maxBytes = MAX_BUFFER_BYTES): T | null {
  for (let bytes = Math.min(firstBytes, maxBytes); ; bytes = Math.min(bytes * 2, maxBytes)) {
    nssCalls += 1;
    const answer = lookup(bytes);
    if (answer.entry !== null) return answer.entry;
    if (NOT_FOUND.has(answer.error)) return null;
    if (answer.error !== ERANGE) throw new SyscallError(call, answer.error);
    if (bytes >= maxBytes) throw new SyscallError(call, ERANGE, `the entry does not fit in ${maxBytes} bytes`);
  }
}

let nssCalls = 0;

/** How many NSS calls this run made (for tests of the cache). */
export function nssCallCount(): number {
  return nssCalls;
}

const ANSWER_KEEP_MS = 10 * 60_000;
const FAILURE_KEEP_MS = 60_000;

/** An answer kept: the entry, null for none, or the failure to throw again; and when it was got. */
interface Kept<T> {
  answer: T | null | SyscallError;
  atMs: number;
}

const usersByUid = new Map<number, Kept<PasswdEntry>>();
const usersByName = new Map<string, Kept<PasswdEntry>>();
const groupsByGid = new Map<number, Kept<GroupEntry>>();

function kept<K, T>(cache: Map<K, Kept<T>>, key: K, look: () => T | null): T | null {
  const now = performance.now();
  let entry = cache.get(key);
  if (entry === undefined || now - entry.atMs >= (entry.answer instanceof SyscallError ? FAILURE_KEEP_MS : ANSWER_KEEP_MS)) {
    let answer: T | null | SyscallError;
    try {
      answer = look();
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
      answer = err;
    }
    entry = { answer, atMs: now };
    cache.set(key, entry);
  }
  if (entry.answer instanceof SyscallError) throw entry.answer;
  return entry.answer;
}

/** The user database entry of uid; null when NSS has none. Throws SyscallError when the lookup fails. */
export function userByUid(uid: number): PasswdEntry | null {
  return kept(usersByUid, uid, () => growingLookup('getpwuid_r', (bytes) => getpwuidR(uid, bytes)));
}

/** The user database entry named `name`; null when NSS has none. Throws SyscallError when the lookup fails. */
export function userByName(name: string): PasswdEntry | null {
  // A C string ends at NUL: "root\0x" must not find root.
  if (name === '' || name.includes('\0')) return null;
  return kept(usersByName, name, () => growingLookup('getpwnam_r', (bytes) => getpwnamR(name, bytes)));
}

/** The group database entry of gid; null when NSS has none. Throws SyscallError when the lookup fails. */
export function groupByGid(gid: number): GroupEntry | null {
  return kept(groupsByGid, gid, () => growingLookup('getgrgid_r', (bytes) => getgrgidR(gid, bytes)));
}

/** User name for uid, or the uid as a string when NSS has no name or cannot be asked (as ps shows it). */
export function userName(uid: number): string {
  try {
    return userByUid(uid)?.name ?? String(uid);
  } catch (err) {
    if (err instanceof SyscallError) return String(uid);
    throw err;
  }
}

/** Linux uids are 32-bit; (uid_t)-1 = 4294967295 means "no uid" in the syscalls that take one. */
const MAX_UID = 4_294_967_294;

/**
 * A user name known to NSS or a numeric uid to a uid; null for a name NSS does not know or a number
 * outside 0…4294967294. (A uid without a name is valid: processes can run as any uid.) Throws
 * SyscallError when NSS fails.
 */
export function resolveUser(text: string): number | null {
  if (/^\d+$/.test(text)) {
    const uid = Number(text);
    return uid <= MAX_UID ? uid : null;
  }
  return userByName(text)?.uid ?? null;
}

/** A group of a user: its gid and, when NSS has one, its name. */
export interface UserGroup {
  gid: number;
  name: string | null;
}

/**
 * Every group of `user` as initgroups(3) would set them at login (the primary group first, then the
 * supplementary ones from every NSS source), with their names. Throws SyscallError when NSS fails.
 */
export function groupsOfUser(user: PasswdEntry): UserGroup[] {
  let room = 64;
  for (;;) {
    nssCalls += 1;
    const answer = getgrouplist(user.name, user.gid, room);
    if (answer.gids !== null) {
      const gids = [...new Set([user.gid, ...answer.gids])];
      return gids.map((gid) => ({ gid, name: groupByGid(gid)?.name ?? null }));
    }
    if (room >= MAX_GROUPS) throw new SyscallError('getgrouplist', ERANGE, `more than ${MAX_GROUPS} groups`);
    room = Math.min(Math.max(answer.needed, room * 2), MAX_GROUPS);
  }
}
