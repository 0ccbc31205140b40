// Typed bindings to the libc calls rdmactl needs. Bindings only: no policy, no formatting.
// Every failing call throws SyscallError(call, errno); errno is read on the line after the call
// because any other native call in between (even an fs read) may overwrite it.
// Constants are the Linux generic values, identical on x86-64 and aarch64.

import { endianness } from 'node:os';
import koffi from 'koffi';
import { SyscallError } from '../lib/errno.js';

export type Pointer = bigint;

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_HUGETLB = 0x40000;
/** Map exactly at the address or fail with EEXIST (Linux ≥ 4.17; older kernels take it as a hint). */
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MAP_FAILED: Pointer = 0xffffffffffffffffn;

export const MADV_NORMAL = 0;
export const MADV_DONTFORK = 10;
export const MADV_DOFORK = 11;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_WIPEONFORK = 18;
export const MADV_KEEPONFORK = 19;

export const MLOCK_ONFAULT = 1;

export const RLIMIT_MEMLOCK = 8;
export const RLIM_INFINITY = 0xffffffffffffffffn;

export const MFD_CLOEXEC = 1;

export const SIGKILL = 9;
export const SIGTERM = 15;
export const SIGCHLD = 17;

export const WNOHANG = 1;

export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_RDMA = 20;
export const MSG_DONTWAIT = 0x40;


/**
 * A named struct, defined once per process: koffi keeps type names process-wide, and this file is
 * also loaded on the scanner's worker thread, where defining a name again would throw.
 */
function namedStruct(name: string, def: Record<string, string>): ReturnType<typeof koffi.type> {
  try {
    return koffi.struct(name, def);
  } catch (err) {
    if (!/duplicate type name/i.test(String(err))) throw err;
    return koffi.type(name);
  }
}

export const RLimitStruct = namedStruct('rdmactl_rlimit', { rlim_cur: 'uint64_t', rlim_max: 'uint64_t' });
export const IovecStruct = namedStruct('rdmactl_iovec', { iov_base: 'uintptr_t', iov_len: 'size_t' });
// struct passwd and struct group of glibc (<pwd.h>, <grp.h>). The strings point into the caller's
// buffer; gr_mem is left undecoded (members are read through getgrouplist instead).
const PasswdStruct = namedStruct('rdmactl_passwd', {
  pw_name: 'const char *', pw_passwd: 'const char *', pw_uid: 'uint32_t', pw_gid: 'uint32_t',
  pw_gecos: 'const char *', pw_dir: 'const char *', pw_shell: 'const char *',
});
const GroupStruct = namedStruct('rdmactl_group', { gr_name: 'const char *', gr_passwd: 'const char *', gr_gid: 'uint32_t', gr_mem: 'void *' });

interface Bindings {
  mmap: (addr: Pointer | null, len: number, prot: number, flags: number, fd: number, off: number) => Pointer;
  munmap: (addr: Pointer, len: number) => number;
  mprotect: (addr: Pointer, len: number, prot: number) => number;
  mlock: (addr: Pointer, len: number) => number;
  mlock2: (addr: Pointer, len: number, flags: number) => number;
  munlock: (addr: Pointer, len: number) => number;
  madvise: (addr: Pointer, len: number, advice: number) => number;
  prlimit: (pid: number, resource: number, newLimit: unknown, oldLimit: unknown) => number;
  memfd_create: (name: string, flags: number) => number;
  process_vm_readv: (pid: number, local: unknown, liovcnt: number, remote: unknown, riovcnt: number, flags: number) => number;
  process_vm_writev: (pid: number, local: unknown, liovcnt: number, remote: unknown, riovcnt: number, flags: number) => number;
  clone: (fn: Pointer, stack: Pointer, flags: number, arg: Pointer | null) => number;
  waitpid: (pid: number, status: number[], options: number) => number;
  kill: (pid: number, sig: number) => number;
  dup2: (oldfd: number, newfd: number) => number;
  getpid: () => number;
  getuid: () => number;
  geteuid: () => number;
  syscall3: (nr: number, a: number, b: Pointer | null, c: number) => number;
  prctl: (option: number, ...args: unknown[]) => number;
  pthread_sigmask: (how: number, set: Buffer | null, old: Buffer | null) => number;
  pauseAddress: Pointer;
  fallocate: (fd: number, mode: number, offset: number, length: number) => number;
  flock: (fd: number, operation: number) => number;
  getpwuid_r: (uid: number, pwd: Record<string, unknown>, buf: Buffer, len: number, result: unknown[]) => number;
  getpwnam_r: (name: string, pwd: Record<string, unknown>, buf: Buffer, len: number, result: unknown[]) => number;
  getgrgid_r: (gid: number, grp: Record<string, unknown>, buf: Buffer, len: number, result: unknown[]) => number;
  getgrnam_r: (name: string, grp: Record<string, unknown>, buf: Buffer, len: number, result: unknown[]) => number;
  getgrouplist: (user: string, group: number, groups: Uint32Array, ngroups: number[]) => number;
  socket: (domain: number, type: number, protocol: number) => number;
  send: (fd: number, buf: Buffer, len: number, flags: number) => number;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
  close: (fd: number) => number;
}

