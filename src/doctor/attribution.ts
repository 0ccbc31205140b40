// Checks that need to know which cgroup, systemd unit or container a process runs in: memlock.unit
// (LimitMEMLOCK= of the unit), container.runtime (runtime, id, IPC_LOCK in bounding vs effective
// set), cgroup.memory (memory.max vs usage + the request) and cgroup.rdma (rdma.max vs rdma.current).
//
// The cgroup files are read by src/proc/cgroup.ts, named by src/observe/cgroupNames.ts, and which
// limit applies is src/proc/cgroupLimits.ts's rule (as for stat --by); this file only decides. The seam is `attribution`: the reader the doctor's context is filled from.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { shellWord } from '../lib/escape.js';
import { raiseRdmaMaxCommand } from '../engine/limits.js';
import { formatBytes } from '../lib/size.js';
import { MEMORY_FILES, readCgroupMounts, readProcCgroup, type CgroupMembership, type CgroupMounts, type CgroupVersion } from '../proc/cgroup.js';
import { ProcUnreadableError } from '../proc/procfs.js';
import { hasCapabilityBit, parseCapMask } from '../proc/status.js';
import { nameCgroup, type ContainerRuntime } from '../observe/cgroupNames.js';
import {
  isNearLimit,
  memoryLimits,
  memoryMount,
  nearRdmaLimits,
  primaryPath,
  rdmaCgroupOf,
  rdmaHeadroom,
  rdmaLimits,
  tightestLimit,
  type MemoryLimit,
  type RdmaLimit,
} from '../proc/cgroupLimits.js';
import { limitText, requestChargeBytes } from './request.js';
import { CAP_IPC_LOCK, hasCapability } from './target.js';
import { finding, skipped, type DoctorContext, type Finding, type ProcessAttribution } from './types.js';

/** null: the process's cgroup cannot be read (`reason` says why). */
export type AttributionReader = (pid: number) => { attribution: ProcessAttribution | null; reason: string | null };

// Where the systemd unit is looked for first: systemd's own hierarchy names units exactly; the
// memory hierarchy is where a process may have been moved by hand or by a runtime.
function unitPaths(memberships: readonly CgroupMembership[], primary: string): string[] {
  const systemd = memberships.find((m) => m.controllers.includes('name=systemd'))?.path;
  const unified = memberships.find((m) => m.hierarchyId === 0)?.path;
  return [systemd, unified, primary].filter((p): p is string => p !== undefined);
}

export function readAttribution(pid: number, mounts: CgroupMounts = readCgroupMounts()): { attribution: ProcessAttribution | null; reason: string | null } {
  let memberships: CgroupMembership[] | null;
  try {
    memberships = readProcCgroup(pid);
  } catch (err) {
    if (err instanceof ProcUnreadableError) return { attribution: null, reason: `cannot read /proc/${pid}/cgroup (permission denied)` };
    throw err;
  }
  if (memberships === null) return { attribution: null, reason: `/proc/${pid}/cgroup is gone (the process exited)` };
  const primary = primaryPath(memberships, mounts);
  if (!primary) return { attribution: null, reason: `/proc/${pid}/cgroup names no cgroup hierarchy` };
  let unit: ProcessAttribution['systemdUnit'] = null;
  for (const path of unitPaths(memberships, primary.path)) {
    const named = nameCgroup(path).unit;
    // A service or scope beats a slice found on another hierarchy.
    if (named && (!unit || (/\.slice$/.test(unit.name) && !/\.slice$/.test(named.name)))) unit = named;
  }
  let container: ProcessAttribution['container'] = null;
  for (const path of [primary.path, ...unitPaths(memberships, primary.path)]) container ??= nameCgroup(path).container;
  return { attribution: { cgroupPath: primary.path, version: primary.version, systemdUnit: unit, container, memberships, mounts }, reason: null };
}

export const attribution: AttributionReader = (pid) => readAttribution(pid);

export const ATTRIBUTION_CHECKS = ['memlock.unit', 'container.runtime', 'cgroup.memory', 'cgroup.rdma'] as const;

// ---- fixes that name the environment -------------------------------------------------------------

