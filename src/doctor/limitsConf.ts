// What pam_limits would give a user for memlock: /etc/security/limits.conf, then limits.d/*.conf in
// name order, with pam_limits' rules (linux-pam modules/pam_limits):
//   - a line is "domain type item value"; '#' starts a comment; case does not matter except in names;
//   - domain: the user name, @group (primary or supplementary), '*' (default), uid ranges "min:max",
//     "@gmin:gmax" (by primary gid), "%..." (maxlogins only: ignored for memlock);
//   - type soft, hard or '-' (both); value in KiB, or unlimited / infinity / -1 / '-';
//   - precedence by domain kind: user > group > '*'; among equal kinds the later line wins;
//   - a two-word "domain -" line for the user or one of its groups means "no limits": pam_limits stops
//     there and changes nothing;
//   - a soft limit above the hard one is lowered to it.
// Only what a login through PAM would set: services, containers and launchers never read these files.
//
// The account (name, primary group, groups) comes from where pam_limits would get it: on this machine
// (--root /) through the C library's NSS, so users and groups from LDAP, sssd or NIS count; under
// another --root from that tree's etc/passwd and etc/group only, since this machine's NSS (and its
// directory services) cannot answer for an image or a chroot.

import { fstatSync, statSync } from 'node:fs';
import { SyscallError } from '../lib/errno.js';
import { groupsOfUser, userByUid } from '../proc/accounts.js';
import { ACCOUNTS_MAX_BYTES, CONFIG_MAX_BYTES, MAX_ENTRIES, closeRoot, listRootDir, openRoot, readRootFile, type RootDir } from '../proc/rootFiles.js';

export interface LimitsConfLine {
  file: string;
  line: number;
  domain: string;
  type: string;
  item: string;
  value: string;
}

export interface Account {
  name: string;
  uid: number;
  gid: number;
  /** Names of the primary group and every group the user is a member of (a group without a name is left out). */
  groups: string[];
  /** Gids of the primary group and every group the user is a member of. */
  gids: number[];
}

/** Every complete four-word line and every two-word "domain -" line, in file order. */
export function parseLimitsConf(text: string, file: string): LimitsConfLine[] {
  const lines: LimitsConfLine[] = [];
  text.split('\n').forEach((raw, index) => {
    const content = raw.split('#')[0]!.trim();
    if (content === '') return;
    const words = content.split(/[ \t]+/);
    if (words.length >= 4) {
      lines.push({ file, line: index + 1, domain: words[0]!, type: words[1]!.toLowerCase(), item: words[2]!.toLowerCase(), value: words.slice(3).join(' ').toLowerCase() });
    } else if (words.length === 2 && words[1] === '-') {
      lines.push({ file, line: index + 1, domain: words[0]!, type: '-', item: '', value: '' });
    }
  });
  return lines;
}

// pam_limits' LIMITS_DEF_* order: a lower number wins over a higher one.
const SOURCE_USER = 0;
const SOURCE_GROUP = 1;
const SOURCE_DEFAULT = 4;

function range(spec: string): { min: number; max: number } | null | 'bad' {
  const colon = spec.indexOf(':');
  if (colon < 0) return null;
  const minText = spec.slice(0, colon);
  const maxText = spec.slice(colon + 1);
  const min = minText === '' ? null : Number(minText);
  const max = maxText === '' ? null : Number(maxText);
  if ((min !== null && !Number.isInteger(min)) || (max !== null && !Number.isInteger(max)) || (min === null && max === null)) return 'bad';
  // ":N" is exactly N; "N:" is N and above.
  return min === null ? { min: max!, max: max! } : { min, max: max ?? Number.MAX_SAFE_INTEGER };
}

/** Which kind of domain `domain` is for this account, or null when the line does not apply. */
export function domainSource(domain: string, account: Account): number | null {
  if (domain === account.name) return SOURCE_USER;
  if (domain.startsWith('%')) return null; // maxlogins only
  if (domain.startsWith('@')) {
    const spec = domain.slice(1);
    const r = range(spec);
    if (r === 'bad') return null;
    if (r === null) return account.groups.includes(spec) ? SOURCE_GROUP : null;
    // "@:gid" is membership of that group; "@min:max" compares the primary gid.
    if (spec.startsWith(':')) return account.gids.includes(r.min) ? SOURCE_GROUP : null;
    return account.gid >= r.min && account.gid <= r.max ? SOURCE_GROUP : null;
  }
  if (domain === '*') return SOURCE_DEFAULT;
  const r = range(domain);
  if (r === null || r === 'bad') return null;
  return account.uid >= r.min && account.uid <= r.max ? SOURCE_USER : null;
}

