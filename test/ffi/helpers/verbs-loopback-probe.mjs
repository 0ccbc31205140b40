// Run inside the Soft-RoCE lab after a build: an MR, a loopback RC QP, RDMA WRITE a pattern in,
// RDMA READ it back, then a WRITE with a wrong rkey (must fail with a remote access error).
// Usage: node test/ffi/helpers/verbs-loopback-probe.mjs [bytes] [access]
const verbs = await import('../../../dist/engine/verbs/index.js');
const libc = await import('../../../dist/ffi/libc.js');
const len = Number(process.argv[2] ?? 16384);
const addr = libc.mmap(len, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS);
const buffer = { addr, length: len, backing: 'anon', readOnly: false, path: null, close() { libc.munmap(addr, len); }, [Symbol.dispose]() { this.close(); } };
const reg = verbs.openVerbsRegistration({ access: verbs.parseAccessFlags(process.argv[3] ?? 'local-write,remote-write,remote-read'), buffer, forkInit: false });
const t0 = performance.now();
const lb = verbs.LoopbackConnection.open(reg.pd, { bounceLength: len });
console.log('open', lb.describe(), Math.round(performance.now() - t0));
const pat = new Uint8Array(len).map((_, i) => (i * 7) & 0xff);
lb.writeBytes(pat, addr, reg.rkey);
const mine = libc.view(addr, len);
console.log('write ok', Buffer.from(mine).equals(Buffer.from(pat)));
mine.fill(0x5a);
const back = lb.readBytes(addr, reg.rkey, len);
console.log('read ok', back.every((b) => b === 0x5a), Math.round(performance.now() - t0));
try { lb.writeBytes(pat, addr, reg.rkey ^ 0x100); } catch (e) { console.log('bad rkey:', e.message); }
lb.close(); reg.close(); buffer.close();