function dropInFix(unit: string): string {
  const dir = shellWord(`/etc/systemd/system/${unit}.d`);
  return `mkdir -p ${dir} && printf '[Service]\\nLimitMEMLOCK=infinity\\n' > ${dir}/memlock.conf && systemctl daemon-reload && systemctl restart ${shellWord(unit)}`;
}

/** The runtime's own way to give its containers an unlimited memlock limit. */
export function containerMemlockFix(runtime: ContainerRuntime, id: string): string {
  const short = id.slice(0, 12);
  switch (runtime) {
    case 'docker':
      return `container ${short} (docker): recreate it with docker run --ulimit memlock=-1:-1 (or "default-ulimits": {"memlock": {"Name": "memlock", "Soft": -1, "Hard": -1}} in /etc/docker/daemon.json for every container)`;
    case 'podman':
      return `container ${short} (podman): recreate it with podman run --ulimit memlock=-1:-1 (or default_ulimits = ["memlock=-1:-1"] in containers.conf)`;
    case 'cri-o':
      return `container ${short} (cri-o): default_ulimits = ["memlock=-1:-1"] under [crio.runtime] in /etc/crio/crio.conf, restart crio, recreate the pod`;
    case 'containerd':
    case 'kubernetes':
      return `container ${short} (${runtime}): containers get containerd's own limit: ${dropInFix('containerd.service')}, then recreate the pod`;
  }
}

/** memlock fixes for the unit or container the target runs in; empty when it runs in neither. */
export function environmentMemlockFixes(ctx: DoctorContext): string[] {
  const found = ctx.attribution;
  if (!found) return [];
  if (found.container) return [containerMemlockFix(found.container.runtime, found.container.id)];
  const unit = found.systemdUnit?.name;
  if (unit && unit.endsWith('.service')) return [`systemd unit ${unit} (limits.conf does not apply to it): LimitMEMLOCK=infinity in a drop-in: ${dropInFix(unit)}`];
  if (unit && unit.endsWith('.scope')) return [`scope ${unit}: a scope has no LimitMEMLOCK=; raise the limit of the program that started it (or start it as a service with LimitMEMLOCK=infinity)`];
  return [];
}

// ---- memlock.unit --------------------------------------------------------------------------------

/** `systemctl show -p LimitMEMLOCK -p LimitMEMLOCKSoft UNIT` output → bytes (null = infinity); undefined when absent or unparsable. */
export function parseSystemdLimits(text: string): { hardBytes: number | null | undefined; softBytes: number | null | undefined } {
  const value = (key: string): number | null | undefined => {
    const raw = new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1]?.trim();
    if (raw === undefined || raw === '') return undefined;
    if (raw === 'infinity') return null;
    return /^\d+$/.test(raw) ? Number(raw) : undefined;
  };
  return { hardBytes: value('LimitMEMLOCK'), softBytes: value('LimitMEMLOCKSoft') };
}

/** Whether systemd is the running init (sd_booted(3): /run/systemd/system exists). */
export function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}

