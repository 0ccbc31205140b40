#!/usr/bin/env node
// In-guest probe for the lab suite: does verbs work in one process, through the built engine (dist/),
// and reads the process's own /proc files around it. Prints one JSON object on stdout.
//
//   node test/lab/probe.mjs readonly-file FILE BYTES
//     maps FILE PROT_READ + MAP_PRIVATE, reads every page, then /proc/self/pagemap; registers the
//     range with remote-read only (no local-write); pagemap again; then tries a local-write
//     registration of the same range and reports how it failed.
//   node test/lab/probe.mjs memlock BYTES [OK_BYTES]
//     registers BYTES of anonymous memory with the default access (expected to fail over
//     RLIMIT_MEMLOCK when run unprivileged), catches the error and reports its own VmPin afterwards;
//     then registers OK_BYTES (within the limit) and reports VmPin while held and after release.
//   node test/lab/probe.mjs hold-pd DEVICE
//     opens DEVICE and allocates a protection domain, registers no MR, prints {device, pinKb, lockKb}
//     and holds both until SIGTERM: rdma objects in use with nothing pinned.
//   node test/lab/probe.mjs refused-stays BYTES
//     registers BYTES of anonymous memory (expected to fail over RLIMIT_MEMLOCK when run
//     unprivileged), prints {pid, registered, errno} and stays until SIGTERM: a live process whose
//     registration a trace saw fail, for doctor PID.

import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

const dist = new URL('../../dist/', import.meta.url);
const { allocateBuffer } = await import(new URL('engine/buffer.js', dist).href);
const { register } = await import(new URL('engine/register.js', dist).href);
const { getDeviceList, openVerbsRegistration } = await import(new URL('engine/verbs/index.js', dist).href);
const { explainRegistrationFailure } = await import(new URL('engine/limits.js', dist).href);
const { view } = await import(new URL('ffi/libc.js', dist).href);

const PAGE = 4096;
const IBV_ACCESS_LOCAL_WRITE = 1;
const IBV_ACCESS_REMOTE_READ = 4;

function statusKb(field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : null;
}

/** /proc/self/pagemap entries of [addr, addr + length): bit 63 present, 61 file-page or shared-anon, 56 exclusive, 0-54 PFN. */
function pagemap(addr, length) {
  const pages = Math.ceil(length / PAGE);
  const buf = Buffer.alloc(pages * 8);
  const fd = openSync('/proc/self/pagemap', 'r');
  try {
    readSync(fd, buf, 0, buf.length, Number(addr / BigInt(PAGE)) * 8);
  } finally {
    closeSync(fd);
  }
  const out = [];
  for (let i = 0; i < pages; i++) {
    const e = buf.readBigUInt64LE(i * 8);
    out.push({
      present: ((e >> 63n) & 1n) === 1n,
      file: ((e >> 61n) & 1n) === 1n,
      exclusive: ((e >> 56n) & 1n) === 1n,
      pfn: Number(e & ((1n << 55n) - 1n)),
    });
  }
  return out;
}

function summary(entries) {
  return {
    pages: entries.length,
    present: entries.filter((e) => e.present).length,
    filePages: entries.filter((e) => e.present && e.file).length,
    anonPages: entries.filter((e) => e.present && !e.file).length,
    first: entries[0],
  };
}

function describeError(err) {
  return {
    name: err?.name ?? null,
    message: err?.message ?? String(err),
    exitCode: err?.exitCode ?? null,
    hints: err?.hints ?? [],
    call: err?.cause?.call ?? err?.call ?? null,
    errno: err?.cause?.errnoName ?? err?.errnoName ?? null,
  };
}

