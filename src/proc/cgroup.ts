// Control groups: which cgroup a process is in (/proc/PID/cgroup), where each hierarchy is mounted
// (/proc/self/mountinfo: never assumed to be /sys/fs/cgroup), and the memory and rdma controller
// files of a cgroup directory.
//
// Kernel formats (Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/memory.rst, cgroup-v1/rdma.rst):
//   /proc/PID/cgroup   one line per hierarchy: `ID:CONTROLLERS:PATH`; v2 is `0::PATH`, a named v1
//                      hierarchy has `name=NAME` among its controllers. Hybrid systems print both.
//   memory.max, memory.current (v2)                         single value, `max` = no limit
//   memory.limit_in_bytes, memory.usage_in_bytes (v1)       single value; no limit = PAGE_COUNTER_MAX
//                                                           pages, printed as ~2^63 bytes
//   memory.stat                                             flat keyed `key value` (bytes)
//   rdma.max, rdma.current                                  nested keyed `DEV key=value …`, `max` allowed
// Cgroup files follow the /proc reader convention (procfs.ts): a file that vanished (the group was
// removed) reads as null, a refusal throws ProcUnreadableError — never a zero.

import { readdirSync } from 'node:fs';
import { ProcUnreadableError, readProcText, procPath, type ProcPid } from './procfs.js';

export interface CgroupMembership {
  /** Hierarchy id: 0 is the unified (v2) hierarchy. */
  hierarchyId: number;
  /** Controllers bound to a v1 hierarchy (`memory`, `cpu`, `name=systemd`); empty for v2. */
  controllers: string[];
  /** Path relative to the hierarchy's root, as the kernel prints it (starts with `/`). */
  path: string;
}

/** Parses /proc/PID/cgroup. The path may itself contain ':' (it is everything after the second one). */
export function parseProcCgroup(text: string): CgroupMembership[] {
  const out: CgroupMembership[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0) continue;
    const hierarchyId = Number(line.slice(0, first));
    if (!Number.isInteger(hierarchyId)) continue;
    const controllerText = line.slice(first + 1, second);
    out.push({ hierarchyId, controllers: controllerText === '' ? [] : controllerText.split(','), path: line.slice(second + 1) });
  }
  return out;
}

export function readProcCgroup(pid: ProcPid): CgroupMembership[] | null {
  const text = readProcText(procPath(pid, 'cgroup'));
  return text === null ? null : parseProcCgroup(text);
}

/** readProcCgroup with a refusal as 'unreadable' rather than an error; null when the process is gone. */
export function readProcCgroupOrRefused(pid: ProcPid): CgroupMembership[] | 'unreadable' | null {
  try {
    return readProcCgroup(pid);
  } catch (err) {
    if (err instanceof ProcUnreadableError) return 'unreadable';
    throw err;
  }
}

export interface MountEntry {
  /** Path inside the filesystem that is mounted (a cgroup namespace or bind mount shows a subtree). */
  root: string;
  mountPoint: string;
  fsType: string;
  /** Per-superblock options: for a v1 cgroup mount, its controllers (`rw,memory`, `rw,name=systemd`). */
  superOptions: string[];
}

/** Undoes mountinfo's octal escapes of space, tab, newline and backslash (`\040`, `\011`, `\012`, `\134`). */
export function unescapeMountPath(raw: string): string {
  return raw.includes('\\') ? raw.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))) : raw;
}

/**
 * Parses /proc/PID/mountinfo: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTIONS`
 * (proc(5)). Lines that do not have that shape are skipped.
 */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (fields.length < 7 || dash < 0 || dash + 3 > fields.length) continue;
    out.push({
      root: unescapeMountPath(fields[3]!),
      mountPoint: unescapeMountPath(fields[4]!),
      fsType: fields[dash + 1]!,
      superOptions: (fields[dash + 3] ?? '').split(','),
    });
  }
  return out;
}

/** Where one cgroup hierarchy is visible in our mount namespace. */
export interface CgroupMount {
  mountPoint: string;
  /** The hierarchy path shown at mountPoint (`/` unless a namespace or bind mount shows a subtree). */
  root: string;
}

export interface CgroupMounts {
  /** v1 hierarchies by controller (`memory`, `rdma`, `name=systemd`, …). */
  v1: Map<string, CgroupMount>;
  /** The unified (v2) hierarchy, or null when it is not mounted. */
  v2: CgroupMount | null;
}

const V1_IGNORED_OPTIONS = new Set(['rw', 'ro', 'noprefix', 'clone_children', 'xattr', 'cpuset_v2_mode', 'favordynmods', 'nofavordynmods']);