export function memlockUnit(ctx: DoctorContext, reason: string | null): Finding {
  const id = 'memlock.unit';
  const found = ctx.attribution;
  if (!found) return skipped(id, reason ?? 'the process\'s cgroup is unknown');
  const unit = found.systemdUnit;
  const evidence = { cgroup: found.cgroupPath, unit: unit?.name ?? null, unitCgroup: unit?.path ?? null, file: `/proc/${ctx.target.pid}/cgroup` };
  if (!unit) return finding(id, 'ok', `not in a systemd unit's cgroup (${found.cgroupPath}): LimitMEMLOCK= does not apply`, evidence);
  if (!unit.name.endsWith('.service')) {
    const kind = unit.name.endsWith('.scope') ? 'a scope (started outside systemd, which only tracks it)' : 'a slice (it only groups units)';
    return finding(id, 'ok', `in ${unit.name}, ${kind}: it has no LimitMEMLOCK=; the limit comes from the program that started the process`, evidence);
  }
  const userManager = /\/user@(\d+)\.service\//.exec(`${unit.path}/`);
  if (userManager && !unit.name.startsWith('user@')) {
    return skipped(id, `${unit.name} belongs to the user manager user@${userManager[1]}.service: ask it with systemctl --user show -p LimitMEMLOCK ${unit.name} as that user`, evidence);
  }
  if (!systemdRunning()) {
    return skipped(id, `systemd is not running here (no /run/systemd/system): cannot ask for LimitMEMLOCK of ${unit.name}`, evidence);
  }
  const shown = spawnSync('systemctl', ['show', '-p', 'LimitMEMLOCK', '-p', 'LimitMEMLOCKSoft', unit.name], { encoding: 'utf8', timeout: 10_000 });
  if (shown.error || shown.status !== 0) {
    return skipped(id, `systemctl show ${unit.name} failed: ${(shown.error?.message ?? shown.stderr.trim()) || `exit ${shown.status}`}`, evidence);
  }
  const limits = parseSystemdLimits(shown.stdout);
  if (limits.hardBytes === undefined) return skipped(id, `systemctl show ${unit.name} printed no LimitMEMLOCK=`, evidence);
  const unitSoft = limits.softBytes === undefined ? limits.hardBytes : limits.softBytes;
  const unitEvidence = { ...evidence, unitSoftBytes: unitSoft, unitHardBytes: limits.hardBytes, softBytes: ctx.target.softBytes, hardBytes: ctx.target.hardBytes };
  const unitText = `LimitMEMLOCK=${limitText(unitSoft)}${limits.hardBytes !== unitSoft ? `:${limitText(limits.hardBytes)}` : ''}`;
  if (unitSoft === null) return finding(id, 'ok', `${unit.name} has ${unitText}`, unitEvidence);
  if (hasCapability(ctx.target, CAP_IPC_LOCK)) return finding(id, 'ok', `${unit.name} has ${unitText}, not enforced: CAP_IPC_LOCK is effective`, unitEvidence);
  const same = ctx.target.softBytes === unitSoft;
  return finding(id, 'warn',
    `${unit.name} starts its processes with ${unitText}${same ? ' (this process has it)' : `; this process has ${limitText(ctx.target.softBytes)} (changed after start)`}: limits.conf does not apply to services`,
    unitEvidence, [`${dropInFix(unit.name)} (or systemctl edit ${shellWord(unit.name)})`]);
}

// ---- container.runtime ---------------------------------------------------------------------------

const hex = (mask: bigint | null): string | null => (mask === null ? null : `0x${mask.toString(16).padStart(16, '0')}`);

export function containerRuntime(ctx: DoctorContext, reason: string | null): Finding {
  const id = 'container.runtime';
  const found = ctx.attribution;
  if (!found) return skipped(id, reason ?? 'the process\'s cgroup is unknown');
  const container = found.container;
  if (!container) return finding(id, 'ok', `not in a container's cgroup (${found.cgroupPath})`, { cgroup: found.cgroupPath, runtime: null, containerId: null });
  const { target } = ctx;
  const capBnd = parseCapMask(target.statusText, 'CapBnd');
  const bounding = capBnd !== null && hasCapabilityBit(capBnd, CAP_IPC_LOCK);
  const effective = hasCapability(target, CAP_IPC_LOCK);
  const evidence = {
    runtime: container.runtime,
    containerId: container.id,
    cgroup: found.cgroupPath,
    containerCgroup: container.path,
    softBytes: target.softBytes,
    hardBytes: target.hardBytes,
    capBnd: hex(capBnd),
    capEff: hex(target.capEff),
    capIpcLockBounding: bounding,
    capIpcLockEffective: effective,
    file: `/proc/${target.pid}/status`,
  };
  const who = `${container.runtime} container ${container.id.slice(0, 12)}`;
  if (effective) return finding(id, 'ok', `${who}: CAP_IPC_LOCK is effective, RLIMIT_MEMLOCK (${limitText(target.softBytes)}) is not enforced`, evidence);
  if (target.softBytes === null) return finding(id, 'ok', `${who}: RLIMIT_MEMLOCK is unlimited`, evidence);
  const cap = bounding
    ? 'CAP_IPC_LOCK is in its bounding set but not effective (a non-root user in the container: capabilities granted with --cap-add are not effective for it)'
    : 'CAP_IPC_LOCK is not in its bounding set (the runtime did not grant it)';
  return finding(id, 'warn', `${who} got RLIMIT_MEMLOCK ${limitText(target.softBytes)} soft / ${limitText(target.hardBytes)} hard and ${cap}: pins above the limit fail`, evidence,
    [containerMemlockFix(container.runtime, container.id)]);
}

