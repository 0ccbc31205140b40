// file.longterm-pin: a registration of a shared file mapping (--backing file-shared) takes a
// long-term write pin of the file's page-cache pages, which kernels since 6.5 refuse (EFAULT) for
// file systems that need dirty tracking. The answer comes from a one-page probe of the running kernel
// on the file system the backing's file would live on ($TMPDIR), not from a version table.

import { tmpdir } from 'node:os';
import { probeLongtermFilePin, type FilePinProbe } from '../engine/filePin.js';
import { defaultAccessText, parseAccessFlags } from '../engine/verbs/access.js';
import {
  IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_MW_BIND, IBV_ACCESS_ON_DEMAND, IBV_ACCESS_REMOTE_ATOMIC, IBV_ACCESS_REMOTE_WRITE,
} from '../ffi/verbs/enums.js';
import { finding, skipped, type DoctorContext, type Finding } from './types.js';

const ID = 'file.longterm-pin';

/** ib_access_writable(): the access bits that make ib_umem_get pin with FOLL_WRITE. */
const WRITABLE_ACCESS = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_MW_BIND;

/** Why the request takes no long-term write pin (so the refusal cannot apply), or null when it does. */
function noWritePin(ctx: DoctorContext): string | null {
  const { backend } = ctx.request;
  if (backend === 'mlock') return 'mlock takes no long-term pin';
  if (backend !== 'verbs') return null;
  const access = ctx.request.access ?? parseAccessFlags(defaultAccessText(false));
  if ((access & IBV_ACCESS_ON_DEMAND) !== 0) return 'an on-demand (ODP) MR pins nothing';
  if ((access & WRITABLE_ACCESS) === 0) return 'a read-only MR (no local-write, remote-write, atomic or MW bind) pins without FOLL_WRITE';
  return null;
}

function evidenceOf(probe: FilePinProbe, kernelRelease: string): { [key: string]: string | null } {
  return { directory: probe.directory, filesystem: probe.filesystem, probe: probe.outcome, call: probe.call, errno: probe.errnoName, kernelRelease };
}

/** Findings for --backing file-shared (none for other backings: they map no shared file). */
export function filePinFindings(ctx: DoctorContext): Finding[] {
  if (ctx.request.backing !== 'file-shared') return [];
  const directory = tmpdir();
  const exempt = noWritePin(ctx);
  if (exempt !== null) return [finding(ID, 'ok', `${exempt}: the kernel's refusal of long-term write pins of shared file pages does not apply`, { directory, kernelRelease: ctx.kernelRelease })];
  const result = probeLongtermFilePin(directory);
  const evidence = evidenceOf(result, ctx.kernelRelease);
  const where = `${result.filesystem} (${result.directory}, $TMPDIR)`;
  if (result.outcome === 'unknown') {
    return [skipped(ID, `could not probe long-term pins of a shared file on ${where}: ${result.call} failed with ${result.errnoName}`, evidence)];
  }
  if (result.outcome === 'allowed') {
    return [finding(ID, 'ok', `kernel ${ctx.kernelRelease} allows long-term write pins of shared file pages on ${where} (a 1-page io_uring fixed buffer of a MAP_SHARED file there registered)`, evidence)];
  }
  if (result.errnoName === 'EOPNOTSUPP' && ctx.request.backend === 'verbs') {
    // io_uring's own rule (before 6.5 it took only anonymous, shmem and hugetlbfs buffers), not GUP's:
    // it says nothing about ib_umem_get, which pins through GUP alone.
    return [skipped(ID, `the io_uring probe on ${where} was refused by io_uring's own rule for file-backed buffers (EOPNOTSUPP), which does not apply to verbs MRs; kernel ${ctx.kernelRelease}'s GUP did not answer`, evidence)];
  }
  const why = result.errnoName === 'EOPNOTSUPP'
    ? 'io_uring itself takes only anonymous, shmem and hugetlbfs buffers on this kernel (its own check, before Linux 6.5; verbs MRs are not affected)'
    : 'Linux 6.5+, mm/gup.c: FOLL_LONGTERM|FOLL_WRITE on a file mapping that needs dirty tracking; shmem and hugetlbfs are exempt';
  const fixes = [
    '--backing memfd, anon or hugetlb: shmem, anonymous and hugetlb pages may be pinned long-term',
    `or keep the file on tmpfs (e.g. TMPDIR=/dev/shm), whose pages need no dirty tracking`,
    '--backing file-private: MAP_PRIVATE, the pin takes private copies (the file never sees what the device writes)',
    ...(ctx.request.backend === 'verbs' ? ['or an on-demand MR (--access …,on-demand) where the device has ODP (rdmactl devices)'] : []),
  ];
  return [finding(ID, ctx.request.backend === null ? 'warn' : 'fail',
    `kernel ${ctx.kernelRelease} refuses long-term write pins of shared file pages on ${where}: a 1-page io_uring fixed buffer of a MAP_SHARED file there got ${result.errnoName} (${why})`,
    evidence, fixes)];
}
