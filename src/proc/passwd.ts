// uid → user name from /etc/passwd, read once per process. No NSS (LDAP, sssd) lookups: a uid that
// is not in the file shows as its number, which is also what ps does when NSS has no answer.

import { readFileSync } from 'node:fs';

/** Parses passwd text ("name:x:uid:gid:gecos:home:shell" lines). The first entry for a uid wins. */
export function parsePasswd(text: string): Map<number, string> {
  const users = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(':');
    const name = fields[0];
    const uid = Number(fields[2]);
    if (!name || fields[2] === undefined || fields[2] === '' || !Number.isInteger(uid)) continue;
    if (!users.has(uid)) users.set(uid, name);
  }
  return users;
}

let cachedUsers: Map<number, string> | null = null;

/** Reads /etc/passwd on first use; a missing/unreadable file gives an empty map (numbers shown). */
export function loadUsers(path = '/etc/passwd'): Map<number, string> {
  if (cachedUsers === null) {
    try {
      cachedUsers = parsePasswd(readFileSync(path, 'utf8'));
    } catch {
      cachedUsers = new Map();
    }
  }
  return cachedUsers;
}

/** User name for uid, or the uid as a string when unknown. */
export function userName(uid: number): string {
  return loadUsers().get(uid) ?? String(uid);
}

/** Linux uids are 32-bit; (uid_t)-1 = 4294967295 means "no uid" in the syscalls that take one. */
const MAX_UID = 4_294_967_294;

/**
 * A user name from /etc/passwd or a numeric uid to a uid; null for a name that is not in the file or a
 * number outside 0…4294967294. (A uid without a passwd entry is valid: processes can run as any uid.)
 */
export function resolveUser(text: string): number | null {
  if (/^\d+$/.test(text)) {
    const uid = Number(text);
    return uid <= MAX_UID ? uid : null;
  }
  for (const [uid, name] of loadUsers()) if (name === text) return uid;
  return null;
}
