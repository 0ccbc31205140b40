// A unix socket to serve on (`--listen unix:PATH`): who may scrape is then decided by the socket's
// file mode and owner, not by who can reach a TCP port (any local user can reach 127.0.0.1).
//
// Made safely on a machine shared with other users, before the server binds it:
//   - the parent directory must exist, be a real directory (not a symlink), be owned by root or by
//     us, and not be writable by group or others unless it is sticky: nobody else may then put a
//     file, link or socket of their own at PATH, nor swap ours between our checks and our bind;
//   - something already at PATH is removed only when it is a socket owned by us that nothing
//     listens on (a stale socket of an exporter that was killed); anything else is refused;
//   - the server binds with a umask that leaves exactly the requested mode (default 0660), so the
//     socket is never more open than asked, not even for an instant;
//   - closing the server unlinks it (libuv does, for sockets it bound).

import { lstatSync, unlinkSync, type Stats } from 'node:fs';
import { connect } from 'node:net';
import { dirname, isAbsolute } from 'node:path';
import { RdmactlError, UsageError } from '../lib/errors.js';
import { errorCode } from '../proc/procfs.js';

/** The socket's mode unless --listen-mode says otherwise: owner and group may scrape. */
export const DEFAULT_SOCKET_MODE = 0o660;

/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** `--listen-mode`: octal permission bits, e.g. 0660 or 600. */
export function parseSocketMode(input: string): number {
  if (!/^0?[0-7]{3}$/.test(input)) throw new UsageError(`invalid --listen-mode '${input}': expected octal permission bits such as 0660 or 0600`);
  return parseInt(input, 8);
}

export function checkSocketPath(path: string): void {
  if (!isAbsolute(path)) throw new UsageError(`invalid --listen 'unix:${path}': the socket path must be absolute, e.g. unix:/run/rdmactl/exporter.sock`);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) throw new UsageError(`invalid --listen 'unix:${path}': a unix socket path has at most ${MAX_SOCKET_PATH_BYTES} bytes`);
}

function refuse(path: string, why: string, hint: string): RdmactlError {
  return new RdmactlError(`cannot listen on unix:${path}: ${why}`, 1, [hint]);
}

function ownedBySafeUser(st: Stats, euid: number): boolean {
  return st.uid === 0 || st.uid === euid;
}

/** Whether a server accepts connections on the socket at `path` (false: refused, a stale socket). */
function listening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Checks PATH's directory and clears a stale socket of ours; throws a one-line error for anything unsafe. */
export async function prepareUnixSocket(path: string, euid = process.geteuid?.() ?? 0): Promise<void> {
  checkSocketPath(path);
  const parent = dirname(path);
  let dir: Stats;
  try {
    dir = lstatSync(parent);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') throw refuse(path, `no directory ${parent}`, `create it first, writable only by its owner: install -d -m 0755 ${parent}`);
    throw refuse(path, `cannot check ${parent}: ${err instanceof Error ? err.message : String(err)}`, 'choose a socket path in a directory only root or this user can write');
  }
  if (!dir.isDirectory()) throw refuse(path, `${parent} is not a directory${dir.isSymbolicLink() ? ' (a symbolic link)' : ''}`, 'give the path of a real directory, not a link to one');
  if (!ownedBySafeUser(dir, euid)) throw refuse(path, `${parent} belongs to uid ${dir.uid}, who could replace the socket`, 'choose a directory owned by root or by this user');
  if ((dir.mode & 0o022) !== 0 && (dir.mode & 0o1000) === 0) {
    throw refuse(path, `${parent} is writable by ${(dir.mode & 0o002) !== 0 ? 'every user' : 'its group'} and not sticky, so others could replace the socket`, `chmod go-w ${parent}, or choose a directory only root or this user can write`);
  }
  let existing: Stats;
  try {
    existing = lstatSync(path);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return;
    throw refuse(path, err instanceof Error ? err.message : String(err), 'choose another socket path');
  }
  if (!existing.isSocket() || existing.uid !== euid) {
    const what = existing.isSocket() ? `a socket of uid ${existing.uid}` : existing.isSymbolicLink() ? 'a symbolic link' : existing.isDirectory() ? 'a directory' : 'a file';
    throw refuse(path, `${what} is already there`, 'remove it if it is not in use, or choose another socket path');
  }
  if (await listening(path)) throw refuse(path, 'another server is listening on it (is another exporter running?)', 'stop it, or choose another socket path');
  try {
    unlinkSync(path);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw refuse(path, `cannot remove the stale socket: ${err instanceof Error ? err.message : String(err)}`, 'remove it yourself');
  }
}
