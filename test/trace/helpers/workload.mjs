// The traced program of test/trace/trace.test.ts (run after a build). It waits for a line on stdin,
// then registers and releases io_uring buffers and mlocks memory in a known order, timing each
// call, and prints one JSON line: its pid, ring fds and each call's result and wall time.
// Modes:
//   stay  ring A: 2 MiB + 1 MiB (one call), ring B: 512 KiB, unregister A, ring C: 64 MiB (refused
//         over RLIMIT_MEMLOCK when run without CAP_IPC_LOCK), mlock/munlock 256 KiB, mlock 1 MiB;
//         then waits (ring B and the 1 MiB lock stay) until killed.
//   update  ring E: REGISTER_BUFFERS2 of 2 empty (sparse) slots, then REGISTER_BUFFERS_UPDATE of slot
//         1 with 128 KiB, then again with 64 KiB; then waits until killed.
//   exit  ring D: 256 KiB, then exits half a second later without unregistering.
import { readFileSync } from 'node:fs';

const libc = await import('../../../dist/ffi/libc.js');
const uring = await import('../../../dist/ffi/io_uring.js');

const mode = process.argv[2] ?? 'stay';
const MiB = 1024 * 1024;
// iovec arrays stay referenced until exit: rdmactl reads them from this process after the call.
const keep = [];

function vmPinKb() {
  return Number(/^VmPin:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
}

function buffer(bytes) {
  return libc.mmap(bytes, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_POPULATE);
}

/** Time one call in µs; its errno name on failure. */
function timed(what, op) {
  const start = process.hrtime.bigint();
  let errno = null;
  try {
    op();
  } catch (err) {
    errno = err.errnoName ?? String(err);
  }
  return { what, errno, wallUs: Number(process.hrtime.bigint() - start) / 1000 };
}

function register(ring, sizes) {
  const iovecs = Buffer.alloc(16 * sizes.length);
  sizes.forEach((bytes, i) => {
    iovecs.writeBigUInt64LE(buffer(bytes), i * 16);
    iovecs.writeBigUInt64LE(BigInt(bytes), i * 16 + 8);
  });
  keep.push(iovecs);
  return timed(`register ${sizes.join('+')}`, () => libc.syscall('io_uring_register', uring.SYS_IO_URING_REGISTER, ring.fd, uring.IORING_REGISTER_BUFFERS, libc.addressOf(iovecs), sizes.length));
}

await new Promise((resolve) => process.stdin.once('data', resolve));
const calls = [];
const rings = {};
if (mode === 'exit') {
  const d = new uring.IoUring();
  rings.d = d.fd;
  calls.push(register(d, [256 * 1024]));
  console.log(JSON.stringify({ pid: process.pid, rings, calls }));
  // rdmactl reads the sizes from this process's memory when it handles the event (within its
  // 50 ms poll): a process gone sooner is reported with unknown sizes.
  setTimeout(() => process.exit(0), 500);
  await new Promise(() => undefined); // the exit above ends the program
}
if (mode === 'update') {
  const IORING_REGISTER_BUFFERS2 = 15;
  const IORING_REGISTER_BUFFERS_UPDATE = 16;
  const IORING_RSRC_REGISTER_SPARSE = 1;
  const e = new uring.IoUring();
  rings.e = e.fd;
  // struct io_uring_rsrc_register { u32 nr; u32 flags; u64 resv2; u64 data; u64 tags; }
  const reg = Buffer.alloc(32);
  reg.writeUInt32LE(2, 0);
  reg.writeUInt32LE(IORING_RSRC_REGISTER_SPARSE, 4);
  keep.push(reg);
  calls.push(timed('register2 sparse 2', () => libc.syscall('io_uring_register', uring.SYS_IO_URING_REGISTER, e.fd, IORING_REGISTER_BUFFERS2, libc.addressOf(reg), 32)));
  for (const bytes of [128 * 1024, 64 * 1024]) {
    const iovec = Buffer.alloc(16);
    iovec.writeBigUInt64LE(buffer(bytes), 0);
    iovec.writeBigUInt64LE(BigInt(bytes), 8);
    // struct io_uring_rsrc_update2 { u32 offset; u32 resv; u64 data; u64 tags; u32 nr; u32 resv2; }
    const update = Buffer.alloc(32);
    update.writeUInt32LE(1, 0);
    update.writeBigUInt64LE(libc.addressOf(iovec), 8);
    update.writeUInt32LE(1, 24);
    keep.push(iovec, update);
    calls.push(timed(`update slot 1 ${bytes}`, () => libc.syscall('io_uring_register', uring.SYS_IO_URING_REGISTER, e.fd, IORING_REGISTER_BUFFERS_UPDATE, libc.addressOf(update), 32)));
  }
  console.log(JSON.stringify({ pid: process.pid, rings, calls, vmPinKb: vmPinKb() }));
  setInterval(() => undefined, 1 << 30);
  await new Promise(() => undefined);
}
const a = new uring.IoUring();
const b = new uring.IoUring();
const c = new uring.IoUring();
Object.assign(rings, { a: a.fd, b: b.fd, c: c.fd });
calls.push(register(a, [2 * MiB, 1 * MiB]));
calls.push(register(b, [512 * 1024]));
calls.push(timed('unregister a', () => a.unregisterBuffers()));
calls.push(register(c, [64 * MiB]));
const locked = buffer(256 * 1024);
calls.push(timed('mlock 256K', () => libc.mlock(locked, 256 * 1024)));
calls.push(timed('munlock 256K', () => libc.munlock(locked, 256 * 1024)));
const kept = buffer(MiB);
calls.push(timed('mlock 1M', () => libc.mlock(kept, MiB)));
console.log(JSON.stringify({ pid: process.pid, rings, calls, vmPinKb: vmPinKb() }));
setInterval(() => undefined, 1 << 30);