/** A memlock value in bytes; null = unlimited; undefined = not a value pam_limits accepts. */
export function memlockValueBytes(value: string): number | null | undefined {
  if (value === 'unlimited' || value === 'infinity' || value === '-1' || value === '-') return null;
  const match = /^(\d+)/.exec(value);
  return match ? Number(match[1]) * 1024 : undefined;
}

export interface PamMemlock {
  /** null = unlimited; undefined = no line sets it (the process keeps what it inherited). */
  softBytes: number | null | undefined;
  hardBytes: number | null | undefined;
  softLine: LimitsConfLine | null;
  hardLine: LimitsConfLine | null;
  /** A "domain -" line that applies: pam_limits sets nothing at all. */
  noLimitsLine: LimitsConfLine | null;
}

/** Apply pam_limits' rules to the lines of every file, in the order pam_limits reads them. */
export function resolvePamMemlock(files: ReadonlyArray<readonly LimitsConfLine[]>, account: Account): PamMemlock {
  const out: PamMemlock = { softBytes: undefined, hardBytes: undefined, softLine: null, hardLine: null, noLimitsLine: null };
  let softSource = Number.POSITIVE_INFINITY;
  let hardSource = Number.POSITIVE_INFINITY;
  for (const lines of files) {
    for (const line of lines) {
      const source = domainSource(line.domain, account);
      if (source === null) continue;
      if (line.item === '' && line.type === '-') {
        if (source !== SOURCE_DEFAULT) return { softBytes: undefined, hardBytes: undefined, softLine: null, hardLine: null, noLimitsLine: line };
        continue;
      }
      if (line.item !== 'memlock') continue;
      const bytes = memlockValueBytes(line.value);
      if (bytes === undefined) continue;
      const soft = line.type === 'soft' || line.type === '-';
      const hard = line.type === 'hard' || line.type === '-';
      if (!soft && !hard) continue;
      // pam_limits returns early when the soft part loses, so a '-' line then sets neither.
      if (soft) {
        if (softSource < source) continue;
        out.softBytes = bytes;
        out.softLine = line;
        softSource = source;
      }
      if (hard) {
        if (hardSource < source) continue;
        out.hardBytes = bytes;
        out.hardLine = line;
        hardSource = source;
      }
    }
  }
  const soft = out.softBytes;
  const hard = out.hardBytes;
  if (soft !== undefined && hard !== undefined && hard !== null && (soft === null || soft > hard)) out.softBytes = hard;
  return out;
}

/** A file under --root that was not read, and why. */
export interface SkippedFile {
  file: string;
  reason: string;
}

/** The files pam_limits reads under `root`, in its order; missing ones are left out, refused ones go to `skipped`. */
export function readLimitsConfFiles(root: RootDir, skipped: SkippedFile[]): Array<{ file: string; lines: LimitsConfLine[] }> {
  const out: Array<{ file: string; lines: LimitsConfLine[] }> = [];
  const add = (rel: string): void => {
    const read = readRootFile(root, rel, CONFIG_MAX_BYTES);
    if (read.kind === 'text') out.push({ file: read.path, lines: parseLimitsConf(read.text, read.path) });
    else if (read.kind === 'skipped') skipped.push({ file: read.path, reason: read.reason });
  };
  add('etc/security/limits.conf');
  const listing = listRootDir(root, 'etc/security/limits.d');
  if (listing.kind === 'skipped') skipped.push({ file: listing.path, reason: listing.reason });
  if (listing.kind !== 'names') return out;
  if (listing.truncated) skipped.push({ file: listing.path, reason: `more than ${MAX_ENTRIES} entries: only the first ${MAX_ENTRIES} read were considered` });
  // pam_limits globs limits.d/*.conf, which leaves out dot files, and reads the matches in name order.
  const names = listing.names.filter((n) => n.endsWith('.conf') && !n.startsWith('.')).sort();
  for (const name of names) add(`etc/security/limits.d/${name}`);
  return out;
}

