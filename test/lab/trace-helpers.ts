// Helpers for the lab tests of rdmactl trace: the pingpong GID, a server-then-client shell line,
// and the split of a tracefs `trace` line (record-tgid on) for tests that read tracefs themselves.
import { readFileSync } from 'node:fs';
import type { TraceLine } from '../../src/trace/types.js';
import { RXE_DEVICE } from './helpers.js';

/** A trace line with record-tgid: `COMM-TID (TGID) [CPU] FLAGS TIME: EVENT: PAYLOAD`. */
export function splitTraceLine(text: string): TraceLine | null {
  const m = /^\s*(.+)-(\d+)\s+\(\s*(\d+|-+)\)\s+\[(\d+)\]\s+\S+\s+(\d+\.\d+): (\w+): (.*)$/.exec(text);
  if (!m) return null;
  return { comm: m[1]!, tid: Number(m[2]), tgid: /^\d+$/.test(m[3]!) ? Number(m[3]) : null, cpu: Number(m[4]), time: Number(m[5]), event: m[6]!, payload: m[7]! };
}

/** The GID index of rxe0's IPv4-mapped RoCE v2 GID, for pingpong's -g (one definition, in programs.ts). */
export { ipv4GidIndex } from './programs.js';

/**
 * A shell line that starts a pingpong server, waits until it listens (a busy TCG guest can take
 * seconds), then runs the client; both bounded, so a client that missed the server cannot hang it.
 */
export function serverThenClient(pingpong: string, port: number): string {
  return `timeout 100 ${pingpong} >/dev/null 2>&1 & i=0; while ! ss -ltnH "sport = :${port}" | grep -q .; do i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.2; done; `
    + `timeout 60 ${pingpong} 127.0.0.1 >/dev/null 2>&1; wait`;
}
