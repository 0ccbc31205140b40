// Facts about this machine every scenario row shares, probed once per run.

import { pfnsVisible, probeEnvironment } from '../fork/environment.js';
import { pageSize } from '../proc/pagemap.js';
import { readMemoryNodes } from '../proc/numa.js';
import type { ScenarioEnvironment } from './types.js';

/** Probe verbs only when a row needs it (loading libibverbs costs time). */
export async function probeScenarioEnvironment(needVerbs: boolean): Promise<ScenarioEnvironment> {
  const verbs = await probeEnvironment(needVerbs ? [{ backend: 'verbs', protection: 'none', writer: 'none', backing: 'anon' }] : []);
  return {
    verbsUnavailable: needVerbs ? verbs.verbsUnavailable : 'not probed (no verbs row selected)',
    pfnsVisible: pfnsVisible(),
    memoryNodes: readMemoryNodes() ?? [0],
    pageSize: pageSize(),
  };
}