/** The cgroup mounts among mountinfo entries; the first mount of a hierarchy wins (later ones are usually binds). */
export function cgroupMounts(entries: readonly MountEntry[]): CgroupMounts {
  const v1 = new Map<string, CgroupMount>();
  let v2: CgroupMount | null = null;
  for (const entry of entries) {
    if (entry.fsType === 'cgroup2') {
      v2 ??= { mountPoint: entry.mountPoint, root: entry.root };
    } else if (entry.fsType === 'cgroup') {
      for (const option of entry.superOptions) {
        if (V1_IGNORED_OPTIONS.has(option) || option.startsWith('release_agent=')) continue;
        if (!v1.has(option)) v1.set(option, { mountPoint: entry.mountPoint, root: entry.root });
      }
    }
  }
  return { v1, v2 };
}

export function readCgroupMounts(): CgroupMounts {
  const text = readProcText(procPath('self', 'mountinfo'));
  return cgroupMounts(text === null ? [] : parseMountinfo(text));
}

/**
 * The directory of a cgroup `path` (as /proc/PID/cgroup prints it) under `mount`, or null when the
 * path lies outside the subtree mounted there (another cgroup namespace's view).
 */
export function cgroupDirectory(mount: CgroupMount, path: string): string | null {
  const root = mount.root === '/' ? '' : mount.root;
  if (root !== '' && path !== root && !path.startsWith(`${root}/`)) return null;
  const rest = path.slice(root.length);
  const base = mount.mountPoint === '/' ? '' : mount.mountPoint;
  return rest === '' || rest === '/' ? (base === '' ? '/' : base) : `${base}${rest}`;
}

/** A cgroup path and its ancestors up to the hierarchy's root: /a/b → /a/b, /a, /. */
export function cgroupAncestors(path: string): string[] {
  const out: string[] = [];
  for (let p = path; ; p = p.slice(0, p.lastIndexOf('/')) || '/') {
    out.push(p);
    if (p === '/') return out;
  }
}

/** At most this many cgroups are listed in one walk: a bound on the reads, far above real hosts' counts. */
export const MAX_CGROUP_WALK = 100_000;

/**
 * Every cgroup under `mount` (its root included), as /proc/PID/cgroup prints the paths, parents
 * before children; at most `limit`. A directory removed or refused while walking is skipped with
 * what lies under it: the walk only finds groups to show, and reads each one's files after.
 */
export function listCgroupPaths(mount: CgroupMount, limit = MAX_CGROUP_WALK): string[] {
  const top = cgroupDirectory(mount, mount.root);
  if (top === null) return [];
  const paths: string[] = [];
  const pending: Array<{ path: string; directory: string }> = [{ path: mount.root, directory: top }];
  for (let next = 0; next < pending.length && paths.length < limit; next++) {
    const { path, directory } = pending[next]!;
    paths.push(path);
    let entries;
    try {
      entries = readdirSync(directory, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM') continue;
      throw err;
    }
    // Only directories are cgroups; cgroupfs has no symbolic links to follow.
    for (const entry of entries) {
      if (entry.isDirectory()) pending.push({ path: `${path === '/' ? '' : path}/${entry.name}`, directory: `${directory === '/' ? '' : directory}/${entry.name}` });
    }
  }
  return paths;
}

/** Whether the unified hierarchy mounted at `mount` offers `controller` (its root's cgroup.controllers). */
export function offersController(mount: CgroupMount, controller: string): boolean {
  const root = cgroupDirectory(mount, mount.root);
  const controllers = root === null ? null : readCgroupFile(root, 'cgroup.controllers');
  return controllers !== null && controllers.split(/\s+/).includes(controller);
}

/**
 * A single-value cgroup file: bytes or a count; null = no limit (`max` in v2, or a v1 limit no
 * machine can reach: v1 prints its "unlimited" as PAGE_COUNTER_MAX pages ≈ 2^63 bytes).
 * undefined for anything that is not a number, so a format change never reads as a limit or a zero.
 */
export function parseCgroupValue(text: string): number | null | undefined {
  const value = text.trim();
  if (value === 'max') return null;
  if (!/^\d+$/.test(value)) return undefined;
  const big = BigInt(value);
  return big > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(big);
}

/** Flat keyed file (`key value` per line), e.g. memory.stat. Non-numeric values are skipped. */
export function parseFlatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ');
    if (space <= 0) continue;
    const value = line.slice(space + 1).trim();
    if (/^\d+$/.test(value)) out.set(line.slice(0, space), Number(value));
  }
  return out;
}

/** One line of a nested keyed file: `DEV key=value key=value`; `max` values are null. Unknown keys are kept. */
export interface NestedKeyedEntry {
  device: string;
  values: Record<string, number | null>;
}

/** Nested keyed file (rdma.max, rdma.current). Malformed pairs are skipped, not guessed. */
export function parseNestedKeyed(text: string): NestedKeyedEntry[] {
  const out: NestedKeyedEntry[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === undefined || words[0] === '') continue;
    const values: Record<string, number | null> = {};
    for (const pair of words.slice(1)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const raw = pair.slice(eq + 1);
      if (raw === 'max') values[pair.slice(0, eq)] = null;
      else if (/^\d+$/.test(raw)) values[pair.slice(0, eq)] = Number(raw);
    }
    out.push({ device: words[0], values });
  }
  return out;
}

