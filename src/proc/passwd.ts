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