let bindings: Bindings | undefined;

// Loaded on first use so that commands which never touch native memory pay nothing.
function lib(): Bindings {
  if (bindings) return bindings;
  const libc = koffi.load('libc.so.6');
  const rlimPtr = koffi.pointer(RLimitStruct);
  const iovPtr = koffi.pointer(IovecStruct);
  bindings = {
    mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
    munmap: libc.func('int munmap(void *addr, size_t len)'),
    mprotect: libc.func('int mprotect(void *addr, size_t len, int prot)'),
    mlock: libc.func('int mlock(void *addr, size_t len)'),
    mlock2: libc.func('int mlock2(void *addr, size_t len, unsigned int flags)'),
    munlock: libc.func('int munlock(void *addr, size_t len)'),
    madvise: libc.func('int madvise(void *addr, size_t len, int advice)'),
    prlimit: libc.func('prlimit', 'int', ['int', 'int', rlimPtr, koffi.out(rlimPtr)]),
    memfd_create: libc.func('int memfd_create(const char *name, unsigned int flags)'),
    process_vm_readv: libc.func('process_vm_readv', 'long', ['int', iovPtr, 'unsigned long', iovPtr, 'unsigned long', 'unsigned long']),
    process_vm_writev: libc.func('process_vm_writev', 'long', ['int', iovPtr, 'unsigned long', iovPtr, 'unsigned long', 'unsigned long']),
    // glibc's clone(fn, stack, flags, arg, ...): the child runs fn(arg) on `stack` and exits with its result.
    clone: libc.func('int clone(void *fn, void *stack, int flags, void *arg, ...)'),
    waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)'),
    kill: libc.func('int kill(int pid, int sig)'),
    dup2: libc.func('int dup2(int oldfd, int newfd)'),
    getpid: libc.func('int getpid()'),
    getuid: libc.func('unsigned int getuid()'),
    geteuid: libc.func('unsigned int geteuid()'),
    syscall3: libc.func('long syscall(long nr, ...)') as unknown as Bindings['syscall3'],
    prctl: libc.func('int prctl(int option, ...)') as Bindings['prctl'],
    pthread_sigmask: libc.func('int pthread_sigmask(int how, void *set, void *old)'),
    pauseAddress: libc.symbol('pause', 'void') as Pointer,
    fallocate: libc.func('int fallocate(int fd, int mode, long offset, long len)'),
    flock: libc.func('int flock(int fd, int operation)'),
    getpwuid_r: libc.func('int getpwuid_r(uint32_t uid, _Out_ rdmactl_passwd *pwd, void *buf, size_t len, _Out_ void **result)'),
    getpwnam_r: libc.func('int getpwnam_r(const char *name, _Out_ rdmactl_passwd *pwd, void *buf, size_t len, _Out_ void **result)'),
    getgrgid_r: libc.func('int getgrgid_r(uint32_t gid, _Out_ rdmactl_group *grp, void *buf, size_t len, _Out_ void **result)'),
    getgrnam_r: libc.func('int getgrnam_r(const char *name, _Out_ rdmactl_group *grp, void *buf, size_t len, _Out_ void **result)'),
    getgrouplist: libc.func('int getgrouplist(const char *user, uint32_t group, _Out_ uint32_t *groups, _Inout_ int *ngroups)'),
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    send: libc.func('long send(int fd, const void *buf, size_t len, int flags)'),
    recv: libc.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)'),
    close: libc.func('int close(int fd)'),
  };
  return bindings;
}

