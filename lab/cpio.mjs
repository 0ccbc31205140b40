// Minimal writer for the "newc" cpio format the kernel unpacks as an initramfs.
// Entries are written with uid/gid 0 and a fixed mtime so the archive is reproducible.

const pad4 = (n) => (4 - (n % 4)) % 4;

function header(ino, { mode, size = 0, nlink = 1, rdevMajor = 0, rdevMinor = 0 }, nameLen) {
  const fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, nameLen, 0];
  return '070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join('');
}

/**
 * @param {Array<{name: string, type: 'dir'|'file'|'symlink'|'chardev', mode?: number,
 *   data?: Buffer|string, target?: string, major?: number, minor?: number}>} entries
 * @returns {Buffer}
 */
export function newcArchive(entries) {
  const chunks = [];
  let ino = 1;
  const push = (name, meta, data) => {
    const nameBuf = Buffer.from(name + '\0');
    const head = Buffer.from(header(ino++, { ...meta, size: data ? data.length : 0 }, nameBuf.length));
    chunks.push(head, nameBuf, Buffer.alloc(pad4(head.length + nameBuf.length)));
    if (data && data.length) chunks.push(data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) {
    const name = e.name.replace(/^\/+/, '');
    switch (e.type) {
      case 'dir':
        push(name, { mode: 0o040000 | (e.mode ?? 0o755), nlink: 2 });
        break;
      case 'file': {
        const data = Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data ?? '');
        push(name, { mode: 0o100000 | (e.mode ?? 0o644) }, data);
        break;
      }
      case 'symlink':
        push(name, { mode: 0o120777 }, Buffer.from(e.target));
        break;
      case 'chardev':
        push(name, { mode: 0o020000 | (e.mode ?? 0o600), rdevMajor: e.major, rdevMinor: e.minor });
        break;
      default:
        throw new Error(`cpio: unknown entry type ${e.type}`);
    }
  }
  push('TRAILER!!!', { mode: 0, nlink: 1 });
  return Buffer.concat(chunks);
}
