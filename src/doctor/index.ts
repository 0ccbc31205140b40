// The doctor's runner: read the target once, run every check group, predict, optionally try.

import { release } from 'node:os';
import { pageSize } from '../proc/pagemap.js';
import { attribution, attributionFindings } from './attribution.js';
import { filePinFindings } from './filePin.js';
import { forkFindings } from './fork.js';
import { hugepageFindings } from './hugepages.js';
import { readRootConfig, type SkippedFile } from './limitsConf.js';
import { machineFindings } from './machine.js';
import { mapsCount } from './maps.js';
import { memlockLimit, memlockOrigin } from './memlock.js';
import { predict, tryFinding, tryRegistration, type Prediction, type TryResult } from './predict.js';
import { requestChargeBytes } from './request.js';
import { readTarget } from './target.js';
import { traceFailureFindings } from './traceFailures.js';
import { uringDisabled, uringUserCharge } from './uring.js';
import { verbsFindings } from './verbs.js';
import { skipped, type DoctorContext, type DoctorOptions, type Finding, type Target } from './types.js';

export interface DoctorReport {
  target: Target;
  /** Files under --root that exist but were not read, with the reason. */
  skippedFiles: SkippedFile[];
  options: DoctorOptions;
  findings: Finding[];
  prediction: Prediction | null;
  tried: TryResult | null;
}

export interface RunDoctorOptions extends DoctorOptions {
  pid: number | null;
  /** Really register in a child (only when the target is rdmactl itself). */
  try: boolean;
  /** The --access text to pass on to the child. */
  accessText: string | null;
  env: NodeJS.ProcessEnv;
}

export async function runDoctor(options: RunDoctorOptions): Promise<DoctorReport> {
  const target = readTarget(options.pid);
  const config = readRootConfig(options.root, target.status.uid);
  const attributed = attribution(target.pid);
  const ctx: DoctorContext = { request: options.request, root: options.root, target, pageBytes: pageSize(), kernelRelease: release(), attribution: attributed.attribution, config };
  const findings: Finding[] = [
    memlockLimit(ctx),
    memlockOrigin(ctx),
    uringDisabled(ctx),
    uringUserCharge(ctx),
    mapsCount(ctx),
    ...forkFindings(ctx),
    ...hugepageFindings(ctx),
    ...filePinFindings(ctx),
    ...(await verbsFindings(ctx)),
    ...machineFindings(ctx),
    ...attributionFindings(ctx, attributed.reason),
  ];
  // Last: it adds what a trace saw fail to the evidence of the checks above.
  findings.push(traceFailureFindings(ctx, findings));
  const prediction = predict(options.request, findings, requestChargeBytes(ctx));
  let tried: TryResult | null = null;
  if (options.try && prediction) {
    if (prediction.cause === 'machine.available') {
      findings.push(skipped('try.outcome', 'not tried: the request is larger than MemAvailable and could start the OOM killer'));
    } else {
      tried = await tryRegistration(options.request, options.accessText, options.env);
      findings.push(tryFinding(prediction, tried));
    }
  }
  return { target, skippedFiles: config.skipped, options, findings, prediction, tried };
}

export function anyFailed(report: DoctorReport): boolean {
  return report.findings.some((f) => f.status === 'fail');
}