// ---- cgroup.memory -------------------------------------------------------------------------------

export function cgroupMemory(ctx: DoctorContext, reason: string | null): Finding {
  const id = 'cgroup.memory';
  const found = ctx.attribution;
  if (!found) return skipped(id, reason ?? 'the process\'s cgroup is unknown');
  const mount = memoryMount(found.mounts, found.version);
  if (!mount) return skipped(id, 'no memory cgroup controller is mounted here', { cgroup: found.cgroupPath });
  const version = found.version;
  const files = MEMORY_FILES[version];
  // A limit anywhere above the process caps it too (hierarchical accounting): the level with the least room wins.
  const walk = memoryLimits(mount, found.cgroupPath, version);
  if (walk.refused !== null) return skipped(id, `cannot read ${walk.refused}`, { cgroup: found.cgroupPath });
  const tightest = tightestLimit(walk.limits, (level) => level.headroomBytes);
  const requestBytes = ctx.request.sizeBytes === null ? null : requestChargeBytes(ctx);
  const base = { cgroup: found.cgroupPath, hierarchy: version, requestBytes };
  if (!tightest) return finding(id, 'ok', `no memory limit on ${found.cgroupPath} or its ancestors`, { ...base, limitCgroup: null, limitBytes: null, usageBytes: null });
  const evidence = {
    ...base,
    limitCgroup: tightest.path,
    limitBytes: tightest.limitBytes,
    usageBytes: tightest.usageBytes,
    reclaimableBytes: tightest.reclaimableBytes,
    unevictableBytes: tightest.unevictableBytes,
    headroomBytes: tightest.headroomBytes,
    file: `${tightest.directory}/${files.limit}`,
  };
  const where = `memory cgroup ${tightest.path}${tightest.path === found.cgroupPath ? '' : ` (an ancestor of ${found.cgroupPath})`}`;
  const state = `${formatBytes(tightest.usageBytes)} used of ${formatBytes(tightest.limitBytes)} (${files.limit}; ${formatBytes(tightest.reclaimableBytes)} of it page cache it can drop)`;
  const fixes = memoryFixes(found, tightest, version, requestBytes);
  if (requestBytes !== null && requestBytes > 0 && requestBytes > tightest.headroomBytes) {
    return finding(id, 'fail',
      `${formatBytes(requestBytes)} requested > ${formatBytes(Math.max(0, tightest.headroomBytes))} left in ${where}: ${state}; pinned and locked pages cannot be reclaimed, so the cgroup's OOM killer ends a process (SIGKILL)`,
      evidence, fixes);
  }
  if (isNearLimit(tightest.usedBytes, tightest.limitBytes)) {
    return finding(id, 'warn', `${where} is nearly full: ${state}; a pin beyond ${formatBytes(Math.max(0, tightest.headroomBytes))} starts its OOM killer`, evidence, fixes);
  }
  return finding(id, 'ok', `${where}: ${state}${requestBytes ? `; ${formatBytes(requestBytes)} requested fits` : ''}`, evidence);
}

function memoryFixes(found: ProcessAttribution, level: MemoryLimit, version: CgroupVersion, requestBytes: number | null): string[] {
  const needed = level.limitBytes + Math.max(0, (requestBytes ?? 0) - level.headroomBytes);
  const file = version === 1 ? 'memory.limit_in_bytes' : 'memory.max';
  const fixes = [`raise the limit: echo ${version === 1 ? needed : 'max'} > ${shellWord(`${level.directory}/${file}`)} (as root; it is reset when the group is recreated)`];
  const owner = nameCgroup(level.path);
  if (owner.container?.runtime === 'docker') fixes.push(`docker update --memory ${needed} --memory-swap -1 ${shellWord(owner.container.id.slice(0, 12))}`);
  else if (owner.pod) fixes.push(`raise resources.limits.memory of pod ${owner.pod.uid}`);
  else if (owner.unit && /\.(service|scope|slice)$/.test(owner.unit.name) && !found.container) fixes.push(`systemctl set-property ${shellWord(owner.unit.name)} ${version === 1 ? 'MemoryLimit' : 'MemoryMax'}=${needed}`);
  return fixes;
}