function readonlyFile(file, bytes) {
  const buffer = allocateBuffer({ length: bytes, backing: 'file-private', readOnly: true, file });
  try {
    // Fault every page in by reading it, so "before" shows the page-cache pages.
    const bytesView = view(buffer.addr, buffer.length);
    let sum = 0;
    for (let off = 0; off < buffer.length; off += PAGE) sum += bytesView[off];
    const before = pagemap(buffer.addr, buffer.length);
    const pinBefore = statusKb('VmPin');
    const result = { addr: `0x${buffer.addr.toString(16)}`, length: buffer.length, touchedSum: sum, pinBeforeKb: pinBefore };
    let reg = null;
    try {
      reg = openVerbsRegistration({ access: IBV_ACCESS_REMOTE_READ, buffer, forkInit: false });
      result.remoteRead = { ok: true, lkey: reg.lkey, rkey: reg.rkey, pinAfterKb: statusKb('VmPin') };
    } catch (err) {
      result.remoteRead = { ok: false, error: describeError(err) };
    }
    const after = pagemap(buffer.addr, buffer.length);
    result.before = summary(before);
    result.after = summary(after);
    result.pfnsChanged = before.filter((e, i) => e.present && after[i].present && e.pfn !== after[i].pfn).length;
    // Same content after the registration (a private copy holds the file's bytes).
    let sumAfter = 0;
    for (let off = 0; off < buffer.length; off += PAGE) sumAfter += bytesView[off];
    result.touchedSumAfter = sumAfter;
    try {
      const rw = openVerbsRegistration({ access: IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ, buffer, forkInit: false });
      result.localWrite = { ok: true, lkey: rw.lkey };
      rw.close();
    } catch (err) {
      result.localWrite = { ok: false, error: describeError(explainRegistrationFailure(err, 'verbs', buffer.length)), errno: err?.errnoName ?? null };
    }
    if (reg) reg.close();
    result.pinAfterCloseKb = statusKb('VmPin');
    return result;
  } finally {
    buffer.close();
  }
}

async function memlock(bytes, okBytes) {
  const result = { pinBeforeKb: statusKb('VmPin'), uid: process.getuid() };
  try {
    const set = await register({ length: bytes, backend: 'verbs', access: 7 });
    result.registered = true;
    result.pinWhileRegisteredKb = statusKb('VmPin');
    set.close();
  } catch (err) {
    result.registered = false;
    result.error = describeError(err);
  }
  result.pinAfterKb = statusKb('VmPin');
  if (okBytes > 0) {
    // A registration within the limit, in the same process: the failure above left nothing charged.
    const set = await register({ length: okBytes, backend: 'verbs', access: 7 });
    result.okPinKb = statusKb('VmPin');
    set.close();
    result.okPinAfterCloseKb = statusKb('VmPin');
  }
  return result;
}

/** A device context and a PD, no MR; released at SIGTERM. Its line is printed once both are held. */
function holdPd(name) {
  const list = getDeviceList();
  const device = list.find(name);
  if (!device) throw new Error(`no RDMA device ${name}`);
  const context = device.open();
  list.close();
  const pd = context.allocPd();
  process.once('SIGTERM', () => {
    pd.close();
    context.close();
    process.exit(0);
  });
  setInterval(() => {}, 1 << 30);
  return { device: name, pinKb: statusKb('VmPin'), lockKb: statusKb('VmLck') };
}

/** One registration of `bytes`, its outcome printed, then kept alive (SIGTERM ends it). */
async function refusedStays(bytes) {
  let errno = null;
  try {
    (await register({ length: bytes, backend: 'verbs', access: 7 })).close();
  } catch (err) {
    errno = err?.cause?.errnoName ?? err?.errnoName ?? String(err);
  }
  process.once('SIGTERM', () => process.exit(0));
  setInterval(() => {}, 1 << 30);
  return { pid: process.pid, registered: errno === null, errno };
}

const [command, ...args] = process.argv.slice(2);
let out;
if (command === 'readonly-file') out = readonlyFile(args[0], Number(args[1]));
else if (command === 'memlock') out = await memlock(Number(args[0]), Number(args[1] ?? 0));
else if (command === 'hold-pd') out = holdPd(args[0]);
else if (command === 'refused-stays') out = await refusedStays(Number(args[0]));
else {
  process.stderr.write(`usage: probe.mjs readonly-file FILE BYTES | memlock BYTES [OK_BYTES] | hold-pd DEVICE | refused-stays BYTES\n`);
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(out)}\n`);