/** "name:x:gid:member,member" lines of another root's etc/group → group name → { gid, members }. */
export function parseGroupFile(text: string): Map<string, { gid: number; members: string[] }> {
  const groups = new Map<string, { gid: number; members: string[] }>();
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 4 || fields[0] === '' || line.startsWith('#')) continue;
    const gid = Number(fields[2]);
    if (!Number.isInteger(gid) || groups.has(fields[0]!)) continue;
    groups.set(fields[0]!, { gid, members: fields[3]!.split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return groups;
}

/** The account of uid from another root's passwd and group text; null when uid has no entry. */
export function accountFromFiles(uid: number, passwdText: string, groupText: string): Account | null {
  let name: string | null = null;
  let gid = -1;
  for (const line of passwdText.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 4 && Number(fields[2]) === uid && fields[2] !== '') {
      name = fields[0]!;
      gid = Number(fields[3]);
      break;
    }
  }
  if (name === null) return null;
  const mine = [...parseGroupFile(groupText)].filter(([, g]) => g.gid === gid || g.members.includes(name!));
  return { name, uid, gid, groups: mine.map(([n]) => n), gids: [...new Set([gid, ...mine.map(([, g]) => g.gid)])] };
}

/** Account of uid from `root`/etc/passwd and group; null when it has none there. Refused files go to `skipped`. */
export function readAccountFiles(uid: number, root: RootDir, skipped: SkippedFile[]): Account | null {
  const text = (rel: string): string => {
    const read = readRootFile(root, rel, ACCOUNTS_MAX_BYTES);
    if (read.kind === 'skipped') skipped.push({ file: read.path, reason: read.reason });
    return read.kind === 'text' ? read.text : '';
  };
  return accountFromFiles(uid, text('etc/passwd'), text('etc/group'));
}

/** What NSS names the user database in messages and in skipped entries. */
export const NSS_SOURCE = 'the user database (NSS)';

/**
 * Account of uid through NSS, as pam_limits on this machine sees it: getpwuid, then getgrouplist
 * (every source's groups, as initgroups sets them at login). Null when NSS has no such user; a failing
 * lookup goes to `skipped` and counts as no account.
 */
export function readAccountNss(uid: number, skipped: SkippedFile[]): Account | null {
  try {
    const user = userByUid(uid);
    if (user === null) return null;
    const groups = groupsOfUser(user);
    return {
      name: user.name,
      uid,
      gid: user.gid,
      groups: groups.flatMap((g) => (g.name === null ? [] : [g.name])),
      gids: groups.map((g) => g.gid),
    };
  } catch (err) {
    if (!(err instanceof SyscallError)) throw err;
    skipped.push({ file: NSS_SOURCE, reason: err.message });
    return null;
  }
}

/** DIR is the root this process sees: the same directory, whatever path names it. */
function isOwnRoot(root: RootDir): boolean {
  const dir = fstatSync(root.fd);
  const own = statSync('/');
  return dir.dev === own.dev && dir.ino === own.ino;
}

/** What doctor reads under --root, read once: pam_limits' files and the target's account. */
export interface RootConfig {
  /** DIR as given. */
  root: string;
  limitsFiles: Array<{ file: string; lines: LimitsConfLine[] }>;
  account: Account | null;
  /** Where the account came from: NSS (DIR is this machine's root) or DIR's etc/passwd and etc/group. */
  accountSource: 'nss' | 'files';
  /** Files that exist but were not read (FIFO, device, too large, unreadable, symlink loop, …). */
  skipped: SkippedFile[];
}

/** Reads limits.conf and limits.d under `dir`, and uid's account (see the top). Throws UsageError when DIR cannot be opened. */
export function readRootConfig(dir: string, uid: number): RootConfig {
  const root = openRoot(dir);
  try {
    const skipped: SkippedFile[] = [];
    const limitsFiles = readLimitsConfFiles(root, skipped);
    const accountSource = isOwnRoot(root) ? 'nss' : 'files';
    const account = accountSource === 'nss' ? readAccountNss(uid, skipped) : readAccountFiles(uid, root, skipped);
    return { root: dir, limitsFiles, account, accountSource, skipped };
  } finally {
    closeRoot(root);
  }
}
