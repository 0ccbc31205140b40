// Writing all of a buffer: write(2) may write less than asked (a full file system writes what fits),
// so loop until every byte is written; a write that makes no progress is a failure, not a retry.

import { writeSync } from 'node:fs';

/** pwrite all of `bytes` at offset 0; throws ENOSPC when a write makes no progress. */
export function pwriteAll(fd: number, bytes: Uint8Array): void {
  writeFrom(fd, bytes, 0);
}

/** Write all of `bytes` at the file's offset (or its end, with O_APPEND); throws ENOSPC as pwriteAll does. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  writeFrom(fd, bytes, null);
}

function writeFrom(fd: number, bytes: Uint8Array, start: number | null): void {
  for (let done = 0; done < bytes.length;) {
    const wrote = writeSync(fd, bytes, done, bytes.length - done, start === null ? null : start + done);
    if (wrote <= 0) throw Object.assign(new Error(`ENOSPC: wrote ${done} of ${bytes.length} bytes`), { code: 'ENOSPC' });
    done += wrote;
  }
}
