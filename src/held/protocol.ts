// The protocol between `rdmactl reg --detach` (the starter, starter.ts) and the holder process
// (holder.ts): one request line on the holder's stdin, one answer line on its stdout, both JSON.
//   request: {"options":{…validated RegisterOptions…},"backendRequested","holdMillis"}
//   answer:  {"ok":true,"record":{…the held record…}}                      registered, recorded, waiting for "ack"
//            {"ok":false,"error":{"kind","message","hints","exitCode"}}     nothing held; the holder exits
// Then the starter writes "ack" (keep it) or closes the pipe (release). Each side reads the other's
// line back through the parsers here, so neither casts what it received.

import type { RegisterOptions } from '../engine/register.js';
import type { RegistrationSetReport } from '../engine/report.js';
import { BACKENDS, BACKINGS, type BackendChoice } from '../engine/types.js';
import { parseFailure, type Failure } from '../lib/failure.js';
import { parseHeldRecord, type HeldRecord } from './store.js';

/** What the starter asks a holder to do: options it has validated, and for how long to hold. */
export interface HolderRequest {
  options: RegisterOptions;
  /** The --backend the user asked for (options.backend is what it resolved to). */
  backendRequested: BackendChoice;
  /** Hold this long, or until signalled when null. */
  holdMillis: number | null;
}

/** A held record whose registration is known: what a holder answers with. */
export type HeldRecordWithRegistration = HeldRecord & { registration: RegistrationSetReport };

/** The holder's one line. */
export type HolderAnswer = { ok: true; record: HeldRecordWithRegistration } | { ok: false; error: Failure };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const optionalBoolean = (value: unknown): boolean | null => (value === undefined ? false : typeof value === 'boolean' ? value : null);
const optionalString = (value: unknown): string | null | undefined => (value === undefined || value === null ? null : typeof value === 'string' ? value : undefined);

/** The request read back from its JSON line; null when it is not one (the engine checks the combinations). */
export function parseHolderRequest(value: unknown): HolderRequest | null {
  if (!isObject(value) || !isObject(value['options'])) return null;
  const o = value['options'];
  const { backendRequested, holdMillis } = value;
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
  const options: RegisterOptions = {
    length: length as number, backend: backend as RegisterOptions['backend'], backing: backing as RegisterOptions['backing'], file, device,
    ...(access !== undefined ? { access: access as number } : {}), count: count as number,
    readOnly: booleans.readOnly!, onFault: booleans.onFault!, dontfork: booleans.dontfork!, wipeonfork: booleans.wipeonfork!, forkInit: booleans.forkInit!, overlap: booleans.overlap!,
  };
  return { options, backendRequested: backendRequested as BackendChoice, holdMillis: holdMillis as number | null };
}

/** The answer read back from the holder's line; null when it is not one. */
export function parseHolderAnswer(value: unknown): HolderAnswer | null {
  if (!isObject(value)) return null;
  if (value['ok'] === true) {
    const record = parseHeldRecord(value['record']);
    return record !== null && record.registration !== null ? { ok: true, record: record as HeldRecordWithRegistration } : null;
  }
  if (value['ok'] === false) {
    const error = parseFailure(value['error']);
    return error === null ? null : { ok: false, error };
  }
  return null;
}