function check(call: string, result: number, detail?: string): number {
  if (result === -1) throw new SyscallError(call, koffi.errno(), detail);
  return result;
}

export function mmap(length: number, prot: number, flags: number, fd = -1, offset = 0): Pointer {
  const addr = lib().mmap(null, length, prot, flags, fd, offset);
  if (addr === MAP_FAILED) throw new SyscallError('mmap', koffi.errno());
  return addr;
}

/** mmap(2) with an address: a hint, or exact with MAP_FIXED_NOREPLACE. Returns where the kernel mapped. */
export function mmapAt(addr: Pointer, length: number, prot: number, flags: number, fd = -1, offset = 0): Pointer {
  const got = lib().mmap(addr, length, prot, flags, fd, offset);
  if (got === MAP_FAILED) throw new SyscallError('mmap', koffi.errno());
  return got;
}

export function munmap(addr: Pointer, length: number): void {
  check('munmap', lib().munmap(addr, length));
}

export function mprotect(addr: Pointer, length: number, prot: number): void {
  check('mprotect', lib().mprotect(addr, length, prot));
}

export function mlock(addr: Pointer, length: number): void {
  check('mlock', lib().mlock(addr, length));
}

export function mlock2(addr: Pointer, length: number, flags: number): void {
  check('mlock2', lib().mlock2(addr, length, flags));
}

export function munlock(addr: Pointer, length: number): void {
  check('munlock', lib().munlock(addr, length));
}

export function madvise(addr: Pointer, length: number, advice: number): void {
  check('madvise', lib().madvise(addr, length, advice));
}

export interface RLimit {
  /** Soft limit in bytes, or null for RLIM_INFINITY. */
  soft: number | null;
  /** Hard limit in bytes, or null for RLIM_INFINITY. */
  hard: number | null;
}

// koffi returns uint64 as number when it fits and BigInt otherwise: normalise to number | null.
function fromRlim(value: number | bigint): number | null {
  if (typeof value === 'bigint') return value === RLIM_INFINITY ? null : Number(value);
  return value;
}

function toRlim(value: number | null): bigint {
  return value === null ? RLIM_INFINITY : BigInt(value);
}

/** prlimit(2): read (and optionally set) a resource limit of `pid` (0 = self). Returns the old limit. */
export function prlimit(pid: number, resource: number, newLimit?: RLimit): RLimit {
  const old: { rlim_cur: number | bigint; rlim_max: number | bigint } = { rlim_cur: 0, rlim_max: 0 };
  const next = newLimit ? { rlim_cur: toRlim(newLimit.soft), rlim_max: toRlim(newLimit.hard) } : null;
  check('prlimit', lib().prlimit(pid, resource, next, old));
  return { soft: fromRlim(old.rlim_cur), hard: fromRlim(old.rlim_max) };
}

export function getrlimit(resource: number): RLimit {
  return prlimit(0, resource);
}

export function setrlimit(resource: number, limit: RLimit): void {
  prlimit(0, resource, limit);
}

export function memfdCreate(name: string, flags = MFD_CLOEXEC): number {
  return check('memfd_create', lib().memfd_create(name, flags));
}

function vmTransfer(call: 'process_vm_readv' | 'process_vm_writev', pid: number, local: Pointer, remote: Pointer, length: number): number {
  const localIov = [{ iov_base: local, iov_len: length }];
  const remoteIov = [{ iov_base: remote, iov_len: length }];
  const result = lib()[call](pid, localIov, 1, remoteIov, 1, 0);
  return check(call, result);
}

/** Copy `length` bytes from `remote` in process `pid` to local native memory. Returns bytes copied. */
export function processVmRead(pid: number, local: Pointer, remote: Pointer, length: number): number {
  return vmTransfer('process_vm_readv', pid, local, remote, length);
}