/** Reads a file of a cgroup directory: null when it (or the group) is gone; throws ProcUnreadableError when refused. */
export function readCgroupFile(directory: string, file: string): string | null {
  return readProcText(`${directory}/${file}`);
}

export type CgroupVersion = 1 | 2;

export interface CgroupMemory {
  version: CgroupVersion;
  /** memory.max / memory.limit_in_bytes; null = no limit, or unknown when the file is listed in missing/unreadable. */
  limitBytes: number | null;
  /** memory.current / memory.usage_in_bytes. */
  usageBytes: number | null;
  /**
   * memory.stat `unevictable` (v2, hierarchical) or `total_unevictable` (v1, hierarchical; `unevictable`
   * when the kernel prints no totals): mlocked pages and other pages reclaim must skip, charged here.
   */
  unevictableBytes: number | null;
  /** Every memory.stat counter. */
  stat: Map<string, number> | null;
  /** Files that were absent (the root cgroup has no memory.max) or vanished with the group. */
  missing: string[];
  /** Files the kernel refused, or whose content was not what the kernel documents. */
  unreadable: string[];
}

/** The limit and usage files of the memory controller in each version. */
export const MEMORY_FILES: Readonly<Record<CgroupVersion, { limit: string; usage: string }>> = {
  1: { limit: 'memory.limit_in_bytes', usage: 'memory.usage_in_bytes' },
  2: { limit: 'memory.max', usage: 'memory.current' },
};

/**
 * The memory controller's view of one cgroup directory. Each file is read on its own: a missing one
 * (the root cgroup has no memory.max; a removed group has none) is listed in `missing`, a refused or
 * malformed one in `unreadable`, and its value is null either way.
 */
export function readCgroupMemory(directory: string, version: CgroupVersion): CgroupMemory {
  const names = MEMORY_FILES[version];
  const missing: string[] = [];
  const unreadable: string[] = [];
  const text = (file: string): string | null => {
    try {
      const read = readCgroupFile(directory, file);
      if (read === null) missing.push(file);
      return read;
    } catch (err) {
      if (!(err instanceof ProcUnreadableError)) throw err;
      unreadable.push(file);
      return null;
    }
  };
  const value = (file: string): number | null | undefined => {
    const read = text(file);
    if (read === null) return undefined;
    const parsed = parseCgroupValue(read);
    if (parsed === undefined) unreadable.push(file);
    return parsed;
  };
  const limit = value(names.limit);
  const usage = value(names.usage);
  const statText = text('memory.stat');
  const stat = statText === null ? null : parseFlatKeyed(statText);
  const unevictable = stat === null ? undefined : version === 2 ? stat.get('unevictable') : stat.get('total_unevictable') ?? stat.get('unevictable');
  if (stat !== null && unevictable === undefined) unreadable.push('memory.stat');
  return {
    version,
    // No limit file at all is the root cgroup (v2 has no memory.max there): nothing limits it.
    limitBytes: limit ?? null,
    usageBytes: usage ?? null,
    unevictableBytes: unevictable ?? null,
    stat,
    missing,
    unreadable,
  };
}

export interface RdmaDeviceUsage {
  device: string;
  /** rdma.current's keys for the device (hca_handle, hca_object, and any a newer kernel adds). */
  current: Record<string, number | null>;
  /** rdma.max's keys for the device; null = max (no limit). A key missing from rdma.max is unlimited. */
  max: Record<string, number | null>;
}

/**
 * rdma.current and rdma.max of one cgroup, joined by device; null when the group has no rdma files
 * (no rdma controller, or the root cgroup, which has none).
 */
export function readCgroupRdma(directory: string): RdmaDeviceUsage[] | null {
  const currentText = readCgroupFile(directory, 'rdma.current');
  const maxText = readCgroupFile(directory, 'rdma.max');
  if (currentText === null && maxText === null) return null;
  return joinRdma(parseNestedKeyed(currentText ?? ''), parseNestedKeyed(maxText ?? ''));
}

export function joinRdma(current: readonly NestedKeyedEntry[], max: readonly NestedKeyedEntry[]): RdmaDeviceUsage[] {
  const devices = new Map<string, RdmaDeviceUsage>();
  for (const entry of current) devices.set(entry.device, { device: entry.device, current: { ...entry.values }, max: {} });
  for (const entry of max) {
    const usage = devices.get(entry.device) ?? { device: entry.device, current: {}, max: {} };
    usage.max = { ...entry.values };
    devices.set(entry.device, usage);
  }
  return [...devices.values()].sort((a, b) => a.device.localeCompare(b.device));
}