// ---- cgroup.rdma ---------------------------------------------------------------------------------

/**
 * What one registration allocates per rdma.max key: an MR (an hca_object), and for a fresh process
 * (the --try child, or this shell's next program) also a device context (hca_handle) and a PD.
 */
function neededObjects(ctx: DoctorContext): Record<string, number> {
  return ctx.target.self ? { hca_handle: 1, hca_object: 2 } : { hca_object: 1 };
}

export function cgroupRdma(ctx: DoctorContext, reason: string | null): Finding {
  const id = 'cgroup.rdma';
  const found = ctx.attribution;
  if (!found) return skipped(id, reason ?? 'the process\'s cgroup is unknown');
  const place = rdmaCgroupOf(found.memberships, found.mounts);
  if (!place) return skipped(id, 'no rdma cgroup controller here (the kernel lacks CONFIG_CGROUP_RDMA, or it is not mounted)', { cgroup: found.cgroupPath });
  const walk = rdmaLimits(place.mount, place.path);
  if (walk.refused !== null) return skipped(id, `cannot read ${walk.refused}`, { cgroup: place.path });
  const limits = walk.limits;
  const verbsRequest = ctx.request.backend === 'verbs' && ctx.request.sizeBytes !== null;
  const needed = neededObjects(ctx);
  const row = (l: RdmaLimit) => ({ cgroup: l.path, device: l.device, key: l.key, max: l.max, current: l.current, headroom: rdmaHeadroom(l), file: `${l.directory}/rdma.max` });
  const evidence = { cgroup: place.path, limits: limits.map(row), needed: verbsRequest ? needed : null };
  if (limits.length === 0) return finding(id, 'ok', `no rdma.max limit on ${place.path} or its ancestors`, evidence);
  const tight = tightestLimit(limits, rdmaHeadroom)!;
  const describe = (l: RdmaLimit): string => `${l.device} ${l.key} ${l.current}/${l.max} in rdma cgroup ${l.path}`;
  const fix = (l: RdmaLimit): string => `${raiseRdmaMaxCommand(l.device, l.key, l.directory)} (or a higher count)`;
  const evidenceOf = (l: RdmaLimit) => ({ ...evidence, limitCgroup: l.path, device: l.device, key: l.key, max: l.max, current: l.current, headroom: rdmaHeadroom(l), file: `${l.directory}/rdma.max` });
  const tightEvidence = evidenceOf(tight);
  if (verbsRequest) {
    const short = limits.find((l) => rdmaHeadroom(l) < (needed[l.key] ?? 0));
    if (short) {
      const need = needed[short.key]!;
      return finding(id, 'fail',
        `${describe(short)}: a registration${ctx.target.self ? ' by a new process' : ''} needs ${need} more ${short.key}${need === 1 ? '' : 's'}${ctx.target.self && short.key === 'hca_object' ? ' (a PD and the MR)' : ''}, ${short.max - short.current} left: the kernel refuses it (EAGAIN)`,
        evidenceOf(short), [fix(short)]);
    }
  }
  if (tight.current >= tight.max) return finding(id, 'warn', `${describe(tight)}: at the limit, new verbs objects (PDs, MRs, QPs) are refused (EAGAIN)`, tightEvidence, [fix(tight)]);
  // Each device and key is capped by its own tightest limit: objects nearly used up warn even when the handles have less room.
  const near = nearRdmaLimits(limits)[0];
  if (near) return finding(id, 'warn', `${describe(near)}: within 10 % of the limit`, evidenceOf(near), [fix(near)]);
  return finding(id, 'ok', `${describe(tight)} (the tightest of ${limits.length} limit${limits.length === 1 ? '' : 's'})`, tightEvidence);
}

export function attributionFindings(ctx: DoctorContext, reason: string | null = null): Finding[] {
  return [memlockUnit(ctx, reason), containerRuntime(ctx, reason), cgroupMemory(ctx, reason), cgroupRdma(ctx, reason)];
}