/** Copy `length` bytes from local native memory into `remote` of process `pid`. Returns bytes copied. */
export function processVmWrite(pid: number, local: Pointer, remote: Pointer, length: number): number {
  return vmTransfer('process_vm_writev', pid, local, remote, length);
}

/**
 * Start a child that shares nothing with us (a fork) and only runs pause(): no JS can run in a forked
 * Node child (V8's heap is MADV_DONTFORK), so the child just sleeps and the parent observes it.
 * `stackTop` is the high end of a mapping the child uses as its stack (stacks grow down on every
 * architecture Linux runs Node on).
 */
export function clonePausedChild(stackTop: Pointer): number {
  const b = lib();
  return check('clone', b.clone(b.pauseAddress, stackTop, SIGCHLD, null));
}

export interface WaitResult {
  pid: number;
  /** Exit status when the child exited, else null. */
  exitCode: number | null;
  /** Terminating signal when the child was killed, else null. */
  signal: number | null;
}

export function waitpid(pid: number, options = 0): WaitResult | null {
  const status = [0];
  const result = check('waitpid', lib().waitpid(pid, status, options));
  if (result === 0) return null; // WNOHANG and still running
  const raw = status[0] ?? 0;
  const termSignal = raw & 0x7f;
  return termSignal === 0
    ? { pid: result, exitCode: (raw >> 8) & 0xff, signal: null }
    : { pid: result, exitCode: null, signal: termSignal };
}

export function kill(pid: number, signal: number): void {
  check('kill', lib().kill(pid, signal));
}

export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', lib().socket(domain, type, protocol));
}

/** send(2) of the whole buffer; returns the bytes sent. */
export function send(fd: number, buf: Buffer, flags = 0): number {
  return check('send', lib().send(fd, buf, buf.length, flags));
}

/** recv(2) into buf; returns the bytes received. */
export function recv(fd: number, buf: Buffer, flags = 0): number {
  return check('recv', lib().recv(fd, buf, buf.length, flags));
}

export function close(fd: number): void {
  check('close', lib().close(fd));
}

export function dup2(oldfd: number, newfd: number): void {
  check('dup2', lib().dup2(oldfd, newfd));
}

export function getpid(): number {
  return lib().getpid();
}

export function getuid(): number {
  return lib().getuid();
}

export function geteuid(): number {
  return lib().geteuid();
}

/** Raw syscall with up to six integer/pointer arguments (a Buffer is passed as its address); throws on -1. */
export function syscall(call: string, nr: number, ...args: Array<number | Pointer | Buffer | null>): number {
  const typed: unknown[] = [];
  for (const arg of args) typed.push(typeof arg === 'number' ? 'long' : 'void *', arg);
  const result = (lib().syscall3 as unknown as (...a: unknown[]) => number)(nr, ...typed);
  return check(call, result);
}

/** A zero-copy view of native memory. Never touch it after the mapping is gone (SIGSEGV, not an exception). */
export function view(addr: Pointer, length: number): Uint8Array {
  return new Uint8Array(koffi.view(addr, length));
}

/** Address of a Node Buffer's bytes (valid while the Buffer is alive and not moved). */
export function addressOf(buffer: Buffer): Pointer {
  return koffi.address(buffer);
}

// --- prctl(2) -------------------------------------------------------------------------------------
// PR_SET_CHILD_SUBREAPER makes this process adopt orphaned descendants (e.g. detached holders whose
// starter exited) instead of PID 1, so it can reap them with waitpid.

export const PR_SET_PDEATHSIG = 1;
export const PR_SET_NAME = 15;
export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_GET_CHILD_SUBREAPER = 37;

/** prctl(option, arg2, 0, 0, 0) with unsigned long arguments; throws SyscallError on -1. */
export function prctl(option: number, arg2: number | bigint = 0): number {
  const ul = 'unsigned long';
  return check('prctl', lib().prctl(option, ul, arg2, ul, 0, ul, 0, ul, 0));
}

/** Sets the calling thread's comm (at most 15 bytes; the main thread's is the process's Name). */
export function setThreadName(name: string): void {
  const bytes = Buffer.from(`${name}\0`, 'utf8');
  prctl(PR_SET_NAME, addressOf(bytes));
}

