// How rdmactl registers in a child process: the starter (starter.ts) runs the holder program
// (holderMain.ts → holder.ts) and they exchange JSON lines on its stdin and stdout, read back through
// the parsers here, so neither side casts or greps what it received.
//   request (stdin):  {"options":{…RegisterOptions…},"backendRequested","holdMillis"[,"oomScoreAdj"]}
//   answer (stdout):  {"ok":false,"error":{"kind","message","hints","exitCode","errno"}}   nothing held; the holder exits
//                     or, by how the holder was started:
//   --holder-token T  (detached, `reg --detach`) {"ok":true,"record":{…the held record…}}: registered,
//                     recorded, waiting for "ack" (keep it) or end of file (release); then it holds
//                     until SIGTERM/SIGINT or holdMillis.
//   --attached        (a child that lives as long as the pipe: `doctor --try`, scenario exit)
//                     {"ok":true,"registration":{…the registration's report…}}: registered, no record;
//                     it holds until the starter closes its stdin (or dies), then releases and exits 0.
//                     holdMillis must be null. It does not rename itself, so no scan takes it for a
//                     detached holder.

import type { RegisterOptions } from '../engine/register.js';
import { parseRegistrationSetReport, type RegistrationSetReport } from '../engine/report.js';
import { BACKENDS, BACKINGS, type BackendChoice } from '../engine/types.js';
import { parseFailure, type Failure } from '../lib/failure.js';
import { parseHeldRecord, type HeldRecord } from './store.js';

/** What the starter asks a holder to do: options it has validated, and for how long to hold. */
export interface HolderRequest {
  options: RegisterOptions;
  /** The --backend the user asked for (options.backend is what it resolved to). */
  backendRequested: BackendChoice;
  /** Detached: hold this long, or until signalled when null. Attached: null (it holds while its stdin is open). */
  holdMillis: number | null;
  /** Written to the holder's own /proc/self/oom_score_adj before it registers (1000: the OOM killer takes it first). */
  oomScoreAdj?: number;
}

/** The holder program's argument for an attached holder (a detached one gets HOLDER_TOKEN_FLAG and its token). */
export const HOLDER_ATTACHED_FLAG = '--attached';

/** A held record whose registration is known: what a holder answers with. */
export type HeldRecordWithRegistration = HeldRecord & { registration: RegistrationSetReport };

/** A detached holder's one line. */
export type HolderAnswer = { ok: true; record: HeldRecordWithRegistration } | { ok: false; error: Failure };

/** An attached holder's one line. */
export type AttachedAnswer = { ok: true; registration: RegistrationSetReport } | { ok: false; error: Failure };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const optionalBoolean = (value: unknown): boolean | null => (value === undefined ? false : typeof value === 'boolean' ? value : null);
const optionalString = (value: unknown): string | null | undefined => (value === undefined || value === null ? null : typeof value === 'string' ? value : undefined);

/** The request read back from its JSON line; null when it is not one (the engine checks the combinations). */
export function parseHolderRequest(value: unknown): HolderRequest | null {
  if (!isObject(value) || !isObject(value['options'])) return null;
  const o = value['options'];
  const { backendRequested, holdMillis, oomScoreAdj } = value;
  const booleans = {
    readOnly: optionalBoolean(o['readOnly']), onFault: optionalBoolean(o['onFault']), dontfork: optionalBoolean(o['dontfork']),
    wipeonfork: optionalBoolean(o['wipeonfork']), forkInit: optionalBoolean(o['forkInit']), overlap: optionalBoolean(o['overlap']),
  };
  const file = optionalString(o['file']);
  const device = optionalString(o['device']);
  const { length, backend, backing, access, count } = o;
  if (!Number.isSafeInteger(length) || (length as number) <= 0 || !Number.isSafeInteger(count) || (count as number) <= 0) return null;
  if (typeof backend !== 'string' || !(BACKENDS as readonly string[]).includes(backend)) return null;
  if (typeof backing !== 'string' || !(BACKINGS as readonly string[]).includes(backing)) return null;
  if (access !== undefined && !Number.isSafeInteger(access)) return null;
  if (file === undefined || device === undefined || Object.values(booleans).some((b) => b === null)) return null;
  if (typeof backendRequested !== 'string' || !['auto', ...BACKENDS].includes(backendRequested)) return null;
  if (holdMillis !== null && (!Number.isSafeInteger(holdMillis) || (holdMillis as number) < 0)) return null;
  if (oomScoreAdj !== undefined && (!Number.isSafeInteger(oomScoreAdj) || Math.abs(oomScoreAdj as number) > 1000)) return null;
  const options: RegisterOptions = {
    length: length as number, backend: backend as RegisterOptions['backend'], backing: backing as RegisterOptions['backing'], file, device,
    ...(access !== undefined ? { access: access as number } : {}), count: count as number,
    readOnly: booleans.readOnly!, onFault: booleans.onFault!, dontfork: booleans.dontfork!, wipeonfork: booleans.wipeonfork!, forkInit: booleans.forkInit!, overlap: booleans.overlap!,
  };
  return { options, backendRequested: backendRequested as BackendChoice, holdMillis: holdMillis as number | null, ...(oomScoreAdj !== undefined ? { oomScoreAdj: oomScoreAdj as number } : {}) };
}

/** A failure answer ({ok: false}) read back; null when the value is not one. */
function failedAnswer(value: Record<string, unknown>): { ok: false; error: Failure } | null {
  if (value['ok'] !== false) return null;
  const error = parseFailure(value['error']);
  return error === null ? null : { ok: false, error };
}

/** A detached holder's answer read back from its line; null when it is not one. */
export function parseHolderAnswer(value: unknown): HolderAnswer | null {
  if (!isObject(value)) return null;
  if (value['ok'] === true) {
    const record = parseHeldRecord(value['record']);
    return record !== null && record.registration !== null ? { ok: true, record: record as HeldRecordWithRegistration } : null;
  }
  return failedAnswer(value);
}

/** An attached holder's answer read back from its line; null when it is not one. */
export function parseAttachedAnswer(value: unknown): AttachedAnswer | null {
  if (!isObject(value)) return null;
  if (value['ok'] === true) {
    const registration = parseRegistrationSetReport(value['registration']);
    return registration === null ? null : { ok: true, registration };
  }
  return failedAnswer(value);
}
