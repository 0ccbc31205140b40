// Run inside the Soft-RoCE lab (new kernel) after a build: RDMA WRITE/READ into an on-demand MR
// with different work-request sizes, offsets and path MTUs, printing per KiB what the process and the device see.
// Usage: node test/ffi/helpers/verbs-odp-probe.mjs [bytes]
const verbs = await import('../../../dist/engine/verbs/index.js');
const libc = await import('../../../dist/ffi/libc.js');
const len = Number(process.argv[2] ?? 16384);
const page = libc.pageSize();
const mtus = { active: 'active', max: 'max', 256: 1, 512: 2, 1024: 3, 2048: 4, 4096: 5 };
for (const [touch, chunk, mtu, at] of [[true, len, 'active', 0], [true, 512, 'active', 0], [true, 512, 'active', 1536], [false, len, 'max', 0], [true, len, 'max', 0], [true, 2048, 'max', 0], [true, 1024, 'max', 1024]]) {
  const addr = libc.mmap(len, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS);
  const buffer = { addr, length: len, backing: 'anon', readOnly: false, path: null, close() { libc.munmap(addr, len); }, [Symbol.dispose]() { this.close(); } };
  const mine = libc.view(addr, len);
  if (touch) mine.fill(1);
  const reg = verbs.openVerbsRegistration({ access: verbs.parseAccessFlags('local-write,remote-write,remote-read,on-demand'), buffer, forkInit: false });
  const lb = verbs.LoopbackConnection.open(reg.pd, { bounceLength: chunk, pathMtu: mtus[mtu] });
  const pattern = new Uint8Array(len).map((_, i) => 1 + ((i >> 10) & 0x7f));
  try {
    lb.writeBytes(pattern.subarray(at, at + chunk), addr + BigInt(at), reg.rkey);
    const kib = (u8) => { const out = []; for (let o = 0; o < len; o += 1024) out.push(u8[o] === u8[o + 1023] ? u8[o] : `${u8[o]}~${u8[o + 1023]}`); return out.join(','); };
    const dev = lb.readBytes(addr, reg.rkey, len);
    console.log(`touched=${touch} wr=${chunk} at ${at} (only that range written) mtu=${lb.mtu}\n  wrote     ${kib(pattern)}\n  process   ${kib(mine)}\n  device    ${kib(dev)}`);
  } catch (e) { console.log(`touched=${touch} wr=${chunk}: FAILED ${e.message}`); }
  lb.close(); reg.close(); buffer.close();
}
