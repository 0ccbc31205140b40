// io_uring registered (fixed) buffers, from /proc/PID/fdinfo/FD of an io_uring fd.
// IORING_REGISTER_BUFFERS pins with FOLL_LONGTERM, exactly like an RDMA MR, and shows in VmPin.
//
// The section looks like this on every kernel since 5.1:
//   UserBufs:\t2
//       0: 0x7fe0a9a00000/67108864        "%5u: 0x%llx/%u" — index, user address, length
//       1: <none>                          empty (sparse) slot, kernels 6.13+
// Variations handled:
//   - 5.13–6.12 have no "<none>": a sparse slot points at a dummy buffer whose address is -1, printed
//     as 0xffffffffffffffff with length 1 (ubuf_end 0 minus ubuf) or 0. We report that as empty.
//   - 5.10+ only list entries when the ring's mutex could be taken without waiting (mutex_trylock);
//     otherwise just the "UserBufs:\tN" line appears. Then `listed` is false.
//   - 6.x prints SQ/CQ state and "SQEs:"/"CQEs:" entries (also "%5u: ...") before UserFiles, so only
//     lines right after the UserBufs header are taken, up to the first line that is not an entry.

import { readdirSync, readlinkSync } from 'node:fs';
import { procPath, procTry, readProcText, type ProcPid } from './procfs.js';

export interface UringBuffer {
  index: number;
  address: bigint;
  lengthBytes: number;
}

export interface UringFdinfo {
  /** N from "UserBufs:\tN": the registered table size, including empty slots. */
  userBufsSlots: number;
  /** False when the kernel printed the count but not the entries (ring busy, see above). */
  listed: boolean;
  buffers: UringBuffer[];
  /** Indices of empty slots (<none> or the dummy -1 address). */
  emptySlots: number[];
  /** Sum of buffer lengths: what this ring pins (before dedup of compound pages). */
  registeredBytes: number;
  /** "UserFiles:\tN", 0 if absent. */
  userFiles: number;
  /** pid of the SQPOLL thread, or null (-1 / absent). */
  sqThreadPid: number | null;
  /** Ring sizes from SqMask/CqMask (mask + 1); null when the kernel does not print them. */
  sqEntries: number | null;
  cqEntries: number | null;
}

const DUMMY_ADDRESS = 0xffffffffffffffffn;

function headerValue(line: string, key: string): number | null {
  if (!line.startsWith(key)) return null;
  const n = Number.parseInt(line.slice(key.length).trim(), 10);
  return Number.isNaN(n) ? null : n;
}

/** Parses one fdinfo text. Returns null if it has no UserBufs line (not an io_uring fd). */
export function parseUringFdinfo(text: string): UringFdinfo | null {
  const lines = text.split('\n');
  let userBufsAt = -1;
  let userFiles = 0;
  let sqThreadPid: number | null = null;
  let sqEntries: number | null = null;
  let cqEntries: number | null = null;
  const ringEntries = (line: string, key: string): number | null => {
    if (!line.startsWith(key)) return null;
    const mask = Number(line.slice(key.length).trim());
    return Number.isInteger(mask) ? mask + 1 : null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    sqEntries ??= ringEntries(line, 'SqMask:');
    cqEntries ??= ringEntries(line, 'CqMask:');
    const files = headerValue(line, 'UserFiles:');
    if (files !== null) userFiles = files;
    const sq = headerValue(line, 'SqThread:');
    if (sq !== null) sqThreadPid = sq >= 0 ? sq : null;
    if (line.startsWith('UserBufs:')) {
      userBufsAt = i;
      break;
    }
  }
  if (userBufsAt < 0) return null;
  const userBufsSlots = headerValue(lines[userBufsAt]!, 'UserBufs:') ?? 0;

  const buffers: UringBuffer[] = [];
  const emptySlots: number[] = [];
  let registeredBytes = 0;
  let entries = 0;
  for (let i = userBufsAt + 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon < 0) break;
    const indexText = line.slice(0, colon).trim();
    if (indexText === '' || !/^\d+$/.test(indexText)) break;
    const index = Number(indexText);
    const value = line.slice(colon + 1).trim();
    entries++;
    if (value === '<none>') {
      emptySlots.push(index);
      continue;
    }
    const slash = value.indexOf('/');
    if (!value.startsWith('0x') || slash < 0) break;
    const address = BigInt(value.slice(0, slash));
    const lengthBytes = Number(value.slice(slash + 1));
    if (address === DUMMY_ADDRESS) {
      emptySlots.push(index);
      continue;
    }
    buffers.push({ index, address, lengthBytes });
    registeredBytes += lengthBytes;
  }
  return {
    userBufsSlots,
    listed: entries > 0 || userBufsSlots === 0,
    buffers,
    emptySlots,
    registeredBytes,
    userFiles,
    sqThreadPid,
    sqEntries,
    cqEntries,
  };
}

const IO_URING_LINK = 'anon_inode:[io_uring]';

/**
 * fds of pid that are io_uring instances (readlink of /proc/PID/fd/* is "anon_inode:[io_uring]").
 * null if the process is gone; throws ProcUnreadableError if its fd directory is not ours to read.
 * fds closed while we look are skipped.
 */
export function findIoUringFds(pid: ProcPid): number[] | null {
  const dir = procPath(pid, 'fd');
  const names = procTry(dir, () => readdirSync(dir));
  if (names === null) return null;
  const fds: number[] = [];
  for (const name of names) {
    const path = `${dir}/${name}`;
    const target = procTry(path, () => readlinkSync(path));
    if (target === IO_URING_LINK) fds.push(Number(name));
  }
  return fds.sort((a, b) => a - b);
}

export interface UringInstance {
  fd: number;
  fdinfo: UringFdinfo;
}

/** Reads /proc/PID/fdinfo/FD and parses it; null if the fd or process is gone or it is not io_uring. */
export function readUringFdinfo(pid: ProcPid, fd: number): UringFdinfo | null {
  const text = readProcText(procPath(pid, `fdinfo/${fd}`));
  return text === null ? null : parseUringFdinfo(text);
}

/**
 * Every io_uring instance of pid with its registered buffers. null if the process is gone; throws
 * ProcUnreadableError when its fds are not readable (another user's process, when not root).
 */
export function readUringInstances(pid: ProcPid): UringInstance[] | null {
  const fds = findIoUringFds(pid);
  if (fds === null) return null;
  const instances: UringInstance[] = [];
  for (const fd of fds) {
    const fdinfo = readUringFdinfo(pid, fd);
    if (fdinfo !== null) instances.push({ fd, fdinfo });
  }
  return instances;
}