// --- pthread_sigmask(3) ---------------------------------------------------------------------------
// sigset_t is 1024 bits in glibc on every Linux architecture; SIG_BLOCK/SIG_SETMASK are the generic values.

export const SIGSET_BYTES = 128;
export const SIG_BLOCK = 0;
export const SIG_SETMASK = 2;

/** pthread_sigmask(how, set, old); it returns the error number instead of setting errno. */
export function pthreadSigmask(how: number, set: Buffer | null, old: Buffer | null): void {
  const rc = lib().pthread_sigmask(how, set, old);
  if (rc !== 0) throw new SyscallError('pthread_sigmask', rc);
}

// --- flock(2) -------------------------------------------------------------------------------------
// An advisory lock on an open file; the kernel drops it when the last fd of that open file is closed,
// so a lock holder that dies (SIGKILL included) never leaves it behind.

const LOCK_EX = 2;
const LOCK_NB = 4;

/** flock(fd, LOCK_EX | LOCK_NB): true when locked, false when another open file holds it (EWOULDBLOCK). */
export function tryLockExclusive(fd: number): boolean {
  if (lib().flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const errno = koffi.errno();
  if (errno === 11) return false; // EWOULDBLOCK (EAGAIN)
  throw new SyscallError('flock', errno);
}

// --- pidfd_open(2), pidfd_send_signal(2) ----------------------------------------------------------
// A pidfd names one process for as long as it is held, so a signal sent through it can never reach a
// process that reused the pid. Same syscall numbers on every architecture (added in the unified table).

const SYS_PIDFD_SEND_SIGNAL = 424;
const SYS_PIDFD_OPEN = 434;

export function pidfdOpen(pid: number): number {
  return syscall('pidfd_open', SYS_PIDFD_OPEN, pid, 0);
}

export function pidfdSendSignal(pidfd: number, signal: number): void {
  syscall('pidfd_send_signal', SYS_PIDFD_SEND_SIGNAL, pidfd, signal, null, 0);
}

// --- move_pages(2) --------------------------------------------------------------------------------
// Not in glibc (libnuma wraps it), so through syscall(); the number differs per architecture.
// With `nodes` null it only reports where each page is; with nodes it asks to move each page there.
// Either way `status` gets, per page, its node or a negative errno (-EFAULT, -ENOENT not present,
// -EBUSY, -EACCES mapped by several processes, -ENOMEM target full). The return value is the number
// of pages the kernel failed to move (Linux ≥ 4.17; 0 before). A page whose migration failed may still
// show the target node in `status` (the kernel stores it before migrating): ask again to know.

export const MPOL_MF_MOVE = 1 << 1;
export const MPOL_MF_MOVE_ALL = 1 << 2;

const SYS_MOVE_PAGES: Partial<Record<string, number>> = { x64: 279, arm64: 239 };

export interface MovePagesResult {
  /** Per page: its node (≥ 0) or −errno. */
  status: number[];
  /** Pages the kernel could not move (0 when only asked where pages are). */
  notMoved: number;
}

/**
 * move_pages(pid, count, pages, nodes, status, flags). `pid` 0 is this process. `nodes` null: query only.
 * Throws SyscallError (ENOSYS on a kernel without NUMA/migration, ENODEV for a node without memory, …).
 */
export function movePages(pid: number, pages: readonly Pointer[], nodes: readonly number[] | null, flags = MPOL_MF_MOVE): MovePagesResult {
  const nr = SYS_MOVE_PAGES[process.arch];
  if (nr === undefined) throw new SyscallError('move_pages', 38, `no syscall number known for ${process.arch}`);
  if (nodes !== null && nodes.length !== pages.length) throw new RangeError(`move_pages: ${pages.length} pages but ${nodes.length} nodes`);
  const count = pages.length;
  if (count === 0) return { status: [], notMoved: 0 };
  const pageArray = Buffer.alloc(count * 8);
  pages.forEach((p, i) => pageArray.writeBigUInt64LE(p, i * 8));
  const nodeArray = nodes === null ? null : Buffer.alloc(count * 4);
  nodes?.forEach((n, i) => nodeArray!.writeInt32LE(n, i * 4));
  const statusArray = Buffer.alloc(count * 4);
  const notMoved = syscall('move_pages', nr, pid, count, addressOf(pageArray), nodeArray === null ? null : addressOf(nodeArray), addressOf(statusArray), nodes === null ? 0 : flags);
  const status: number[] = [];
  for (let i = 0; i < count; i++) status.push(statusArray.readInt32LE(i * 4));
  return { status, notMoved };
}

// --- mbind(2) -------------------------------------------------------------------------------------
// A memory policy for a range. MPOL_LOCAL (allocate on the local node, like the default) set explicitly
// lacks the default policy's "migrate on fault" flag, so automatic NUMA balancing leaves the range alone.

export const MPOL_DEFAULT = 0;
export const MPOL_LOCAL = 4;

const SYS_MBIND: Partial<Record<string, number>> = { x64: 237, arm64: 235 };

/** mbind(addr, len, mode, NULL, 0, flags): a policy that needs no node mask (MPOL_DEFAULT, MPOL_LOCAL). */
export function mbindLocal(addr: Pointer, length: number, mode = MPOL_LOCAL, flags = 0): void {
  const nr = SYS_MBIND[process.arch];
  if (nr === undefined) throw new SyscallError('mbind', 38, `no syscall number known for ${process.arch}`);
  syscall('mbind', nr, addr, length, mode, null, 0, flags);
}

// --- fallocate(2) ---------------------------------------------------------------------------------
// FALLOC_FL_PUNCH_HOLE (always with FALLOC_FL_KEEP_SIZE) frees a range of a file's pages without
// changing its size: what the truncate scenario does to a file whose pages a device holds.

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;

/** fallocate(fd, mode, offset, length); throws SyscallError on -1. */
export function fallocate(fd: number, mode: number, offset: number, length: number): void {
  check('fallocate', lib().fallocate(fd, mode, offset, length));
}

// --- openat2(2) -----------------------------------------------------------------------------------
// Opens a path resolved the way the kernel would inside a chroot at dirfd (RESOLVE_IN_ROOT: absolute
// symlinks and ".." stay below it), which open(2) cannot do. Same number on every architecture.
// O_PATH has the same value on x86-64 and arm64 (and the generic table); Node does not export it.

const SYS_OPENAT2 = 437;
export const AT_FDCWD = -100;
export const O_PATH = 0o10000000;
export const O_CLOEXEC = 0o2000000;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_IN_ROOT = 0x10;

/** openat2(dirfd, path, { flags, mode: 0, resolve }); returns the fd; throws SyscallError. */
export function openat2(dirfd: number, path: string, flags: number, resolve: number): number {
  const how = Buffer.alloc(24);
  const le = endianness() === 'LE';
  const put = (value: number, at: number): void => { if (le) how.writeBigUInt64LE(BigInt(value), at); else how.writeBigUInt64BE(BigInt(value), at); };
  put(flags, 0);
  put(resolve, 16);
  return syscall('openat2', SYS_OPENAT2, dirfd, Buffer.from(`${path}\0`, 'utf8'), how, how.length);
}

// ---- The user and group databases through NSS (files, LDAP, sssd, …, as nsswitch.conf says) ----
// The *_r calls return 0 with a NULL result for "no such entry", and an errno number on failure
// (ERANGE: the buffer is too small); both are handed back as they are, for the caller to decide.

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

export interface GroupEntry {
  name: string;
  gid: number;
}

/** What a getpw*_r / getgr*_r call gave: an entry, none (error 0), or the error number it returned. */
export interface NssAnswer<T> {
  entry: T | null;
  error: number;
}

function passwdAnswer(rc: number, pwd: Record<string, unknown>, result: unknown[]): NssAnswer<PasswdEntry> {
  if (rc !== 0 || result[0] === null || result[0] === undefined) return { entry: null, error: rc };
  return { entry: { name: String(pwd['pw_name']), uid: Number(pwd['pw_uid']), gid: Number(pwd['pw_gid']) }, error: 0 };
}

function groupAnswer(rc: number, grp: Record<string, unknown>, result: unknown[]): NssAnswer<GroupEntry> {
  if (rc !== 0 || result[0] === null || result[0] === undefined) return { entry: null, error: rc };
  return { entry: { name: String(grp['gr_name']), gid: Number(grp['gr_gid']) }, error: 0 };
}

/** getpwuid_r(3) with a scratch buffer of `bufferBytes`. */
export function getpwuidR(uid: number, bufferBytes: number): NssAnswer<PasswdEntry> {
  const pwd = {};
  const result: unknown[] = [null];
  const rc = lib().getpwuid_r(uid, pwd, Buffer.alloc(bufferBytes), bufferBytes, result);
  return passwdAnswer(rc, pwd, result);
}

/** getpwnam_r(3) with a scratch buffer of `bufferBytes`. */
export function getpwnamR(name: string, bufferBytes: number): NssAnswer<PasswdEntry> {
  const pwd = {};
  const result: unknown[] = [null];
  const rc = lib().getpwnam_r(name, pwd, Buffer.alloc(bufferBytes), bufferBytes, result);
  return passwdAnswer(rc, pwd, result);
}

/** getgrgid_r(3) with a scratch buffer of `bufferBytes`. */
export function getgrgidR(gid: number, bufferBytes: number): NssAnswer<GroupEntry> {
  const grp = {};
  const result: unknown[] = [null];
  const rc = lib().getgrgid_r(gid, grp, Buffer.alloc(bufferBytes), bufferBytes, result);
  return groupAnswer(rc, grp, result);
}

/** getgrnam_r(3) with a scratch buffer of `bufferBytes`. */
export function getgrnamR(name: string, bufferBytes: number): NssAnswer<GroupEntry> {
  const grp = {};
  const result: unknown[] = [null];
  const rc = lib().getgrnam_r(name, grp, Buffer.alloc(bufferBytes), bufferBytes, result);
  return groupAnswer(rc, grp, result);
}

/**
 * getgrouplist(3): the gids of `user` (with `primaryGid` among them) when at most `room` fit; else
 * null and `needed`, the count glibc says it would take.
 */
export function getgrouplist(user: string, primaryGid: number, room: number): { gids: number[] | null; needed: number } {
  const groups = new Uint32Array(room);
  const count = [room];
  const rc = lib().getgrouplist(user, primaryGid, groups, count);
  if (rc === -1) return { gids: null, needed: count[0]! };
  return { gids: [...groups.subarray(0, count[0]!)], needed: count[0]! };
}

// --- capget(2)/capset(2) --------------------------------------------------------------------------
// Through syscall() (libcap is not a dependency); the numbers differ per architecture. Capabilities
// are per thread: a capset from JavaScript changes the main thread only, which is the thread that
// makes every synchronous FFI call.

const SYS_CAPGET: Partial<Record<string, number>> = { x64: 125, arm64: 90 };
const SYS_CAPSET: Partial<Record<string, number>> = { x64: 126, arm64: 91 };
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** The calling thread's capability sets, capabilities 0–63 as bit masks. */
export interface ThreadCapabilities {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

function capNumber(table: Partial<Record<string, number>>, call: string): number {
  const nr = table[process.arch];
  if (nr === undefined) throw new SyscallError(call, 38, `no syscall number known for ${process.arch}`);
  return nr;
}

function capHeader(): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  header.writeInt32LE(0, 4); // 0: the calling thread
  return header;
}

export function capget(): ThreadCapabilities {
  const data = Buffer.alloc(24); // two { effective, permitted, inheritable } u32 triples: caps 0–31, 32–63
  syscall('capget', capNumber(SYS_CAPGET, 'capget'), capHeader(), data);
  const pair = (offset: number): bigint => BigInt(data.readUInt32LE(offset)) | (BigInt(data.readUInt32LE(offset + 12)) << 32n);
  return { effective: pair(0), permitted: pair(4), inheritable: pair(8) };
}

export function capset(caps: ThreadCapabilities): void {
  const data = Buffer.alloc(24);
  const write = (value: bigint, offset: number): void => {
    data.writeUInt32LE(Number(value & 0xffffffffn), offset);
    data.writeUInt32LE(Number((value >> 32n) & 0xffffffffn), offset + 12);
  };
  write(caps.effective, 0);
  write(caps.permitted, 4);
  write(caps.inheritable, 8);
  syscall('capset', capNumber(SYS_CAPSET, 'capset'), capHeader(), data);
}
