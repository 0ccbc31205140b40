// --backend auto, shared by reg and doctor: one rule for what "auto" means.

import type { BackendChoice, BackendName } from './types.js';

export interface ResolvedBackend {
  backend: BackendName;
  /** One line saying what auto chose and why; null when the backend was named. */
  explanation: string | null;
}

/** verbs when an RDMA device exists, else io_uring (the same long-term pin without a device). */
export async function resolveBackend(choice: BackendChoice): Promise<ResolvedBackend> {
  if (choice !== 'auto') return { backend: choice, explanation: null };
  let deviceNames: string[] = [];
  try {
    // Loaded only for auto: the verbs bindings are not needed to start reg or doctor.
    const { listDeviceNames } = await import('./verbs/index.js');
    deviceNames = listDeviceNames();
  } catch {
    deviceNames = []; // no libibverbs: same answer as no device
  }
  return deviceNames.length > 0
    ? { backend: 'verbs', explanation: `--backend auto: using verbs on ${deviceNames[0]}` }
    : { backend: 'uring', explanation: '--backend auto: no RDMA device, using uring (io_uring fixed buffers take the same long-term pin)' };
}
